// The terminal view: xterm.js over the PTY WebSocket. Any number of tabs can watch one session;
// each one is its own viewer. A dropped socket reconnects by itself and replays from the last
// byte offset this tab saw.

import { useEffect, useState } from 'preact/hooks';
import { type AgentAdapter, ApiError, type Approval, type ApprovalVerdict, type EgressConnection, type SessionInfo, type SignalName, enc } from '../api';
import { useApi, useEvents } from '../context';
import { touches } from '../events';
import type { ConnState, Pending } from '../pty';
import { AgentBadge, ErrorBox, LimitsBadge, NetworkBadge, StateBadge, UncagedBadge, argvText, bytes, limitsText, sessionCommand } from '../ui';
import { KeyBar } from '../keybar';
import { type Undelivered, useTerminal } from '../useTerminal';

const SIGNALS: SignalName[] = ['INT', 'TERM', 'HUP', 'KILL'];

function connLabel(c: ConnState, now: number): string {
  switch (c.kind) {
    case 'connecting':
      return 'connecting…';
    case 'open':
      return 'live';
    case 'reconnecting': {
      const s = Math.ceil((c.at - now) / 1000);
      return s > 0 ? `reconnecting in ${s}s (attempt ${c.attempt})` : `reconnecting… (attempt ${c.attempt})`;
    }
    case 'exited':
      return 'ended';
    case 'closed':
      return 'disconnected';
  }
}

/** Network and server errors are worth another try; a gone session or a sign-out is not. */
const retryable = (e: unknown) => !(e instanceof ApiError) || e.status === 0 || e.status >= 500;

/** The session's snapshot, refetched whenever an event touches it. */
function useSession(id: string) {
  const api = useApi();
  const events = useEvents();
  const [session, setSession] = useState<SessionInfo | null>(null);
  const [error, setError] = useState<unknown>(null);
  const refresh = () => api.session(id).then(setSession, setError);
  useEffect(() => {
    refresh();
    return events.subscribe((ev) => {
      if (touches(ev, { sessionId: id })) refresh();
    });
  }, [api, events, id]);
  /** Before a reconnect: refreshes the snapshot and says whether reconnecting makes sense. */
  const stillThere = () => api.session(id).then((s) => (setSession(s), true), retryable);
  /** Runs an operator's action; its error replaces the last one, success clears it. */
  const act = async (action: () => Promise<unknown>) => {
    try {
      await action();
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  return { session, setSession, error, refresh, stillThere, act };
}

function SessionTitle({ id, session }: { id: string; session: SessionInfo | null }) {
  return (
    <>
      <a href={session ? `#/projects/${enc(session.project_id)}` : '#/'} class="back" aria-label="Back to the project">
        ←
      </a>
      <code class="argv" title={session ? argvText(session.argv) : ''}>
        {session ? sessionCommand(session) : id}
      </code>
      {session && <StateBadge s={session} />}
      {session && <AgentBadge s={session} />}
      {session && <UncagedBadge s={session} />}
      {session && <LimitsBadge s={session} />}
      {session && <NetworkBadge s={session} />}
      {session?.origin.worktree && (
        <a class="badge" href={`#/worktrees/${enc(session.origin.worktree)}?project=${enc(session.project_id)}`}>
          worktree: review
        </a>
      )}
    </>
  );
}

function ConnStatus({ conn, retryNow }: { conn: ConnState; retryNow: () => void }) {
  // A countdown to the next attempt, so the label never shows a time that has passed.
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (conn.kind !== 'reconnecting') return;
    setNow(Date.now());
    const t = window.setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [conn]);
  return (
    <>
      <span class={`conn conn-${conn.kind}`} id="conn-state" role="status" aria-live="polite">
        {connLabel(conn, now)}
      </span>
      {conn.kind === 'reconnecting' && (
        <button class="btn small" onClick={retryNow}>
          Retry now
        </button>
      )}
    </>
  );
}

/** Shows typed text for the operator: control bytes as ^X, escapes as ⎋. */
function visible(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, (c) =>
    c === '\x1b' ? '⎋' : c === '\r' ? '⏎' : c === '\x7f' ? '^?' : '^' + String.fromCharCode(c.charCodeAt(0) + 64),
  );
}

function InputNotes({ pending, undelivered, refused }: { pending: Pending | null; undelivered: Undelivered | null; refused: string | null }) {
  return (
    <>
      {pending && (
        <div class="input-pending" id="input-pending" role="status">
          Typed, not yet delivered ({pending.frames} {pending.frames === 1 ? 'key' : 'keys'}): <code>{visible(pending.text)}</code> — sent
          once the connection is back.
        </div>
      )}
      {undelivered !== null && (
        <div class="error" id="input-undelivered" role="alert">
          Not delivered ({undelivered.reason}): <code>{visible(undelivered.text)}</code>
        </div>
      )}
      {refused !== null && (
        <div class="error" id="input-refused" role="alert">
          {refused}
        </div>
      )}
    </>
  );
}

function SessionActions(props: { disabled: boolean; onSignal: (s: SignalName) => void; onEnd: () => void }) {
  const [sig, setSig] = useState<SignalName>('INT');
  return (
    <div class="term-actions">
      <label class="sr-only" for="signal-select">
        Signal
      </label>
      <select
        id="signal-select"
        value={sig}
        disabled={props.disabled}
        onChange={(e) => setSig((e.target as HTMLSelectElement).value as SignalName)}
      >
        {SIGNALS.map((s) => (
          <option key={s}>{s}</option>
        ))}
      </select>
      <button class="btn small" disabled={props.disabled} onClick={() => props.onSignal(sig)}>
        Send
      </button>
      <button class="btn small danger" id="end-session" disabled={props.disabled} onClick={props.onEnd}>
        End
      </button>
    </div>
  );
}

/** The live egress log of a filtered-network cage: what its gateway allowed and refused, from
 * the audit log at first and then as each connection is reported. */
function EgressLog({ id }: { id: string }) {
  const api = useApi();
  const events = useEvents();
  const [log, setLog] = useState<EgressConnection[]>([]);
  useEffect(() => {
    let live: EgressConnection[] = [];
    const unsubscribe = events.subscribe((ev) => {
      if (ev.type === 'egress' && ev.connection.session_id === id) {
        live = [...live, ev.connection];
        setLog((l) => [...l, ev.connection]);
      }
    });
    api.audit({ type: 'egress.', session_id: id, limit: 200 }).then(
      (page) => {
        const past = page.events.map((r) => r.data as EgressConnection).reverse();
        // What arrived live while the page loaded may be in the page too: each live record
        // cancels one equal record of the page. Fields are compared one by one, since the
        // audit row and the event list them in different orders.
        const key = (c: EgressConnection) =>
          [c.via, c.host, c.port, c.address ?? '', c.decision, c.rule, c.bytes_up, c.bytes_down, c.duration_ms].join('\u0000');
        const inPage = new Map<string, number>();
        for (const c of past) inPage.set(key(c), (inPage.get(key(c)) ?? 0) + 1);
        const newer = live.filter((c) => {
          const n = inPage.get(key(c)) ?? 0;
          if (n > 0) inPage.set(key(c), n - 1);
          return n === 0;
        });
        setLog([...past, ...newer]);
      },
      () => {},
    );
    return unsubscribe;
  }, [api, events, id]);
  return (
    <details class="egress-log" id="egress-log" open={log.some((c) => c.decision !== 'allowed')}>
      <summary>
        Egress: {log.filter((c) => c.decision === 'allowed').length} allowed, {log.filter((c) => c.decision === 'denied').length} denied,{' '}
        {log.filter((c) => c.decision === 'failed').length} failed
      </summary>
      <ol>
        {log.map((c, i) => (
          <li key={i} class={`egress-${c.decision}`}>
            <strong>{c.decision}</strong> {c.via === 'connect' ? 'CONNECT' : c.via === 'http' ? 'HTTP' : 'provider'}{' '}
            <code>
              {c.host}:{c.port}
            </code>
            {c.address && <> → {c.address}</>} — {c.rule}
            {c.decision === 'allowed' && (
              <>
                {' '}
                ({bytes(c.bytes_up)} up, {bytes(c.bytes_down)} down, {c.duration_ms} ms)
              </>
            )}
          </li>
        ))}
      </ol>
    </details>
  );
}

/** How kaged's adapter configured a declared agent's CLI: every variable and flag it set (names,
 * and values that are no key or prompt text), and every declaration the CLI cannot honour. It
 * opens by itself when something was not honoured, so that is never missed. */
function AgentDetails({ agent }: { agent: AgentAdapter }) {
  const cli = agent.cli ?? 'unknown CLI';
  return (
    <details class="agent-adapter" id="agent-adapter" open={agent.not_honoured.length > 0}>
      <summary>
        Agent: {cli}
        {agent.model && <> · model <code>{agent.model}</code></>}
        {agent.provider && <> via <code>{agent.provider}</code> (egress gateway)</>} · {agent.settings.length} set,{' '}
        <span class={agent.not_honoured.length > 0 ? 'warn' : undefined}>{agent.not_honoured.length} not honoured</span>
      </summary>
      {agent.state && <p>State: {agent.state}</p>}
      {agent.not_honoured.length > 0 && (
        <>
          <h4>Not honoured</h4>
          <ul class="not-honoured">
            {agent.not_honoured.map((n, i) => (
              <li key={i}>
                <code>{n.declaration}</code>: {n.reason}
              </li>
            ))}
          </ul>
        </>
      )}
      {agent.settings.length > 0 && (
        <>
          <h4>Set by the {cli} adapter</h4>
          <ul>
            {agent.settings.map((s, i) => (
              <li key={i}>
                <span class="muted">{s.kind}</span> <code>{s.value === null ? s.name : s.kind === 'mount' ? `${s.name} ← ${s.value}` : `${s.name}=${s.value}`}</code> — {s.purpose}
              </li>
            ))}
          </ul>
        </>
      )}
      <p class="muted">
        Runs as <code>{argvText(agent.argv.map((a) => (a.length > 80 ? `${a.slice(0, 77)}...` : a)))}</code>
      </p>
    </details>
  );
}

/** The session's tool calls held for the operator, refetched whenever one is asked or answered. */
function useApprovals(id: string) {
  const api = useApi();
  const events = useEvents();
  const [held, setHeld] = useState<Approval[]>([]);
  useEffect(() => {
    const refresh = () => api.approvals().then((l) => setHeld(l.approvals.filter((a) => a.session_id === id)), () => {});
    refresh();
    return events.subscribe((ev) => {
      if (ev.type === 'approval.requested' || ev.type === 'approval.answered' || ev.type === 'events.connected') refresh();
    });
  }, [api, events, id]);
  return held;
}

/** What a careful person needs to decide: the exact command or change, where, and under which cage. */
function ApprovalCard({ approval, onAnswer }: { approval: Approval; onAnswer: (v: ApprovalVerdict, note: string) => void }) {
  const [note, setNote] = useState('');
  const cage = approval.cage.state === 'caged' ? approval.cage.summary : null;
  const network = cage === null ? 'no cage' : typeof cage.network === 'object' ? `allow ${cage.network.allow.join(', ') || 'only its model provider'}` : cage.network;
  return (
    <div class="approval-card" role="alertdialog" aria-label={`${approval.agent} asks to use ${approval.tool}`}>
      <h3>
        {approval.agent} in {approval.project_id} asks to use <code>{approval.tool}</code>
      </h3>
      {approval.command !== null && <pre class="approval-command">{approval.command}</pre>}
      {approval.path !== null && (
        <p>
          File <code>{approval.path}</code>
        </p>
      )}
      {approval.diff !== null && <pre class="approval-diff">{approval.diff}</pre>}
      {approval.description !== null && <p>{approval.description}</p>}
      <dl class="approval-policy">
        {approval.cwd !== null && (
          <>
            <dt>Working directory</dt>
            <dd>
              <code>{approval.cwd}</code>
            </dd>
          </>
        )}
        <dt>Files</dt>
        <dd>{cage === null ? 'the host, uncaged' : cage.grants.map((g) => `${g.host_path} (${g.access})`).join(', ') || 'none'}</dd>
        <dt>Network</dt>
        <dd>{network}</dd>
        <dt>Limits</dt>
        <dd>{limitsText(approval.cage)}</dd>
        <dt>If nobody answers</dt>
        <dd>
          {approval.on_timeout === 'deny' ? 'denied' : "the CLI's own prompt"} after {approval.timeout_secs}s
        </dd>
      </dl>
      <label>
        Note to the agent (optional){' '}
        <input type="text" value={note} maxLength={2000} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
      </label>
      <div class="approval-actions">
        <button type="button" class="btn" onClick={() => onAnswer('approve', note)}>
          Approve
        </button>
        <button type="button" class="btn danger" onClick={() => onAnswer('deny', note)}>
          Deny
        </button>
      </div>
    </div>
  );
}

export function SessionPage({ id }: { id: string }) {
  const api = useApi();
  const { session, setSession, error, refresh, stillThere, act } = useSession(id);
  const term = useTerminal(id, { onEnded: refresh, shouldRetry: stillThere });
  const exited = term.conn.kind === 'exited' || session?.state === 'exited';
  const held = useApprovals(id);
  const answer = (a: Approval, verdict: ApprovalVerdict, note: string) =>
    act(() => api.answerApproval(a.id, { verdict, note: note.trim() === '' ? null : note.trim() }));

  const signal = (signal: SignalName) => act(() => api.signal(id, { signal })).then(term.focus);
  const end = () => {
    if (!confirm('End this session? Its processes get SIGHUP, then SIGTERM, then SIGKILL.')) return;
    void act(async () => setSession(await api.endSession(id)));
  };

  return (
    <section class="term-page" aria-label="Terminal">
      <div class="term-head">
        <SessionTitle id={id} session={session} />
        <ConnStatus conn={term.conn} retryNow={term.retryNow} />
        <SessionActions disabled={exited} onSignal={signal} onEnd={end} />
      </div>
      <ErrorBox error={error} />
      {held.map((a) => (
        <ApprovalCard key={a.id} approval={a} onAnswer={(v, note) => answer(a, v, note)} />
      ))}
      <InputNotes pending={term.pending} undelivered={term.undelivered} refused={term.refused} />
      <div class="term-host" ref={term.host} />
      <KeyBar target={term.keys} />
      {session?.origin.agent && <AgentDetails agent={session.origin.agent} />}
      {session?.origin.cage.state === 'caged' && typeof session.origin.cage.summary.network === 'object' && <EgressLog id={id} />}
    </section>
  );
}
