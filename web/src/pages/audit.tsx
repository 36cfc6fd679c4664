// The audit log, newest first: filters (type, exact or a prefix ending in '.', actor, project,
// session) and paging with `before`, all kept in the URL so a reload or a shared link shows the
// same page.

import { useEffect, useState } from 'preact/hooks';
import type { AuditPage as Page_, AuditParams, AuditRow } from '../api';
import { useApi } from '../context';
import { navigate } from '../router';
import { ErrorBox, Page } from '../ui';

const FILTERS = ['type', 'actor', 'project_id', 'session_id'] as const;
type Filter = (typeof FILTERS)[number];

/** The audit route for `query` after `change` is applied to a copy of it. */
function hashWith(query: URLSearchParams, change: (q: URLSearchParams) => void = () => {}): string {
  const q = new URLSearchParams(query);
  change(q);
  const s = q.toString();
  return `#/audit${s ? `?${s}` : ''}`;
}

/** The API query for the page's URL query: its filters, `before`, and 50 rows unless told. */
function auditParams(query: URLSearchParams): AuditParams {
  const before = query.get('before');
  const params: AuditParams = { limit: Number(query.get('limit') || '50'), before: before ? Number(before) : null };
  for (const f of FILTERS) params[f] = query.get(f) || null;
  return params;
}

/** The page answering `query`; never a stale answer to an older query. */
function useAuditPage(query: URLSearchParams) {
  const api = useApi();
  const [loaded, setLoaded] = useState<{ key: string; page: Page_ } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const key = query.toString();
  useEffect(() => {
    api
      .audit(auditParams(query))
      .then((page) => (setLoaded({ key, page }), setError(null)))
      .catch(setError);
  }, [api, key]);
  return { page: loaded?.key === key ? loaded.page : null, error };
}

function FilterForm({ query }: { query: URLSearchParams }) {
  const [form, setForm] = useState<Partial<Record<Filter, string>>>({});
  useEffect(() => setForm(Object.fromEntries(FILTERS.map((f) => [f, query.get(f) ?? '']))), [query.toString()]);
  const apply = (e: Event) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of FILTERS) if (form[f]?.trim()) q.set(f, form[f].trim());
    navigate(hashWith(q));
  };
  return (
    <form class="card filters" onSubmit={apply} aria-label="Filters">
      {FILTERS.map((f) => (
        <label key={f}>
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
  );
}

function EventItem({ ev, query }: { ev: AuditRow; query: URLSearchParams }) {
  // A filter link starts from the newest page of the narrower query.
  const filterBy = (k: Filter, v: string) =>
    hashWith(query, (q) => {
      q.delete('before');
      q.set(k, v);
    });
  return (
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
  );
}

function Pager({ query, nextBefore }: { query: URLSearchParams; nextBefore: number | null | undefined }) {
  return (
    <nav class="pager" aria-label="Pages">
      {query.get('before') && (
        <a class="btn" href={hashWith(query, (q) => q.delete('before'))}>
          ← Newest
        </a>
      )}
      {nextBefore != null && (
        <a class="btn" id="audit-older" href={hashWith(query, (q) => q.set('before', String(nextBefore)))}>
          Older →
        </a>
      )}
    </nav>
  );
}

export function AuditPage({ query }: { query: URLSearchParams }) {
  const { page, error } = useAuditPage(query);
  return (
    <Page title="Audit log">
      <FilterForm query={query} />
      <ErrorBox error={error} title="Could not read the audit log" />
      {page && page.events.length === 0 && <p class="muted">No events match.</p>}
      {page && page.events.length > 0 && (
        <ol class="audit" aria-label="Audit events" data-query={query.toString()}>
          {page.events.map((ev) => (
            <EventItem key={ev.id} ev={ev} query={query} />
          ))}
        </ol>
      )}
      <Pager query={query} nextBefore={page?.next_before} />
    </Page>
  );
}
