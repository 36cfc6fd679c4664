// Client side of the PTY WebSocket (design §6). Binary frames are terminal bytes both ways;
// text frames are JSON control (ClientControl up, ServerControl down). The client tracks the
// byte offset it has seen (hello offset + bytes received, moved forward by gaps) so a dropped
// socket reattaches with replay from exactly where it stopped, with exponential backoff.

import type { ClientControl, ServerControl } from './api';

export type ConnState =
  | { kind: 'connecting' }
  | { kind: 'open' }
  | { kind: 'reconnecting'; attempt: number; inMs: number }
  | { kind: 'exited'; code: number | null; signal: number | null }
  | { kind: 'closed' };

export interface PtySink {
  data(bytes: Uint8Array): void;
  gap(from: number, to: number): void;
  state(s: ConnState): void;
  /** Called before each reconnect attempt; resolve false to stop retrying (session gone, 401). */
  shouldRetry(): Promise<boolean>;
}

const MAX_BACKOFF_MS = 15_000;
const PING_MS = 25_000;

function parseControl(text: string): ServerControl | null {
  try {
    return JSON.parse(text) as ServerControl;
  } catch {
    return null;
  }
}

export class PtyClient {
  private ws: WebSocket | null = null;
  private offset = 0;
  private attempt = 0;
  private timer: number | undefined;
  private ping: number | undefined;
  private stopped = false;
  private exited = false;
  private size: { cols: number; rows: number } | null = null;
  private enc = new TextEncoder();

  /** `url` is the session's PTY socket, CSRF token included. */
  constructor(
    private url: string,
    private sink: PtySink,
  ) {}

  start() {
    this.connect();
  }

  /** Byte offset of the next byte this viewer expects. */
  get position(): number {
    return this.offset;
  }

  private connect() {
    if (this.stopped) return;
    this.sink.state(this.attempt === 0 ? { kind: 'connecting' } : { kind: 'reconnecting', attempt: this.attempt, inMs: 0 });
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => this.onOpen();
    ws.onmessage = (m) => (m.data instanceof ArrayBuffer ? this.onBytes(new Uint8Array(m.data)) : this.onText(m.data));
    ws.onclose = () => this.onClose(ws);
  }

  private onOpen() {
    this.sendControl({ type: 'hello', offset: this.offset });
    if (this.size) this.sendControl({ type: 'resize', ...this.size });
    clearInterval(this.ping);
    this.ping = window.setInterval(() => this.sendControl({ type: 'ping' }), PING_MS);
  }

  private onBytes(bytes: Uint8Array) {
    this.offset += bytes.byteLength;
    this.sink.data(bytes);
  }

  private onText(text: string) {
    const msg = parseControl(text);
    switch (msg?.type) {
      case 'hello':
        this.offset = msg.offset;
        this.attempt = 0;
        this.sink.state({ kind: 'open' });
        break;
      case 'gap':
        this.sink.gap(msg.from, msg.to);
        this.offset = Math.max(this.offset, msg.to);
        break;
      case 'exit':
        this.exited = true;
        this.sink.state({ kind: 'exited', code: msg.code, signal: msg.signal });
        break;
      case 'error':
        // The daemon could not read a control message of ours; nothing a viewer can act on.
        console.warn('kaged pty:', msg.message);
        break;
    }
  }

  private onClose(ws: WebSocket) {
    clearInterval(this.ping);
    if (this.ws !== ws || this.stopped) return;
    if (this.exited) this.sink.state({ kind: 'closed' });
    else void this.scheduleRetry();
  }

  private async scheduleRetry() {
    const inMs = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    this.sink.state({ kind: 'reconnecting', attempt: this.attempt, inMs });
    const again = await this.sink.shouldRetry().catch(() => true);
    // Stopped while asking: the viewer is gone, so it hears nothing more.
    if (this.stopped) return;
    if (!again) {
      this.sink.state({ kind: 'closed' });
      return;
    }
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.connect(), inMs);
  }

  /** Reconnect right now instead of waiting for the backoff timer. */
  retryNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.timer);
    this.connect();
  }

  private sendControl(msg: ClientControl) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  input(data: string | Uint8Array) {
    if (this.ws?.readyState !== WebSocket.OPEN || this.exited) return;
    this.ws.send(typeof data === 'string' ? this.enc.encode(data) : data);
  }

  resize(cols: number, rows: number) {
    this.size = { cols, rows };
    this.sendControl({ type: 'resize', cols, rows });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ping);
    this.ws?.close();
    this.ws = null;
  }
}
