// The audit log, newest first: filters (type, exact or a prefix ending in '.', actor, project,
// session) and paging with `before`, all kept in the URL so a reload or a shared link shows the
// same page.

import { useEffect, useState } from 'preact/hooks';
import { type AuditPage as Page_, type Me, get } from '../api';
import { navigate } from '../router';
import { ErrorBox, Page } from '../ui';

const FILTERS = ['type', 'actor', 'project_id', 'session_id'] as const;

function hashWith(q: URLSearchParams): string {
  const s = q.toString();
  return `#/audit${s ? `?${s}` : ''}`;
}

export function AuditPage({ query }: { query: URLSearchParams; me: Me }) {
  // The page with the query it answers, so a stale answer is never shown for a newer query.
  const [loaded, setLoaded] = useState<{ key: string; page: Page_ } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [form, setForm] = useState<Record<string, string>>({});
  const key = query.toString();

  useEffect(() => {
    setForm(Object.fromEntries(FILTERS.map((f) => [f, query.get(f) ?? ''])));
    const api = new URLSearchParams();
    api.set('limit', query.get('limit') ?? '50');
    for (const f of [...FILTERS, 'before'] as const) {
      const v = query.get(f);
      if (v) api.set(f, v);
    }
    get<Page_>(`/api/v1/audit?${api}`)
      .then((p) => (setLoaded({ key, page: p }), setError(null)))
      .catch(setError);
  }, [key]);
  const page = loaded?.key === key ? loaded.page : null;

  const apply = (e: Event) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of FILTERS) if (form[f]?.trim()) q.set(f, form[f].trim());
    navigate(hashWith(q));
  };
  const filterBy = (k: string, v: string) => {
    const q = new URLSearchParams(query);
    q.delete('before');
    q.set(k, v);
    return hashWith(q);
  };
  const older = () => {
    const q = new URLSearchParams(query);
    if (page?.next_before != null) q.set('before', String(page.next_before));
    return hashWith(q);
  };
  const newest = () => {
    const q = new URLSearchParams(query);
    q.delete('before');
    return hashWith(q);
  };

  return (
    <Page title="Audit log">
      <form class="card filters" onSubmit={apply} aria-label="Filters">
        {FILTERS.map((f) => (
          <label>
            <span>{f === 'type' ? 'type (exact, or prefix ending in ".")' : f}</span>
            <input
              name={f}
              type="text"
              autocomplete="off"
              autocapitalize="off"
              spellcheck={false}
              placeholder={f === 'type' ? 'session.' : ''}
              value={form[f] ?? ''}
              onInput={(e) => setForm({ ...form, [f]: (e.target as HTMLInputElement).value })}
            />
          </label>
        ))}
        <div class="row">
          <button class="btn primary" type="submit">
            Filter
          </button>
          <a class="btn" href="#/audit">
            Clear
          </a>
        </div>
      </form>
      <ErrorBox error={error} title="Could not read the audit log" />
      {page && page.events.length === 0 && <p class="muted">No events match.</p>}
      {page && page.events.length > 0 && (
        <ol class="audit" aria-label="Audit events" data-query={key}>
          {page.events.map((ev) => (
            <li class="card event" data-type={ev.type}>
              <div class="event-head">
                <span class="muted">#{ev.id}</span>
                <time dateTime={ev.ts} title={new Date(ev.ts).toString()}>
                  {new Date(ev.ts).toLocaleString()}
                </time>
                <a class={`badge${/rejected|insecure|disabled/.test(ev.type) ? ' bad' : ''}`} href={filterBy('type', ev.type)}>
                  {ev.type}
                </a>
                {ev.actor && (
                  <a href={filterBy('actor', ev.actor)} class="muted">
                    {ev.actor}
                  </a>
                )}
                {ev.project_id && (
                  <a href={filterBy('project_id', ev.project_id)} class="muted">
                    project {ev.project_id.slice(0, 12)}
                  </a>
                )}
                {ev.session_id && (
                  <a href={filterBy('session_id', ev.session_id)} class="muted">
                    session {ev.session_id.slice(0, 12)}
                  </a>
                )}
              </div>
              {ev.data != null && JSON.stringify(ev.data) !== '{}' && <pre class="json">{JSON.stringify(ev.data, null, 2)}</pre>}
            </li>
          ))}
        </ol>
      )}
      <nav class="pager" aria-label="Pages">
        {query.get('before') && (
          <a class="btn" href={newest()}>
            ← Newest
          </a>
        )}
        {page?.next_before != null && (
          <a class="btn" id="audit-older" href={older()}>
            Older →
          </a>
        )}
      </nav>
    </Page>
  );
}
