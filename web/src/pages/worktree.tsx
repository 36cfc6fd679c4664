// One run's worktree, for review: the commits on its branch, the diff against base and what is
// not committed yet, the files touched, and what to do next — a shell or another run in the same
// worktree, a merge into base, a cleanup that snapshots first, and a one-click restore of any
// snapshot of the repository.

import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  type ProjectView,
  type StartSession,
  type WorktreeReview,
  type WorktreeRun,
  type WorktreeSnapshot,
  enc,
} from '../api';
import { useApi, useEvents } from '../context';
import { touches } from '../events';
import { navigate } from '../router';
import { ErrorBox, Page } from '../ui';

/** Registry times are Unix seconds. */
function When({ secs }: { secs: number | null }) {
  if (secs == null) return <span class="muted">—</span>;
  const d = new Date(secs * 1000);
  return (
    <time dateTime={d.toISOString()} title={d.toString()}>
      {d.toLocaleString()}
    </time>
  );
}

const short = (oid: string) => oid.slice(0, 10);

/** What a dirty checkout or a conflict named, from the error's details. */
function pathsOf(e: ApiError | null): string[] {
  const paths = (e?.details as { paths?: unknown } | undefined)?.paths;
  return Array.isArray(paths) ? paths.map(String) : [];
}

function RunFacts({ run }: { run: WorktreeRun }) {
  return (
    <div class="card">
      <p>
        <code>{run.branch}</code> from <code>{run.base}</code> at <code title={run.base_oid}>{short(run.base_oid)}</code>{' '}
        <span class={`badge${run.state === 'removed' ? ' bad' : ''}`}>{run.state}</span>
        {run.sessions.length > 0 && <span class="badge">{run.sessions.length} session(s) in it</span>}
      </p>
      <p class="path">
        <code>{run.path}</code>
      </p>
      <p class="muted">
        created <When secs={run.created_at} /> · last session ended <When secs={run.ended_at} />
        {run.removed_at != null && (
          <>
            {' '}
            · removed <When secs={run.removed_at} />
          </>
        )}
      </p>
      {run.sessions.map((id) => (
        <a key={id} class="btn small" href={`#/sessions/${enc(id)}`}>
          Session {id.slice(0, 8)}
        </a>
      ))}
    </div>
  );
}

function Review({ review }: { review: WorktreeReview }) {
  return (
    <>
      <section class="card" aria-labelledby="commits-title">
        <h2 id="commits-title">Commits not in {review.run.base} ({review.commits.length})</h2>
        {review.commits.length === 0 ? (
          <p class="muted">None yet.</p>
        ) : (
          <ul class="commits">
            {review.commits.map((c) => (
              <li key={c.oid}>
                <code title={c.oid}>{short(c.oid)}</code> {c.summary}{' '}
                <span class="muted">
                  — {c.author_name} · <When secs={c.time} />
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>
      <section class="card" aria-labelledby="files-title">
        <h2 id="files-title">Files touched ({review.files.length})</h2>
        <ul class="files">
          {review.files.map((f) => (
            <li key={f.path}>
              <span class="badge">{f.change}</span> <code>{f.path}</code>
              {review.untracked.includes(f.path) && <span class="muted"> untracked</span>}
              {review.changed.includes(f.path) && <span class="muted"> not committed</span>}
            </li>
          ))}
        </ul>
      </section>
      <section class="card" aria-labelledby="diff-title">
        <h2 id="diff-title">Diff against {review.run.base}</h2>
        <pre class="diff">{review.diff || '(no committed changes)'}</pre>
        <h2>Not committed</h2>
        <pre class="diff">{review.uncommitted_diff || '(nothing)'}</pre>
      </section>
    </>
  );
}

function Snapshots({ snapshots, restore, busy }: { snapshots: WorktreeSnapshot[]; restore: (run: string) => void; busy: boolean }) {
  return (
    <section class="card" aria-labelledby="snapshots-title">
      <h2 id="snapshots-title">Snapshots in this repository ({snapshots.length})</h2>
      {snapshots.length === 0 ? (
        <p class="muted">None: a cleanup takes one whenever removing a worktree would lose something.</p>
      ) : (
        <ul class="snapshots">
          {snapshots.map((s) => (
            <li key={s.reference}>
              <code>{s.reference}</code> <code title={s.oid}>{short(s.oid)}</code> <When secs={s.time} />{' '}
              <button class="btn small" disabled={busy} onClick={() => restore(s.run)}>
                Restore
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** `projectId` comes with the link: a removed run has no review to name its project. */
export function WorktreePage({ run, projectId }: { run: string; projectId: string }) {
  const api = useApi();
  const events = useEvents();
  const [record, setRecord] = useState<WorktreeRun | null>(null);
  const [review, setReview] = useState<WorktreeReview | null>(null);
  const [project, setProject] = useState<ProjectView | null>(null);
  const [snapshots, setSnapshots] = useState<WorktreeSnapshot[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const refresh = async () => {
    try {
      const list = await api.worktrees(projectId);
      setSnapshots(list.snapshots);
      const found = list.runs.find((r) => r.run === run) ?? null;
      setRecord(found);
      setReview(found?.state === 'active' ? await api.worktreeReview(run) : null);
      setError(found ? null : new Error(`project ${projectId} has no run ${run}`));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    api.project(projectId).then(setProject, setError);
    void refresh();
    return events.subscribe((ev) => {
      if (ev.type !== 'session.exited' && ev.type !== 'session.started') return;
      if (touches(ev, { sessionId: ev.session.id }) && ev.session.origin.worktree === run) refresh();
    });
  }, [api, events, run, projectId]);

  const act = async (what: () => Promise<string | null>) => {
    setBusy(true);
    setActionError(null);
    setNote(null);
    try {
      setNote(await what());
      await refresh();
    } catch (e) {
      setActionError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const startHere = (body: StartSession) =>
    act(async () => {
      const s = await api.startSession(projectId, { ...body, workspace: { kind: 'existing', run } });
      navigate(`#/sessions/${enc(s.id)}`);
      return null;
    });
  const merge = (mode: 'fast_forward' | 'merge_commit') =>
    act(async () => {
      const m = await api.mergeWorktree(run, { mode });
      return `${m.fast_forward ? 'Fast-forwarded' : 'Merged into'} ${m.base}: ${short(m.old)} → ${short(m.new)}`;
    });
  // Files git ignores are in no snapshot: a cleanup that finds some is refused with their
  // paths, and only a second, explicit click deletes them.
  const [ignoredRefusal, setIgnoredRefusal] = useState(false);
  const cleanUp = (discardIgnored: boolean) =>
    act(async () => {
      setIgnoredRefusal(false);
      try {
        const r = await api.removeWorktree(run, discardIgnored);
        const kept = r.loss.changed.length + r.loss.untracked.length + r.loss.unpushed.length;
        const deleted = r.loss.ignored.length > 0 ? `; ignored ${r.loss.ignored.join(', ')} deleted as asked` : '';
        return (r.snapshot ? `Removed; ${kept} unsaved item(s) are in snapshot ${r.snapshot.reference}` : 'Removed; nothing was left to keep') + deleted;
      } catch (e) {
        setIgnoredRefusal(!discardIgnored && pathsOf(e as ApiError).length > 0);
        throw e;
      }
    });
  const restore = (from: string) =>
    act(async () => {
      const r = await api.restoreWorktree(from, {});
      navigate(`#/worktrees/${enc(r.run)}?project=${enc(projectId)}`);
      return null;
    });
  const deleteBranch = () =>
    act(async () => {
      const r = await api.deleteWorktreeBranch(run);
      return `Deleted branch ${r.branch}`;
    });

  const active = record?.state === 'active';
  const dirty = pathsOf(actionError);
  return (
    <Page
      title={record ? `Run ${record.branch}` : `Run ${run.slice(0, 8)}`}
      actions={<a href={`#/projects/${enc(projectId)}`}>Project</a>}
    >
      <ErrorBox error={error} />
      {record && <RunFacts run={record} />}
      <section class="card" aria-labelledby="actions-title">
        <h2 id="actions-title">Next</h2>
        <div class="start-buttons">
          <button class="btn primary" disabled={busy || !active} onClick={() => startHere({})}>
            Shell in this worktree
          </button>
          {project?.agents.map((a) => (
            <button key={a.name} class="btn" disabled={busy || !active} onClick={() => startHere({ agent: a.name })}>
              Run {a.name} here
            </button>
          ))}
          <button class="btn" disabled={busy || !record || review?.commits.length === 0} onClick={() => merge('fast_forward')}>
            Fast-forward {record?.base}
          </button>
          <button class="btn" disabled={busy || !record || review?.commits.length === 0} onClick={() => merge('merge_commit')}>
            Merge commit into {record?.base}
          </button>
          <button class="btn danger" disabled={busy || !active} onClick={() => cleanUp(false)} title="Snapshots anything removing would lose">
            Clean up
          </button>
          <button class="btn danger" disabled={busy || !record || active} onClick={deleteBranch}>
            Delete branch
          </button>
        </div>
        {note && <p role="status">{note}</p>}
        <ErrorBox error={actionError} title="Refused" />
        {dirty.length > 0 && (
          <ul class="files" aria-label="Paths in the way">
            {dirty.map((p) => (
              <li key={p}>
                <code>{p}</code>
              </li>
            ))}
          </ul>
        )}
        {ignoredRefusal && dirty.length > 0 && (
          <button class="btn danger" id="discard-ignored" disabled={busy} onClick={() => cleanUp(true)}>
            Delete these ignored files and clean up
          </button>
        )}
      </section>
      {review && <Review review={review} />}
      <Snapshots snapshots={snapshots} restore={restore} busy={busy} />
    </Page>
  );
}
