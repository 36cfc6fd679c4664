// The terminal view: xterm.js over the PTY WebSocket. Any number of tabs can watch one session;
// each one is its own viewer. A dropped socket reconnects by itself and replays from the last
// byte offset this tab saw.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Session, api, enc, get } from '../api';
import { subscribe } from '../events';
import { type ConnState, PtyClient } from '../pty';
import { ErrorBox, StateBadge, argvText, isUncaged, sessionCommand } from '../ui';

const THEME = {
  background: '#0b0d10',
  foreground: '#e6e6e6',
  cursor: '#e6e6e6',
  selectionBackground: '#3a4150',
  magenta: '#ff3fa4',
  brightMagenta: '#ff7cc4',
};

/** Keys a phone keyboard lacks. */
const KEYS: [string, string][] = [
  ['Esc', '\x1b'],
  ['Tab', '\t'],
  ['Ctrl-C', '\x03'],
  ['Ctrl-D', '\x04'],
  ['↑', '\x1b[A'],
  ['↓', '\x1b[B'],
  ['←', '\x1b[D'],
  ['→', '\x1b[C'],
];

function connLabel(c: ConnState): string {
  switch (c.kind) {
    case 'connecting':
      return 'connecting…';
    case 'open':
      return 'live';
    case 'reconnecting':
      return c.inMs > 0 ? `reconnecting… (attempt ${c.attempt}, in ${Math.ceil(c.inMs / 1000)}s)` : 'reconnecting…';
    case 'exited':
      return 'process exited';
    case 'closed':
      return 'disconnected';
  }
}

export function SessionPage({ id }: { id: string }) {
  const host = useRef<HTMLDivElement>(null);
  const client = useRef<PtyClient | null>(null);
  const term = useRef<Terminal | null>(null);
  const [session, setSession] = useState<Session | null>(null);
  const [conn, setConn] = useState<ConnState>({ kind: 'connecting' });
  const [error, setError] = useState<unknown>(null);
  const [sig, setSig] = useState('INT');

  useEffect(() => {
    let alive = true;
    const refresh = () =>
      get<Session>(`/api/v1/sessions/${enc(id)}`)
        .then((s) => alive && setSession(s))
        .catch((e) => alive && setError(e));
    refresh();
    const unsub = subscribe((ev) => {
      if (ev.type === 'events.connected' || ev.session?.id === id) refresh();
    });

    const el = host.current;
    if (!el) return;
    const t = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      fontSize: window.innerWidth < 600 ? 13 : 14,
      scrollback: 10_000,
      theme: THEME,
      allowProposedApi: false,
    });
    const fit = new FitAddon();
    t.loadAddon(fit);
    t.open(el);
    term.current = t;
    const c = new PtyClient(id, {
      data: (b) => t.write(b),
      gap: (from, to) => t.write(`\r\n\x1b[2m[… ${to - from} bytes of output no longer in the scrollback …]\x1b[0m\r\n`),
      state: (s) => {
        if (!alive) return;
        setConn(s);
        if (s.kind === 'exited' || s.kind === 'closed') refresh();
      },
      shouldRetry: async () => {
        // Stop retrying when the session is over or we are signed out; keep going on network errors.
        try {
          const s = await get<Session>(`/api/v1/sessions/${enc(id)}`);
          if (alive) setSession(s);
          return true;
        } catch (e) {
          return !(e instanceof ApiError) || e.status === 0 || e.status >= 500;
        }
      },
    });
    client.current = c;
    t.onData((d) => c.input(d));
    t.onBinary((d) => c.input(Uint8Array.from(d, (ch) => ch.charCodeAt(0) & 0xff)));
    t.onResize(({ cols, rows }) => c.resize(cols, rows));
    const doFit = () => {
      try {
        fit.fit();
      } catch {
        // Not laid out yet (hidden tab); the next resize fits.
      }
    };
    doFit();
    c.resize(t.cols, t.rows);
    c.start();
    const ro = new ResizeObserver(doFit);
    ro.observe(el);
    window.addEventListener('resize', doFit);
    const online = () => c.retryNow();
    window.addEventListener('online', online);
    t.focus();
    return () => {
      alive = false;
      unsub();
      ro.disconnect();
      window.removeEventListener('resize', doFit);
      window.removeEventListener('online', online);
      c.stop();
      t.dispose();
      client.current = null;
      term.current = null;
    };
  }, [id]);

  const signal = async () => {
    try {
      await api('POST', `/api/v1/sessions/${enc(id)}/signal`, { signal: sig });
      setError(null);
    } catch (e) {
      setError(e);
    }
    term.current?.focus();
  };
  const end = async () => {
    if (!confirm('End this session? Its processes get SIGHUP, then SIGTERM, then SIGKILL.')) return;
    try {
      setSession(await api<Session>('DELETE', `/api/v1/sessions/${enc(id)}`));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const key = (seq: string) => {
    client.current?.input(seq);
    term.current?.focus();
  };

  const exited = conn.kind === 'exited' || session?.state === 'exited';
  return (
    <section class="term-page" aria-label="Terminal">
      <div class="term-head">
        <a href={session ? `#/projects/${enc(session.project_id)}` : '#/'} class="back" aria-label="Back to the project">
          ←
        </a>
        <code class="argv" title={session ? argvText(session.argv) : ''}>
          {session ? sessionCommand(session) : id}
        </code>
        {session && <StateBadge s={session} />}
        {session && isUncaged(session) && <span class="badge bad">uncaged</span>}
        <span class={`conn conn-${conn.kind}`} id="conn-state" role="status" aria-live="polite">
          {connLabel(conn)}
        </span>
        {conn.kind === 'reconnecting' && (
          <button class="btn small" onClick={() => client.current?.retryNow()}>
            Retry now
          </button>
        )}
        <div class="term-actions">
          <label class="sr-only" for="signal-select">
            Signal
          </label>
          <select id="signal-select" value={sig} disabled={exited} onChange={(e) => setSig((e.target as HTMLSelectElement).value)}>
            <option>INT</option>
            <option>TERM</option>
            <option>HUP</option>
            <option>KILL</option>
          </select>
          <button class="btn small" disabled={exited} onClick={signal}>
            Send
          </button>
          <button class="btn small danger" id="end-session" disabled={exited} onClick={end}>
            End
          </button>
        </div>
      </div>
      <ErrorBox error={error} />
      <div class="term-host" ref={host} />
      <div class="keybar" role="toolbar" aria-label="Extra keys">
        {KEYS.map(([label, seq]) => (
          <button class="btn small" tabIndex={-1} onMouseDown={(e) => e.preventDefault()} onClick={() => key(seq)}>
            {label}
          </button>
        ))}
      </div>
    </section>
  );
}
