// xterm.js attached to a session's PTY socket: the hook owns the terminal, the socket, the
// reconnects and the sizing, and tears them all down when the component goes or the session
// changes.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import type { RefObject } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useApi } from './context';
import { type ConnState, PtyClient, type PtySink } from './pty';

const THEME = {
  background: '#0b0d10',
  foreground: '#e6e6e6',
  cursor: '#e6e6e6',
  selectionBackground: '#3a4150',
  magenta: '#ff3fa4',
  brightMagenta: '#ff7cc4',
};

export interface TerminalOptions {
  /** The process exited or the socket gave up for good. */
  onEnded(): void;
  /** Asked before each reconnect; false stops retrying (session gone, signed out). */
  shouldRetry(): Promise<boolean>;
}

export interface TerminalView {
  /** Where the terminal goes: `<div ref={host} />`. */
  host: RefObject<HTMLDivElement>;
  conn: ConnState;
  /** Byte offset of the next byte this viewer expects. */
  offset(): number;
  /** Types `data` into the session and gives the terminal the focus back. */
  send(data: string): void;
  focus(): void;
  retryNow(): void;
}

function openTerminal(el: HTMLElement): { term: Terminal; fit: FitAddon } {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    fontSize: window.innerWidth < 600 ? 13 : 14,
    scrollback: 10_000,
    theme: THEME,
    allowProposedApi: false,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  return { term, fit };
}

function sinkFor(term: Terminal, opts: { readonly current: TerminalOptions }, setConn: (s: ConnState) => void): PtySink {
  return {
    data: (b) => term.write(b),
    gap: (from, to) => term.write(`\r\n\x1b[2m[… ${to - from} bytes of output no longer in the scrollback …]\x1b[0m\r\n`),
    state: (s) => {
      setConn(s);
      if (s.kind === 'exited' || s.kind === 'closed') opts.current.onEnded();
    },
    shouldRetry: () => opts.current.shouldRetry(),
  };
}

function wireInput(term: Terminal, pty: PtyClient) {
  term.onData((d) => pty.input(d));
  term.onBinary((d) => pty.input(Uint8Array.from(d, (ch) => ch.charCodeAt(0) & 0xff)));
  term.onResize(({ cols, rows }) => pty.resize(cols, rows));
}

/** Keeps the terminal fitted to `el`; returns the undo. */
function followSize(el: HTMLElement, fit: FitAddon): () => void {
  const doFit = () => {
    try {
      fit.fit();
    } catch {
      // Not laid out yet (hidden tab); the next resize fits.
    }
  };
  doFit();
  const ro = new ResizeObserver(doFit);
  ro.observe(el);
  window.addEventListener('resize', doFit);
  return () => {
    ro.disconnect();
    window.removeEventListener('resize', doFit);
  };
}

export function useTerminal(sessionId: string, options: TerminalOptions): TerminalView {
  const api = useApi();
  const host = useRef<HTMLDivElement>(null);
  const parts = useRef<{ term: Terminal; pty: PtyClient } | null>(null);
  const [conn, setConn] = useState<ConnState>({ kind: 'connecting' });
  // The latest callbacks, so new closures on each render do not restart the terminal.
  const opts = useRef(options);
  opts.current = options;

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    setConn({ kind: 'connecting' });
    const { term, fit } = openTerminal(el);
    const pty = new PtyClient(api.ptyUrl(sessionId), sinkFor(term, opts, setConn));
    wireInput(term, pty);
    const unfollow = followSize(el, fit);
    // Fitted before the socket opens, so the first hello is followed by the real size.
    pty.resize(term.cols, term.rows);
    pty.start();
    const online = () => pty.retryNow();
    window.addEventListener('online', online);
    term.focus();
    parts.current = { term, pty };
    return () => {
      parts.current = null;
      window.removeEventListener('online', online);
      unfollow();
      pty.stop();
      term.dispose();
    };
  }, [api, sessionId]);

  return {
    host,
    conn,
    offset: () => parts.current?.pty.position ?? 0,
    send: (data) => {
      parts.current?.pty.input(data);
      parts.current?.term.focus();
    },
    focus: () => parts.current?.term.focus(),
    retryNow: () => parts.current?.pty.retryNow(),
  };
}
