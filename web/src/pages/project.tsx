// One project: start a session (the user's shell, a declared agent or a task) and the list of
// its sessions, kept live by the events socket.

import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  type AgentView,
  type ProjectView,
  type SessionInfo,
  type StartSession,
  type UnknownWorktree,
  type WorktreeRun,
  enc,
} from '../api';
import { useApi, useEvents } from '../context';
import { touches } from '../events';
import { navigate } from '../router';
import { AgentBadge, ErrorBox, LimitsBadge, Page, StateBadge, Time, UncagedBadge, argvText, bytes, sessionCommand, sessionKind } from '../ui';

/** A first guess at the terminal size so the process starts close to what the screen shows. */
function guessSize() {
  const cols = Math.max(20, Math.min(300, Math.floor((window.innerWidth - 16) / 8.4)));
  const rows = Math.max(8, Math.min(120, Math.floor((window.innerHeight - 140) / 17)));
  return { cols, rows };
}

export function SessionList({ sessions }: { sessions: SessionInfo[] }) {
  if (sessions.length === 0) return <p class="muted">No sessions yet.</p>;
  return (
    <ul class="sessions" aria-label="Sessions">
      {sessions.map((s) => (
        <li key={s.id} class="card session" data-session-id={s.id} data-state={s.state}>
          <a class="stretch" href={`#/sessions/${enc(s.id)}`}>
            <code class="argv" title={argvText(s.argv)}>
              {sessionCommand(s)}
            </code>
          </a>
          <div class="meta">
            <StateBadge s={s} /> <AgentBadge s={s} />
            {sessionKind(s) && <span class="badge">{sessionKind(s)}</span>}
            <UncagedBadge s={s} />
            <LimitsBadge s={s} />
            <span class="muted">
              started <Time ts={s.started_at} />
              {s.ended_at ? (
                <>
                  {' '}
                  · ended <Time ts={s.ended_at} />
                </>
              ) : null}{' '}
              · {bytes(s.bytes_total)} · {s.actor}
            </span>
          </div>
        </li>
      ))}
    </ul>
  );
}

function StartButtons({ project, busy, start }: { project: ProjectView | null; busy: boolean; start: (b: StartSession) => void }) {
  return (
    <div class="start-buttons">
      <button class="btn primary" id="start-shell" disabled={busy} onClick={() => start({})}>
        Shell
      </button>
      {project?.agents.map((a) => <AgentButton key={a.name} a={a} busy={busy} start={start} />)}
      {project?.tasks.map((t) => (
        <button key={t.name} class="btn" disabled={busy} title={t.description ?? argvText(t.command)} onClick={() => start({ task: t.name })}>
          Task: {t.name}
          {t.workspace === 'worktree' && <span class="badge">worktree</span>}
        </button>
      ))}
    </div>
  );
}

function AgentButton({ a, busy, start }: { a: AgentView; busy: boolean; start: (b: StartSession) => void }) {
  return (
    <button
      class={`btn${a.caged ? '' : ' danger'}`}
      disabled={busy}
      title={`${argvText(a.command)}${a.caged ? '' : ' — runs WITHOUT a cage'}`}
      onClick={() => start({ agent: a.name })}
    >
      Agent: {a.name}
      {!a.caged && <span class="badge bad">uncaged</span>}
      {a.workspace === 'worktree' && <span class="badge">worktree</span>}
    </button>
  );
}

/** Runs with a worktree, each linking to its review page, and the worktrees kaged did not make. */
function Worktrees({ id, runs, unknown }: { id: string; runs: WorktreeRun[]; unknown: UnknownWorktree[] }) {
  return (
    <>
      {runs.length === 0 ? (
        <p class="muted">No runs in a worktree yet.</p>
      ) : (
        <ul class="sessions" aria-label="Worktrees">
          {runs.map((r) => (
            <li key={r.run} class="card session" data-run={r.run} data-state={r.state}>
              <a class="stretch" href={`#/worktrees/${enc(r.run)}?project=${enc(id)}`}>
                <code class="argv">{r.branch}</code>
              </a>
              <div class="meta">
                <span class={`badge${r.state === 'removed' ? ' bad' : ''}`}>{r.state}</span>
                {r.snapshot && <span class="badge">snapshot</span>}
                {r.sessions.length > 0 && <span class="badge">{r.sessions.length} running</span>}
                <span class="muted">from {r.base}</span>
              </div>
            </li>
          ))}
        </ul>
      )}
      {unknown.length > 0 && (
        <div class="card">
          <p>Worktrees of this repository that kaged did not make (it never removes them):</p>
          <ul class="files">
            {unknown.map((u) => (
              <li key={u.path}>
                <code>{u.path}</code> <span class="muted">{u.branch ?? 'detached'}</span>
                {u.prunable && <span class="badge bad">gone</span>}
                {u.locked && <span class="badge">locked</span>}
              </li>
            ))}
          </ul>
        </div>
      )}
    </>
  );
}

/** The project's worktree runs; a project outside git simply has none. */
function useWorktrees(id: string) {
  const api = useApi();
  const events = useEvents();
  const [runs, setRuns] = useState<WorktreeRun[]>([]);
  const [unknown, setUnknown] = useState<UnknownWorktree[]>([]);
  useEffect(() => {
    const refresh = () => {
      api.worktrees(id).then((l) => setRuns(l.runs), () => setRuns([]));
      api.unknownWorktrees(id).then((l) => setUnknown(l.worktrees), () => setUnknown([]));
    };
    refresh();
    return events.subscribe((ev) => {
      if (touches(ev, { projectId: id })) refresh();
    });
  }, [api, events, id]);
  return { runs, unknown };
}

/** The project and its sessions, the list refetched whenever an event touches it. */
function useProject(id: string) {
  const api = useApi();
  const events = useEvents();
  const [project, setProject] = useState<ProjectView | null>(null);
  const [sessions, setSessions] = useState<SessionInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api.project(id).then(setProject, setError);
    const refresh = () => api.sessions(id).then((r) => setSessions(r.sessions), setError);
    refresh();
    return events.subscribe((ev) => {
      if (touches(ev, { projectId: id })) refresh();
    });
  }, [api, events, id]);
  return { project, sessions, error };
}

export function ProjectPage({ id }: { id: string }) {
  const api = useApi();
  const { project, sessions, error } = useProject(id);
  const { runs, unknown } = useWorktrees(id);
  const [startError, setStartError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [inWorktree, setInWorktree] = useState(false);

  const start = async (body: StartSession) => {
    setBusy(true);
    setStartError(null);
    try {
      // Unticked, each agent and task works where its declaration says.
      const workspace = inWorktree ? { workspace: { kind: 'worktree' as const } } : {};
      const s = await api.startSession(id, { ...body, ...workspace, ...guessSize() });
      navigate(`#/sessions/${enc(s.id)}`);
    } catch (e) {
      setStartError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  const running = sessions?.filter((s) => s.state !== 'exited') ?? [];
  const done = sessions?.filter((s) => s.state === 'exited') ?? [];
  return (
    <Page title={project?.name ?? id} actions={<a href="#/">All projects</a>}>
      <ErrorBox error={error} />
      {project && (
        <div class="card">
          <p class="path">
            <code>{project.root}</code>
          </p>
          {project.description && <p>{project.description}</p>}
        </div>
      )}
      <section class="card" aria-labelledby="start-title">
        <h2 id="start-title">Start a session</h2>
        <StartButtons project={project} busy={busy} start={start} />
        <label class="check">
          <input type="checkbox" checked={inWorktree} onChange={(e) => setInWorktree(e.currentTarget.checked)} /> in a new git worktree
          on its own branch
        </label>
        {startError?.code === 'rate_limited' ? (
          <ErrorBox error={startError} title="Session limit reached — end a running session first" />
        ) : (
          <ErrorBox error={startError} title="Could not start the session" />
        )}
      </section>
      <section aria-labelledby="running-title">
        <h2 id="running-title">Running ({running.length})</h2>
        {sessions ? <SessionList sessions={running} /> : <p class="muted">Loading…</p>}
      </section>
      <section aria-labelledby="done-title">
        <h2 id="done-title">Exited ({done.length})</h2>
        {sessions ? <SessionList sessions={done} /> : null}
      </section>
      <section aria-labelledby="worktrees-title">
        <h2 id="worktrees-title">Worktrees ({runs.length})</h2>
        <Worktrees id={id} runs={runs} unknown={unknown} />
      </section>
    </Page>
  );
}
