// Small shared pieces: error boxes, state badges, times.

import type { ComponentChildren } from 'preact';
import { ApiError, type CageState, type SessionInfo } from './api';

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <strong>{title ?? 'Something went wrong'}</strong>
      <p>
        {error instanceof Error ? error.message : String(error)}
        {error instanceof ApiError && error.status ? <span class="muted"> ({error.status} {error.code})</span> : null}
      </p>
    </div>
  );
}

export function StateBadge({ s }: { s: Pick<SessionInfo, 'state' | 'exit_code' | 'signal'> }) {
  let label: string = s.state;
  if (s.state === 'exited') {
    label = s.signal != null ? `exited · signal ${s.signal}` : s.exit_code != null ? `exited · ${s.exit_code}` : 'exited';
  }
  const bad = s.state === 'exited' && (s.signal != null || (s.exit_code ?? 0) !== 0);
  return <span class={`badge state-${s.state}${bad ? ' bad' : ''}`}>{label}</span>;
}

/** Where an agent run stands, with its reason as the tooltip. */
export function AgentBadge({ s }: { s: Pick<SessionInfo, 'agent'> }) {
  const a = s.agent;
  if (!a) return null;
  const label = a.status === 'waiting' ? 'waiting for you' : a.status;
  return (
    <span class={`badge agent agent-${a.status}`} title={a.reason ?? ''} data-agent-status={a.status}>
      {label}
      {a.reason && a.status === 'waiting' ? `: ${a.reason}` : ''}
    </span>
  );
}

export function Time({ ts }: { ts: string | null | undefined }) {
  if (!ts) return <span class="muted">—</span>;
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return <span>{ts}</span>;
  return (
    <time dateTime={ts} title={d.toString()}>
      {ago(d)}
    </time>
  );
}

export function ago(d: Date): string {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return d.toLocaleString();
}

export function duration(secs: number): string {
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  return [d && `${d}d`, (d || h) && `${h}h`, (d || h || m) && `${m}m`, `${s}s`].filter(Boolean).join(' ');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

export function Page({ title, children, actions }: { title: ComponentChildren; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="page">
      <div class="page-head">
        <h1>{title}</h1>
        {actions ? <div class="actions">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}

export function argvText(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** What a session runs, as the operator asked for it: the command inside the cage, not bwrap's argv. */
export function sessionCommand(s: SessionInfo): string {
  return argvText(s.origin.command.length ? s.origin.command : s.argv) || '(shell)';
}

/** "shell", "agent claude", "task test": the kind and name the daemon recorded. */
export function sessionKind(s: SessionInfo): string {
  return [s.origin.kind, s.origin.name].filter(Boolean).join(' ');
}

/** Why a session runs without a cage, or null when it has one. */
function uncagedReason(cage: CageState): string | null {
  switch (cage.state) {
    case 'caged':
      return null;
    case 'disabled_by_project':
      return 'cage: disabled in the project file';
    case 'no_sandbox':
      return 'the daemon runs with --no-sandbox';
  }
}

/** Why a cage runs without its memory, pids and cpu limits, or null when they hold (or none were set). */
function unenforcedLimits(cage: CageState): string | null {
  if (cage.state !== 'caged') return null;
  const limits = cage.summary.cgroup_limits;
  switch (limits.status) {
    case 'not_requested':
    case 'enforced':
      return null;
    case 'best_effort':
      return `${limits.reason} (best-effort allowed by ${limits.allowed_by})`;
    case 'not_enforced':
      return limits.reason;
  }
}

/** A cage's limits in words ("walltime 1h · memory 2G · 256 pids"), and whether they hold
 * here; "none" when it sets none. */
export function limitsText(cage: CageState): string {
  if (cage.state !== 'caged') return 'none (uncaged)';
  const l = cage.summary.limits;
  const parts = [
    l.walltime != null && `walltime ${typeof l.walltime === 'number' ? duration(l.walltime) : l.walltime}`,
    l.memory != null && `memory ${typeof l.memory === 'number' ? bytes(l.memory) : l.memory}`,
    l.pids != null && `${l.pids} pids`,
    l.cpu != null && `${l.cpu} CPU`,
  ].filter(Boolean);
  if (!parts.length) return 'none';
  const unenforced = unenforcedLimits(cage);
  return parts.join(' · ') + (unenforced ? ` (not enforced here: ${unenforced})` : '');
}

/** The "limits not enforced" badge, for a cage that runs best-effort. */
export function LimitsBadge({ s }: { s: SessionInfo }) {
  const reason = unenforcedLimits(s.origin.cage);
  return reason ? (
    <span class="badge bad" title={reason}>
      limits not enforced
    </span>
  ) : null;
}

/** The cage's network, when it is not `none`: `host` is loud (the LAN, the host's loopback and
 * kaged's own port are reachable), a filtered network names what it lets through. */
export function NetworkBadge({ s }: { s: SessionInfo }) {
  const cage = s.origin.cage;
  if (cage.state !== 'caged') return null;
  const net = cage.summary.network;
  if (net === 'none') return null;
  if (net === 'host')
    return (
      <span class="badge bad" id="network-host" title="This cage shares the host's network: the LAN, the host's loopback (kaged's own port included) and the internet. Use network: {allow: [...]} to name what it may reach.">
        host network
      </span>
    );
  const allow = net.allow.length ? net.allow.join(', ') : 'no hosts';
  const deny = net.deny.length ? `; deny ${net.deny.join(', ')}` : '';
  return (
    <span class="badge" id="network-filtered" title={`Egress gateway: allow ${allow}${deny}; providers through /p/<name>`}>
      egress: {net.allow.length} allowed
    </span>
  );
}

/** The "uncaged" badge, for a session whose cage was disabled or never available. */
export function UncagedBadge({ s }: { s: SessionInfo }) {
  const reason = uncagedReason(s.origin.cage);
  return reason ? (
    <span class="badge bad" title={reason}>
      uncaged
    </span>
  ) : null;
}
