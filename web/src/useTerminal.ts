// xterm.js attached to a session's PTY socket: the hook owns the terminal, the socket, the
// reconnects and the sizing, and tears them all down when the component goes or the session
// changes.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import type { RefObject } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useApi } from './context';
import type { KeyTarget } from './keybar';
import { type ConnState, type Pending, PtyClient, type PtySink } from './pty';

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

export interface Undelivered {
  text: string;
  reason: string;
}

/** How long typed input may wait for its ack before the page shows it as pending. */
const PENDING_SHOW_MS = 1000;

export interface TerminalView {
  /** Where the terminal goes: `<div ref={host} />`. */
  host: RefObject<HTMLDivElement>;
  conn: ConnState;
  /** Input not yet acknowledged, once it has waited long enough to mention (else null). */
  pending: Pending | null;
  /** Input the session will never get, and the latest reason, to show the operator. */
  undelivered: Undelivered | null;
  /** The daemon's last refusal of something this viewer sent. */
  refused: string | null;
  /** Byte offset of the next byte this viewer expects. */
  offset(): number;
  /** Types `data` into the session and gives the terminal the focus back. */
  send(data: string): void;
  focus(): void;
  retryNow(): void;
  /** What the phone key bar drives; the same object for the terminal's whole life. */
  keys: KeyTarget;
}

/** Lines of history the Copy view offers besides the screen. */
const COPY_HISTORY = 200;

/** Keystrokes pass the key bar's filter (sticky modifiers); a paste never does. */
interface InputPath {
  filter: ((data: string) => string) | null;
  pasting: boolean;
}

function openTerminal(el: HTMLElement): { term: Terminal; fit: FitAddon } {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    fontSize: window.innerWidth < 600 ? 13 : 14,
    scrollback: 10_000,
    // Clearing the screen keeps what was on it in the scrollback, as tmux and the daemon's
    // terminal model do, so a reattached screen has the same history as a live one.
    scrollOnEraseInDisplay: true,
    theme: THEME,
    allowProposedApi: false,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  return { term, fit };
}

interface SinkState {
  setConn(s: ConnState): void;
  setPending(p: Pending): void;
  setUndelivered(text: string, reason: string): void;
  setRefused(message: string): void;
}

function sinkFor(term: Terminal, opts: { readonly current: TerminalOptions }, st: SinkState): PtySink {
  return {
    data: (b) => term.write(b),
    screen: (bytes, cols, rows) => {
      term.reset();
      if (term.cols !== cols || term.rows !== rows) term.resize(cols, rows);
      term.write(bytes);
    },
    size: (cols, rows) => {
      if (term.cols !== cols || term.rows !== rows) term.resize(cols, rows);
    },
    gap: (from, to) => term.write(`\r\n\x1b[2m[… ${to - from} bytes of output no longer in the scrollback …]\x1b[0m\r\n`),
    state: (s) => {
      st.setConn(s);
      if (s.kind === 'exited' || s.kind === 'closed') opts.current.onEnded();
    },
    pending: st.setPending,
    undelivered: st.setUndelivered,
    refused: st.setRefused,
    shouldRetry: () => opts.current.shouldRetry(),
  };
}

/** Pending input, shown at once while the socket is down and after a second while it is up
 *  (an ack normally comes back in milliseconds; only a stalled one is worth a word). */
function usePending(conn: ConnState) {
  const [latest, setLatest] = useState<Pending>({ frames: 0, text: '' });
  const [since, setSince] = useState(0);
  const [, tick] = useState(0);
  const setPending = (p: Pending) => {
    setLatest(p);
    setSince((s) => (p.frames === 0 ? 0 : s || Date.now()));
  };
  const waited = since > 0 ? Date.now() - since : 0;
  useEffect(() => {
    if (since === 0 || conn.kind !== 'open') return;
    const t = window.setTimeout(() => tick((n) => n + 1), PENDING_SHOW_MS);
    return () => clearTimeout(t);
  }, [since, conn.kind]);
  const shown = latest.frames > 0 && (conn.kind !== 'open' || waited >= PENDING_SHOW_MS) ? latest : null;
  return { shown, setPending };
}

function wireInput(term: Terminal, pty: PtyClient, path: InputPath) {
  term.onData((d) => pty.input(path.filter && !path.pasting ? path.filter(d) : d));
  term.onBinary((d) => pty.input(Uint8Array.from(d, (ch) => ch.charCodeAt(0) & 0xff)));
}

/** xterm.js 6 scrolls with a wheel but not with a finger, so on a phone the scrollback was out
 *  of reach. A one-finger vertical drag on the terminal scrolls the scrollback line by line;
 *  on the alternate screen (a full-screen TUI, which has no scrollback) it sends the arrow
 *  keys a wheel would, as xterm's alternate scroll does. A tap (no drag) still focuses the
 *  terminal and opens the keyboard; a long press still selects. Returns the undo. */
function touchScroll(el: HTMLElement, term: Terminal, send: (data: string) => void): () => void {
  let lastY: number | null = null;
  let carry = 0;
  const start = (e: TouchEvent) => {
    lastY = e.touches.length === 1 ? e.touches[0].clientY : null;
    carry = 0;
  };
  const move = (e: TouchEvent) => {
    if (lastY === null || e.touches.length !== 1) return;
    const y = e.touches[0].clientY;
    const dy = lastY - y;
    lastY = y;
    const b = term.buffer.active;
    // At either end of the scrollback the page itself scrolls, as it would without a terminal.
    if (b.type === 'normal' && (dy > 0 ? b.viewportY >= b.baseY : b.viewportY <= 0)) {
      carry = 0;
      return;
    }
    e.preventDefault();
    const screen = el.querySelector<HTMLElement>('.xterm-screen');
    const cell = screen && term.rows > 0 ? screen.clientHeight / term.rows : 16;
    // Finger down: earlier lines come into view (a negative line count).
    carry += dy / cell;
    const lines = Math.trunc(carry);
    if (lines === 0) return;
    carry -= lines;
    if (b.type === 'normal') {
      term.scrollLines(lines);
    } else {
      const app = term.modes.applicationCursorKeysMode;
      const key = lines < 0 ? (app ? '\x1bOA' : '\x1b[A') : app ? '\x1bOB' : '\x1b[B';
      send(key.repeat(Math.abs(lines)));
    }
  };
  const end = () => {
    lastY = null;
  };
  el.addEventListener('touchstart', start, { passive: true });
  el.addEventListener('touchmove', move, { passive: false });
  el.addEventListener('touchend', end);
  el.addEventListener('touchcancel', end);
  return () => {
    el.removeEventListener('touchstart', start);
    el.removeEventListener('touchmove', move);
    el.removeEventListener('touchend', end);
    el.removeEventListener('touchcancel', end);
  };
}

/** Keeps the terminal fitted to `el` and tells the daemon this viewer's size whenever it
 *  changes (which makes this viewer the one that sets the PTY's size); returns the undo. The
 *  terminal itself may then show another viewer's size, when that one was active later. */
function followSize(el: HTMLElement, term: Terminal, fit: FitAddon, pty: PtyClient): () => void {
  let last = '';
  const doFit = () => {
    const dims = (() => {
      try {
        return fit.proposeDimensions();
      } catch {
        return undefined;
      }
    })();
    // Not laid out yet (hidden tab); the next resize fits.
    if (!dims || !Number.isFinite(dims.cols) || !Number.isFinite(dims.rows) || dims.cols < 2 || dims.rows < 1) return;
    const key = `${dims.cols}x${dims.rows}`;
    if (key === last) return;
    last = key;
    if (term.cols !== dims.cols || term.rows !== dims.rows) term.resize(dims.cols, dims.rows);
    pty.resize(dims.cols, dims.rows);
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
  const { shown: pending, setPending } = usePending(conn);
  const [undelivered, setUndelivered] = useState<Undelivered | null>(null);
  const [refused, setRefused] = useState<string | null>(null);
  // The latest callbacks, so new closures on each render do not restart the terminal.
  const opts = useRef(options);
  opts.current = options;
  const path = useRef<InputPath>({ filter: null, pasting: false });
  const keys = useRef<KeyTarget>({
    send: (data) => {
      parts.current?.pty.input(data);
      parts.current?.term.focus();
    },
    paste: (text) => {
      const term = parts.current?.term;
      if (!term) return;
      // xterm wraps the text in ESC [200~ … ESC [201~ when the app enabled mode 2004.
      path.current.pasting = true;
      try {
        term.paste(text);
      } finally {
        path.current.pasting = false;
      }
      term.focus();
    },
    setInputFilter: (f) => {
      path.current.filter = f;
    },
    text: () => {
      const term = parts.current?.term;
      if (!term) return '';
      if (term.hasSelection()) return term.getSelection();
      const buf = term.buffer.active;
      const lines: string[] = [];
      for (let y = Math.max(0, buf.length - term.rows - COPY_HISTORY); y < buf.length; y++) {
        lines.push(buf.getLine(y)?.translateToString(true) ?? '');
      }
      return lines.join('\n').replace(/\s+$/, '');
    },
  });

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    setConn({ kind: 'connecting' });
    setUndelivered(null);
    setRefused(null);
    const { term, fit } = openTerminal(el);
    const sink = sinkFor(term, opts, {
      setConn,
      setPending,
      setUndelivered: (text, reason) => setUndelivered((old) => ({ text: (old?.text ?? '') + text, reason })),
      setRefused,
    });
    const pty = new PtyClient(api.ptyUrl(sessionId), sink);
    wireInput(term, pty, path.current);
    // Fitted before the socket opens, so the first hello carries the real size.
    const unfollow = followSize(el, term, fit, pty);
    const untouch = touchScroll(el, term, (d) => pty.input(d));
    pty.start();
    // The browser tests read the buffer cell by cell through this.
    Object.assign(el, { kagedTerm: term });
    const focused = () => pty.activate();
    el.addEventListener('focusin', focused);
    const online = () => pty.retryNow();
    const offline = () => pty.offline();
    // A phone wakes a tab that may have lost its socket while asleep: check now.
    const visible = () => document.visibilityState === 'visible' && pty.checkAlive();
    window.addEventListener('online', online);
    window.addEventListener('offline', offline);
    document.addEventListener('visibilitychange', visible);
    term.focus();
    parts.current = { term, pty };
    return () => {
      parts.current = null;
      window.removeEventListener('online', online);
      window.removeEventListener('offline', offline);
      document.removeEventListener('visibilitychange', visible);
      el.removeEventListener('focusin', focused);
      unfollow();
      untouch();
      pty.stop();
      term.dispose();
    };
  }, [api, sessionId]);

  return {
    host,
    conn,
    pending,
    undelivered,
    refused,
    offset: () => parts.current?.pty.position ?? 0,
    send: (data) => {
      parts.current?.pty.input(data);
      parts.current?.term.focus();
    },
    focus: () => parts.current?.term.focus(),
    retryNow: () => parts.current?.pty.retryNow(),
    keys: keys.current,
  };
}
