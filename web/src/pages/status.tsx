// Mode, auth, sandbox and "where's my data?": the same facts `kaged status` prints.

import { useEffect, useState } from 'preact/hooks';
import { type Status, get } from '../api';
import { ErrorBox, Page, Time, duration } from '../ui';

const PATH_LABELS: [string, string][] = [
  ['state', 'State directory'],
  ['config', 'Config file'],
  ['local', 'Operator-local file (local.toml)'],
  ['runtime', 'Runtime directory (nonce files)'],
  ['database', 'Database'],
  ['audit', 'Audit log'],
  ['sessions', 'Session transcripts'],
];

function Value({ v }: { v: unknown }) {
  if (v === null || v === undefined) return <span class="muted">—</span>;
  if (typeof v === 'boolean') return <span>{v ? 'yes' : 'no'}</span>;
  if (Array.isArray(v)) return <code>{v.map(String).join(', ')}</code>;
  if (typeof v === 'object')
    return (
      <ul class="nested">
        {Object.entries(v as Record<string, unknown>).map(([k, x]) => (
          <li>
            <span class="muted">{k}:</span> <Value v={x} />
          </li>
        ))}
      </ul>
    );
  return <code>{String(v)}</code>;
}

export function StatusPage() {
  const [st, setSt] = useState<Status | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    get<Status>('/api/v1/status').then(setSt).catch(setError);
  }, []);
  return (
    <Page title="Status">
      <ErrorBox error={error} title="Could not read the daemon's status" />
      {st && (
        <div class="grid">
          <section class="card" aria-labelledby="data-title">
            <h2 id="data-title">Where's my data?</h2>
            <dl class="kv" id="paths">
              {PATH_LABELS.map(([k, label]) => (
                <>
                  <dt>{label}</dt>
                  <dd>
                    <Value v={st.paths[k]} />
                    {k === 'config' && st.paths.config_loaded === false && <span class="muted"> (not present; defaults in use)</span>}
                    {k === 'runtime' && st.paths.runtime_note ? <span class="muted"> — {String(st.paths.runtime_note)}</span> : null}
                  </dd>
                </>
              ))}
            </dl>
          </section>
          <section class="card" aria-labelledby="mode-title">
            <h2 id="mode-title">Mode</h2>
            <dl class="kv">
              <dt>Deployment mode</dt>
              <dd>
                <strong>{st.mode}</strong> <span class="muted">({st.mode_reason})</span>
              </dd>
              <dt>Listening on</dt>
              <dd>
                <code>{st.bind}</code> · <code>{st.url}</code>
              </dd>
            </dl>
          </section>
          <section class={`card${st.insecure ? ' danger-card' : ''}`} aria-labelledby="auth-title">
            <h2 id="auth-title">Authentication</h2>
            <dl class="kv">
              <dt>auth.mode</dt>
              <dd>
                <strong>{st.auth_mode}</strong>
              </dd>
              {st.insecure && (
                <>
                  <dt>Insecure</dt>
                  <dd class="danger-text">yes — every request is accepted{st.insecure_reason ? ` (reason: ${st.insecure_reason})` : ''}</dd>
                </>
              )}
            </dl>
          </section>
          <section class={`card${st.sandbox?.enabled ? '' : ' danger-card'}`} aria-labelledby="sandbox-title">
            <h2 id="sandbox-title">Sandbox</h2>
            <dl class="kv">
              <dt>Cages</dt>
              <dd class={st.sandbox?.enabled ? '' : 'danger-text'}>
                {st.sandbox?.enabled ? 'enabled (bubblewrap)' : 'DISABLED (--no-sandbox)'}
              </dd>
              {Object.entries(st.sandbox ?? {})
                .filter(([k]) => k !== 'enabled')
                .map(([k, v]) => (
                  <>
                    <dt>{k}</dt>
                    <dd>
                      <Value v={v} />
                    </dd>
                  </>
                ))}
            </dl>
          </section>
          <section class="card" aria-labelledby="daemon-title">
            <h2 id="daemon-title">Daemon</h2>
            <dl class="kv">
              <dt>Version</dt>
              <dd>
                <code>{st.version}</code>
              </dd>
              <dt>PID</dt>
              <dd>
                <code>{st.pid}</code>
              </dd>
              <dt>Started</dt>
              <dd>
                <Time ts={st.started_at} /> <span class="muted">(up {duration(st.uptime_secs)})</span>
              </dd>
              <dt>Warnings</dt>
              <dd>{st.warnings.length ? st.warnings.map((w) => <span class="badge bad">{w}</span>) : <span class="muted">none</span>}</dd>
            </dl>
          </section>
        </div>
      )}
    </Page>
  );
}
