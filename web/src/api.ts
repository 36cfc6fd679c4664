// The daemon's HTTP API (design §5), as the UI uses it. Every request goes to the page's own
// origin with the session cookie; every non-GET carries the CSRF token from GET /api/v1/me.

export interface Identity {
  user_id: string;
  email?: string | null;
  groups?: string[];
  mode: string;
}

export interface Me {
  identity: Identity;
  csrf_token: string;
  warnings: string[];
}

export interface Agent {
  name: string;
  command: string[];
  caged: boolean;
}

export interface Task {
  name: string;
  command: string[];
  description?: string | null;
}

export interface Project {
  id: string;
  name: string;
  root: string;
  description?: string | null;
  agents: Agent[];
  tasks: Task[];
}

export type SessionState = 'starting' | 'running' | 'exited';

export interface Session {
  id: string;
  project_id: string;
  actor: string;
  argv: string[];
  state: SessionState;
  exit_code: number | null;
  signal: number | null;
  started_at: string;
  ended_at: string | null;
  cols: number;
  rows: number;
  bytes_total: number;
  meta?: Record<string, unknown>;
}

export interface Diagnostic {
  file?: string;
  line?: number;
  column?: number;
  code?: string;
  message: string;
  pointer?: string;
}

export interface AuditEvent {
  id: number;
  ts: string;
  type: string;
  actor: string | null;
  project_id: string | null;
  session_id: string | null;
  data: unknown;
}

export interface AuditPage {
  events: AuditEvent[];
  next_before: number | null;
}

export interface Status {
  mode: string;
  mode_reason: string;
  paths: Record<string, string | boolean | null>;
  bind: string;
  url: string;
  auth_mode: string;
  insecure: boolean;
  insecure_reason?: string | null;
  sandbox: { enabled: boolean; bwrap?: unknown; cgroups?: unknown; [k: string]: unknown };
  warnings: string[];
  version: string;
  pid: number;
  started_at: string;
  uptime_secs: number;
}

/** A failed API call, carrying the daemon's error envelope (`{"error":{code,message,details}}`). */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details?: any,
  ) {
    super(message);
  }
}

/** Listeners for auth failures, so any screen's 401/403 turns into the app-wide error screen. */
type AuthListener = (e: ApiError) => void;
const authListeners = new Set<AuthListener>();
export function onAuthError(l: AuthListener): () => void {
  authListeners.add(l);
  return () => authListeners.delete(l);
}

/**
 * Warnings the daemon reports (`insecure-mode`, `no-sandbox`). Every response carries them in
 * `X-Kaged-Warning`, so the banners appear even on screens whose API call failed.
 */
type WarningListener = (w: string[]) => void;
const warningListeners = new Set<WarningListener>();
let warnings: string[] = [];
export function currentWarnings(): string[] {
  return warnings;
}
export function onWarnings(l: WarningListener): () => void {
  warningListeners.add(l);
  return () => warningListeners.delete(l);
}
export function noteWarnings(header: string | string[] | null | undefined) {
  const list = (Array.isArray(header) ? header : (header ?? '').split(','))
    .map((w) => w.trim())
    .filter(Boolean);
  const merged = [...new Set([...warnings, ...list])];
  if (merged.length !== warnings.length) {
    warnings = merged;
    warningListeners.forEach((l) => l(warnings));
  }
}

let csrf = '';
export function setCsrf(token: string) {
  csrf = token;
}
export function csrfToken(): string {
  return csrf;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Kaged-CSRF'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the kaged daemon (${(e as Error).message})`);
  }
  noteWarnings(res.headers.get('x-kaged-warning'));
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = json?.error;
    const e = new ApiError(
      res.status,
      err?.code ?? `http_${res.status}`,
      err?.message ?? (text.slice(0, 200) || res.statusText),
      err?.details,
    );
    if (res.status === 401 || (res.status === 403 && e.code === 'forbidden' && method === 'GET')) {
      authListeners.forEach((l) => l(e));
    }
    throw e;
  }
  return json as T;
}

export const get = <T>(path: string) => api<T>('GET', path);

/** `ws://host/path?csrf=…`: browsers cannot put headers on an upgrade, so the token rides the query. */
export function wsUrl(path: string): string {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  u.searchParams.set('csrf', csrf);
  return u.toString();
}

export const enc = encodeURIComponent;
