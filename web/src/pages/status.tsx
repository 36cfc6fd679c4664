// Mode, auth, sandbox and "where's my data?": the same facts `kaged status` prints.

import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Paths, Status } from '../api';
import { useApi } from '../context';
import { ErrorBox, Page, Time, duration } from '../ui';

const PATH_LABELS: [keyof Paths, string][] = [
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
          <li key={k}>
            <span class="muted">{k}:</span> <Value v={x} />
          </li>
        ))}
      </ul>
    );
  return <code>{String(v)}</code>;
}

function PathsCard({ paths }: { paths: Paths }) {
  return (
    <section class="card" aria-labelledby="data-title">
      <h2 id="data-title">Where's my data?</h2>
      <dl class="kv" id="paths">
        {PATH_LABELS.map(([k, label]) => (
          <Fragment key={k}>
            <dt>{label}</dt>
            <dd>
              <Value v={paths[k]} />
              {k === 'config' && !paths.config_loaded && <span class="muted"> (not present; defaults in use)</span>}
              {k === 'runtime' && paths.runtime_note ? <span class="muted"> — {paths.runtime_note}</span> : null}
            </dd>
          </Fragment>
        ))}
      </dl>
    </section>
  );
}

function ModeCard({ st }: { st: Status }) {
  return (
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
  );
}

function AuthCard({ st }: { st: Status }) {
  return (
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
  );
}

function SandboxCard({ sandbox }: { sandbox: Status['sandbox'] }) {
  return (
    <section class={`card${sandbox.enabled ? '' : ' danger-card'}`} aria-labelledby="sandbox-title">
      <h2 id="sandbox-title">Sandbox</h2>
      <dl class="kv">
        <dt>Cages</dt>
        <dd class={sandbox.enabled ? '' : 'danger-text'}>{sandbox.enabled ? 'enabled (bubblewrap)' : 'DISABLED (--no-sandbox)'}</dd>
        <dt>bwrap</dt>
        <dd>
          <Value v={sandbox.bwrap} />
        </dd>
        <dt>cgroups</dt>
        <dd>
          <Value v={sandbox.cgroups} />
        </dd>
      </dl>
    </section>
  );
}

function DaemonCard({ st }: { st: Status }) {
  return (
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
        <dd>
          {st.warnings.length ? (
            st.warnings.map((w) => (
              <span key={w} class="badge bad">
                {w}
              </span>
            ))
          ) : (
            <span class="muted">none</span>
          )}
        </dd>
      </dl>
    </section>
  );
}

export function StatusPage() {
  const api = useApi();
  const [st, setSt] = useState<Status | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api.status().then(setSt, setError);
  }, [api]);
  return (
    <Page title="Status">
      <ErrorBox error={error} title="Could not read the daemon's status" />
      {st && (
        <div class="grid">
          <PathsCard paths={st.paths} />
          <ModeCard st={st} />
          <AuthCard st={st} />
          <SandboxCard sandbox={st.sandbox} />
          <DaemonCard st={st} />
        </div>
      )}
    </Page>
  );
}
