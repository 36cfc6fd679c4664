// Projects list and the "load a project by path" form. A DSL error comes back as 422
// `dsl_invalid` with positioned diagnostics, rendered one per line like `kaged dsl validate`.

import { useEffect, useState } from 'preact/hooks';
import { type AgentStatus, ApiError, type Diagnostic, type ProjectView, type SessionInfo, diagnosticsOf, enc } from '../api';
import { useApi, useEvents } from '../context';
import { navigate } from '../router';
import { AgentBadge, ErrorBox, Page, Time } from '../ui';

/** Who needs the operator first: waiting, then failed, then the rest. */
const RANK: Record<AgentStatus, number> = { waiting: 0, error: 1, working: 2, starting: 3, done: 4 };
/** Ended runs stay on the overview this long. */
const ENDED_SHOWN_MS = 24 * 3600 * 1000;

/** Every agent run on one screen, those waiting for the operator first. */
function Agents() {
  const api = useApi();
  const events = useEvents();
  const [runs, setRuns] = useState<SessionInfo[]>([]);
  useEffect(() => {
    const load = () =>
      api.allSessions().then(
        (r) => {
          const now = Date.now();
          const shown = r.sessions.filter(
            (s) => s.agent && (s.state !== 'exited' || now - new Date(s.agent.since).getTime() < ENDED_SHOWN_MS),
          );
          shown.sort((a, b) => RANK[a.agent!.status] - RANK[b.agent!.status] || b.agent!.since.localeCompare(a.agent!.since));
          setRuns(shown);
        },
        () => {},
      );
    load();
    return events.subscribe((ev) => {
      if (ev.type === 'agent.state' || ev.type === 'run.started' || ev.type === 'run.ended' || ev.type === 'events.connected') load();
    });
  }, [api, events]);
  if (!runs.length) return null;
  return (
    <section aria-labelledby="agents-h" class="agents-overview">
      <h2 id="agents-h">Agents</h2>
      <ul class="agent-runs" id="agent-runs">
        {runs.map((s) => (
          <li key={s.id} data-status={s.agent!.status}>
            <a href={`#/sessions/${enc(s.id)}`}>
              <strong>{s.origin.name ?? 'agent'}</strong> <span class="muted">in {s.project_id}</span>
            </a>{' '}
            <AgentBadge s={s} /> <Time ts={s.agent!.since} />
          </li>
        ))}
      </ul>
    </section>
  );
}

export function Diagnostics({ list }: { list: Diagnostic[] }) {
  return (
    <ul class="diagnostics" aria-label="Project file problems">
      {list.map((d) => (
        // Diagnostics have no id; the daemon drops exact duplicates, so all fields together are unique.
        <li key={`${d.file}:${d.line}:${d.column}:${d.code}:${d.pointer}:${d.message}`}>
          <code class="where">
            {d.file}:{d.line}:{d.column}
          </code>{' '}
          <span class="badge bad">{d.code}</span> <span>{d.message}</span>
          {d.pointer ? <span class="muted"> (at {d.pointer})</span> : null}
        </li>
      ))}
    </ul>
  );
}

function LoadForm({ onLoaded }: { onLoaded: (p: ProjectView) => void }) {
  const api = useApi();
  const [path, setPath] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onLoaded(await api.loadProject({ path: path.trim() }));
      setPath('');
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const diags = diagnosticsOf(error);
  return (
    <form class="card load-form" onSubmit={submit} aria-labelledby="load-title">
      <h2 id="load-title">Load a project by path</h2>
      <label for="project-path">Absolute path of a directory with <code>.kaged/project.yaml</code></label>
      <div class="row">
        <input
          id="project-path"
          name="path"
          type="text"
          inputMode="url"
          autocomplete="off"
          autocapitalize="off"
          spellcheck={false}
          placeholder="/home/me/src/my-project"
          required
          pattern="/.*"
          title="an absolute path, starting with /"
          value={path}
          onInput={(e) => setPath((e.target as HTMLInputElement).value)}
        />
        <button class="btn primary" type="submit" disabled={busy}>
          {busy ? 'Loading…' : 'Load'}
        </button>
      </div>
      {diags ? (
        <div class="error" role="alert">
          <strong>{error?.message ?? 'The project file is invalid'}</strong>
          <Diagnostics list={diags} />
        </div>
      ) : (
        <ErrorBox error={error} title="Could not load the project" />
      )}
    </form>
  );
}

export function ProjectsPage() {
  const api = useApi();
  const [projects, setProjects] = useState<ProjectView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () =>
    api
      .projects()
      .then((r) => (setProjects(r.projects), setError(null)))
      .catch(setError);
  useEffect(() => {
    load();
  }, []);
  return (
    <Page title="Projects">
      <Agents />
      <ErrorBox error={error} title="Could not list projects" />
      {projects && projects.length === 0 && <p class="muted">No projects yet. Load one by its path below.</p>}
      {projects && projects.length > 0 && (
        <ul class="cards" aria-label="Projects">
          {projects.map((p) => (
            <li key={p.id} class="card project">
              <a class="stretch" href={`#/projects/${enc(p.id)}`}>
                <h2>{p.name}</h2>
              </a>
              <p class="path">
                <code>{p.root}</code>
              </p>
              {p.description && <p>{p.description}</p>}
              <p class="muted">
                {p.agents.length} agent{p.agents.length === 1 ? '' : 's'} · {p.tasks.length} task
                {p.tasks.length === 1 ? '' : 's'}
              </p>
            </li>
          ))}
        </ul>
      )}
      <LoadForm
        onLoaded={(p) => {
          load();
          navigate(`#/projects/${enc(p.id)}`);
        }}
      />
    </Page>
  );
}
