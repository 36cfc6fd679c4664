// Projects list and the "load a project by path" form. A DSL error comes back as 422
// `dsl_invalid` with positioned diagnostics, rendered one per line like `kaged dsl validate`.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, type Diagnostic, type ProjectView, diagnosticsOf, enc } from '../api';
import { useApi } from '../context';
import { navigate } from '../router';
import { ErrorBox, Page } from '../ui';

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
