// One project: start a session (the user's shell, a declared agent or a task) and the list of
// its sessions, kept live by the events socket.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, type AgentView, type ProjectView, type SessionInfo, type StartSession, enc } from '../api';
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
    </button>
  );
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
  const [startError, setStartError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const start = async (body: StartSession) => {
    setBusy(true);
    setStartError(null);
    try {
      const s = await api.startSession(id, { ...body, ...guessSize() });
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
    </Page>
  );
}
