// Small shared pieces: error boxes, state badges, times.

import type { ComponentChildren } from 'preact';
import { ApiError, type Session } from './api';

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error as ApiError;
  return (
    <div class="error" role="alert">
      <strong>{title ?? 'Something went wrong'}</strong>
      <p>
        {e.message ?? String(error)}
        {e.status ? <span class="muted"> ({e.status} {e.code})</span> : null}
      </p>
    </div>
  );
}

export function StateBadge({ s }: { s: Pick<Session, 'state' | 'exit_code' | 'signal'> }) {
  let label: string = s.state;
  if (s.state === 'exited') {
    label = s.signal != null ? `exited · signal ${s.signal}` : s.exit_code != null ? `exited · ${s.exit_code}` : 'exited';
  }
  const bad = s.state === 'exited' && (s.signal != null || (s.exit_code ?? 0) !== 0);
  return <span class={`badge state-${s.state}${bad ? ' bad' : ''}`}>{label}</span>;
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
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
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

export function argvText(argv: string[] | undefined): string {
  return (argv ?? []).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** What a session runs, as the operator asked for it: the command inside the cage, not bwrap's argv. */
export function sessionCommand(s: Session): string {
  const cmd = s.meta?.command;
  const argv = Array.isArray(cmd) ? (cmd as string[]) : s.argv;
  return argvText(argv) || '(shell)';
}

/** "shell", "agent claude", "task test": the kind and name the daemon recorded. */
export function sessionKind(s: Session): string {
  const kind = typeof s.meta?.kind === 'string' ? s.meta.kind : '';
  const name = typeof s.meta?.name === 'string' ? s.meta.name : '';
  return [kind, name].filter(Boolean).join(' ');
}

export function isUncaged(s: Session): boolean {
  const cage = s.meta?.cage as { caged?: boolean } | undefined;
  return cage?.caged === false;
}
