// Client side of the PTY WebSocket (design §6). Binary frames are terminal bytes both ways;
// text frames are JSON control (ClientControl up, ServerControl down). A fresh viewer asks for
// the screen: the daemon sends its terminal model's dump (scrollback, screens, cursor, modes)
// for this viewer's size, then the live stream from exactly that offset. The client tracks the
// byte offset it has seen so a dropped socket reattaches with replay from exactly where it
// stopped, with exponential backoff; if that is older than the daemon holds, a gap and the
// current screen follow.
//
// Size (one PTY, one size): the viewer that was active last (attached, typed, or changed its
// own size) sets the PTY's size; the others are told the size and show the same screen at it.
//
// Input is sequenced (see kaged-api's pty module): each frame carries a number, stays queued
// until the daemon acknowledges it, and is resent after a reconnect; the daemon writes each
// number once. So typing while the connection is down is kept and shown as pending, and what
// could not be delivered (the session ended) is said, never dropped in silence.

import type { ClientControl, ServerControl } from './api';

export type ConnState =
  | { kind: 'connecting' }
  | { kind: 'open' }
  /** `at` is when the next attempt starts (epoch ms); an attempt may be under way already. */
  | { kind: 'reconnecting'; attempt: number; at: number }
  | { kind: 'exited'; code: number | null; signal: number | null }
  | { kind: 'closed' };

/** Input typed but not yet acknowledged by the daemon. */
export interface Pending {
  frames: number;
  text: string;
}

export interface PtySink {
  data(bytes: Uint8Array): void;
  /** The whole screen: reset the terminal, make it `cols`×`rows`, write `bytes`. */
  screen(bytes: Uint8Array, cols: number, rows: number): void;
  /** The PTY is now `cols`×`rows` (set by the most recently active viewer). */
  size(cols: number, rows: number): void;
  gap(from: number, to: number): void;
  state(s: ConnState): void;
  pending(p: Pending): void;
  /** Input that will never reach the session, and why. */
  undelivered(text: string, reason: string): void;
  /** The daemon refused something this viewer sent (a read-only share, say). */
  refused(message: string): void;
  /** Called before each reconnect attempt; resolve false to stop retrying (session gone, 401). */
  shouldRetry(): Promise<boolean>;
}

const MAX_BACKOFF_MS = 15_000;
/** A ping this often; a socket that hears nothing for LIVENESS_MS after one is dead. */
const PING_MS = 15_000;
const LIVENESS_MS = 10_000;
const SEQ_BYTES = 8;

function parseControl(text: string): ServerControl | null {
  try {
    return JSON.parse(text) as ServerControl;
  } catch {
    return null;
  }
}

/** A per-viewer id for sequenced input; `crypto.randomUUID` needs a secure context. */
function clientId(): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function framed(seq: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(SEQ_BYTES + bytes.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(seq));
  out.set(bytes, SEQ_BYTES);
  return out;
}

export class PtyClient {
  private ws: WebSocket | null = null;
  /** The daemon said hello on the current socket: input may flow. */
  private live = false;
  private offset = 0;
  /** Whether `offset` means anything yet (the first hello asks for the screen instead). */
  private attached = false;
  /** A `screen` message came: the next binary frame is the screen, at this offset. */
  private screenNext: { offset: number; cols: number; rows: number } | null = null;
  private attempt = 0;
  private timer: number | undefined;
  private ping: number | undefined;
  private pingSentAt = 0;
  private lastHeard = 0;
  private stopped = false;
  private exited = false;
  private size: { cols: number; rows: number } | null = null;
  private enc = new TextEncoder();
  private dec = new TextDecoder();
  private readonly client = clientId();
  private nextSeq = 1;
  private queue: { seq: number; bytes: Uint8Array }[] = [];

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
    this.sink.state(this.attempt === 0 ? { kind: 'connecting' } : { kind: 'reconnecting', attempt: this.attempt, at: Date.now() });
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.live = false;
    ws.onopen = () => this.onOpen();
    ws.onmessage = (m) => {
      this.lastHeard = Date.now();
      if (m.data instanceof ArrayBuffer) this.onBytes(new Uint8Array(m.data));
      else this.onText(m.data);
    };
    ws.onclose = () => this.onClose(ws);
  }

  private onOpen() {
    this.screenNext = null;
    this.sendControl({
      type: 'hello',
      offset: this.attached ? this.offset : undefined,
      client: this.client,
      screen: this.size ?? { cols: 80, rows: 24 },
    });
    clearInterval(this.ping);
    this.ping = window.setInterval(() => this.checkAlive(), PING_MS);
  }

  /** Pings, and gives up on a socket that stayed silent since the last ping. */
  checkAlive() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.pingSentAt > this.lastHeard && Date.now() - this.pingSentAt > LIVENESS_MS) {
      this.abandon(ws);
      return;
    }
    if (this.pingSentAt <= this.lastHeard) {
      this.pingSentAt = Date.now();
      this.sendControl({ type: 'ping' });
      window.setTimeout(() => this.checkAlive(), LIVENESS_MS + 100);
    }
  }

  /** Treats `ws` as dead now rather than when TCP notices (a phone that lost its network). */
  abandon(ws: WebSocket) {
    ws.onclose = null;
    ws.onmessage = null;
    ws.close();
    this.onClose(ws);
  }

  private onBytes(bytes: Uint8Array) {
    const screen = this.screenNext;
    if (screen) {
      this.screenNext = null;
      this.offset = screen.offset;
      this.sink.screen(bytes, screen.cols, screen.rows);
      return;
    }
    this.offset += bytes.byteLength;
    this.sink.data(bytes);
  }

  private onText(text: string) {
    const msg = parseControl(text);
    switch (msg?.type) {
      case 'hello':
        this.offset = msg.offset;
        this.attached = true;
        this.attempt = 0;
        this.live = true;
        this.sink.state({ kind: 'open' });
        this.resend(msg.input_seq ?? 0);
        break;
      case 'ack':
        this.acked(msg.seq);
        break;
      case 'gap':
        this.sink.gap(msg.from, msg.to);
        this.offset = Math.max(this.offset, msg.to);
        break;
      case 'screen':
        this.screenNext = { offset: msg.offset, cols: msg.cols, rows: msg.rows };
        break;
      case 'size':
        this.sink.size(msg.cols, msg.rows);
        break;
      case 'exit':
        this.exited = true;
        this.live = false;
        this.giveUpInput('the session ended before it arrived');
        this.sink.state({ kind: 'exited', code: msg.code, signal: msg.signal });
        break;
      case 'input_refused':
        this.refusedFrame(msg.seq, msg.message);
        break;
      case 'error':
        this.sink.refused(msg.message);
        break;
    }
  }

  /** After hello: forget what the daemon applied, send the rest in order. */
  private resend(applied: number) {
    this.queue = this.queue.filter((f) => f.seq > applied);
    // The daemon no longer knows this viewer (it forgot, or restarted): number afresh.
    if (this.queue.length && this.queue[0].seq !== applied + 1) {
      this.queue.forEach((f, i) => (f.seq = applied + 1 + i));
      this.nextSeq = applied + 1 + this.queue.length;
    }
    for (const f of this.queue) this.ws?.send(framed(f.seq, f.bytes));
    this.reportPending();
  }

  private acked(seq: number) {
    const before = this.queue.length;
    this.queue = this.queue.filter((f) => f.seq > seq);
    if (this.queue.length !== before) this.reportPending();
  }

  /** The daemon will never write frame `seq`: it leaves the queue and is shown as undelivered. */
  private refusedFrame(seq: number, why: string) {
    const f = this.queue.find((q) => q.seq === seq);
    this.queue = this.queue.filter((q) => q.seq !== seq);
    this.reportPending();
    if (f) this.sink.undelivered(this.dec.decode(f.bytes), why);
  }

  private reportPending() {
    const text = this.queue.map((f) => this.dec.decode(f.bytes)).join('');
    this.sink.pending({ frames: this.queue.length, text });
  }

  private giveUpInput(reason: string) {
    if (!this.queue.length) return;
    const text = this.queue.map((f) => this.dec.decode(f.bytes)).join('');
    this.queue = [];
    this.reportPending();
    this.sink.undelivered(text, reason);
  }

  private onClose(ws: WebSocket) {
    clearInterval(this.ping);
    if (this.ws !== ws || this.stopped) return;
    this.live = false;
    // After the exit the socket closing is expected; the state stays `exited`.
    if (!this.exited) void this.scheduleRetry();
  }

  private async scheduleRetry() {
    const inMs = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    this.sink.state({ kind: 'reconnecting', attempt: this.attempt, at: Date.now() + inMs });
    const again = await this.sink.shouldRetry().catch(() => true);
    // Stopped while asking: the viewer is gone, so it hears nothing more.
    if (this.stopped) return;
    if (!again) {
      this.giveUpInput('the session is gone or you were signed out');
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

  /** The network went away: do not wait for TCP to notice. */
  offline() {
    if (this.ws && !this.stopped && !this.exited) this.abandon(this.ws);
  }

  private sendControl(msg: ClientControl) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  input(data: string | Uint8Array) {
    const bytes = typeof data === 'string' ? this.enc.encode(data) : data;
    if (this.exited || this.stopped) {
      this.sink.undelivered(this.dec.decode(bytes), 'the session has ended');
      return;
    }
    const seq = this.nextSeq++;
    this.queue.push({ seq, bytes });
    if (this.live && this.ws?.readyState === WebSocket.OPEN) this.ws.send(framed(seq, bytes));
    this.reportPending();
  }

  /** This viewer's own terminal size (what fits its window); saying it makes this viewer the
   *  active one, whose size the PTY takes. */
  resize(cols: number, rows: number) {
    this.size = { cols, rows };
    this.sendControl({ type: 'resize', cols, rows });
  }

  /** The operator turned to this viewer (focused it): its size applies again. */
  activate() {
    if (this.size) this.sendControl({ type: 'resize', ...this.size });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ping);
    this.ws?.close();
    this.ws = null;
  }
}
