// One project: start a session (the user's shell, a declared agent or a task) and the list of
// its sessions, kept live by the events socket.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, type Project, type Session, api, enc, get } from '../api';
import { subscribe } from '../events';
import { navigate } from '../router';
import { ErrorBox, Page, StateBadge, Time, argvText, bytes, isUncaged, sessionCommand, sessionKind } from '../ui';

/** A first guess at the terminal size so the process starts close to what the screen shows. */
function guessSize() {
  const cols = Math.max(20, Math.min(300, Math.floor((window.innerWidth - 16) / 8.4)));
  const rows = Math.max(8, Math.min(120, Math.floor((window.innerHeight - 140) / 17)));
  return { cols, rows };
}

export function SessionList({ sessions }: { sessions: Session[] }) {
  if (sessions.length === 0) return <p class="muted">No sessions yet.</p>;
  return (
    <ul class="sessions" aria-label="Sessions">
      {sessions.map((s) => (
        <li class="card session" data-session-id={s.id} data-state={s.state}>
          <a class="stretch" href={`#/sessions/${enc(s.id)}`}>
            <code class="argv" title={argvText(s.argv)}>
              {sessionCommand(s)}
            </code>
          </a>
          <div class="meta">
            <StateBadge s={s} />
            {sessionKind(s) && <span class="badge">{sessionKind(s)}</span>}
            {isUncaged(s) && <span class="badge bad">uncaged</span>}
            <span class="muted">
              started <Time ts={s.started_at} />
              {s.ended_at ? (
                <>
                  {' '}
                  · ended <Time ts={s.ended_at} />
                </>
              ) : null}{' '}
              · {bytes(s.bytes_total ?? 0)} · {s.actor}
            </span>
          </div>
        </li>
      ))}
    </ul>
  );
}

export function ProjectPage({ id }: { id: string }) {
  const [project, setProject] = useState<Project | null>(null);
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [startError, setStartError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    get<Project>(`/api/v1/projects/${enc(id)}`).then(setProject).catch(setError);
    const refresh = () =>
      get<{ sessions: Session[] }>(`/api/v1/projects/${enc(id)}/sessions`)
        .then((r) => setSessions(r.sessions))
        .catch(setError);
    refresh();
    return subscribe((ev) => {
      if (ev.type === 'events.connected' || ev.type === 'gap' || !ev.session || ev.session.project_id === id) refresh();
    });
  }, [id]);

  const start = async (body: Record<string, unknown>) => {
    setBusy(true);
    setStartError(null);
    try {
      const s = await api<Session>('POST', `/api/v1/projects/${enc(id)}/sessions`, { ...body, ...guessSize() });
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
        <div class="start-buttons">
          <button class="btn primary" id="start-shell" disabled={busy} onClick={() => start({})}>
            Shell
          </button>
          {project?.agents.map((a) => (
            <button
              class={`btn${a.caged ? '' : ' danger'}`}
              disabled={busy}
              title={`${argvText(a.command)}${a.caged ? '' : ' — runs WITHOUT a cage'}`}
              onClick={() => start({ agent: a.name })}
            >
              Agent: {a.name}
              {!a.caged && <span class="badge bad">uncaged</span>}
            </button>
          ))}
          {project?.tasks.map((t) => (
            <button
              class="btn"
              disabled={busy}
              title={t.description ?? argvText(t.command)}
              onClick={() => start({ task: t.name })}
            >
              Task: {t.name}
            </button>
          ))}
        </div>
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
