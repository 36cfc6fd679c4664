// The daemon's HTTP API (design §5), as the UI uses it. Every request goes to the page's own
// origin with the session cookie; every non-GET carries the CSRF token from GET /api/v1/me.
// The wire types are generated from the daemon's Rust types (./api.gen).

import type {
  ApprovalAnswer,
  ApprovalList,
  ApprovalOutcome,
  AuditPage,
  AuditParams,
  BranchDeleted,
  ErrorCode,
  ErrorEnvelope,
  KeyBarChoice,
  LoadProject,
  Me,
  ProjectList,
  PushInfo,
  PushRevoked,
  PushSubscribe,
  PushSubscriptionView,
  ProjectView,
  SessionInfo,
  SessionList,
  SignalRequest,
  StartSession,
  Status,
  UnknownWorktreeList,
  Warning,
  MergeWorktree,
  RestoreWorktree,
  WorktreeList,
  WorktreeMerged,
  WorktreeRemoved,
  WorktreeReview,
  WorktreeRun,
} from './api.gen';
import { Store } from './store';

export type {
  Approval,
  ApprovalVerdict,
  AgentState,
  AgentStatus,
  AgentAdapter,
  AgentView,
  AuditPage,
  AuditParams,
  AuditRow,
  CageState,
  ClientControl,
  DaemonEvent,
  EgressConnection,
  Me,
  Paths,
  ProjectView,
  PushInfo,
  PushSubscriptionView,
  ServerControl,
  SessionInfo,
  SignalName,
  StartSession,
  Status,
  UnknownWorktree,
  Warning,
  WorktreeList,
  WorktreeReview,
  WorktreeRun,
  WorktreeSnapshot,
} from './api.gen';

/** Failures that never produced the daemon's error envelope. */
export type LocalErrorCode = 'network' | `http_${number}`;

/** A failed API call, carrying the daemon's error envelope when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly envelope: ErrorEnvelope | null,
    message: string,
  ) {
    super(message);
  }

  get code(): ErrorCode | LocalErrorCode {
    return this.envelope?.error.code ?? (this.status ? `http_${this.status}` : 'network');
  }

  get details(): unknown {
    return this.envelope?.error.details;
  }
}

/**
 * One problem in a project file. It travels in the free-JSON `details.diagnostics` of a
 * `dsl_invalid` error, so it is not among the generated types; it mirrors kaged-dsl's Diagnostic.
 */
export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  code: string;
  message: string;
  pointer: string;
}

export function diagnosticsOf(e: ApiError | null): Diagnostic[] | undefined {
  if (e?.code !== 'dsl_invalid') return undefined;
  const list = (e.details as { diagnostics?: unknown } | undefined)?.diagnostics;
  return Array.isArray(list) ? (list as Diagnostic[]) : undefined;
}

export const enc = encodeURIComponent;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

// A Record, so a new Warning in the generated types fails to compile until it is listed here.
const KNOWN_WARNINGS: Record<Warning, true> = { 'insecure-mode': true, 'no-sandbox': true };
const isWarning = (w: string): w is Warning => Object.hasOwn(KNOWN_WARNINGS, w);

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function asEnvelope(json: unknown): ErrorEnvelope | null {
  const error = (json as Partial<ErrorEnvelope> | null)?.error;
  return typeof error?.code === 'string' && typeof error.message === 'string' ? (json as ErrorEnvelope) : null;
}

/** Where this origin keeps its page key: other ports are other origins and cannot read it. */
const PAGE_KEY = 'kaged-page-key';

/**
 * The page key of this browser session. `/launch` hands it over in the redirect's fragment
 * (`#kaged-page=…`), which no server sees; it is kept in this origin's storage, so a reload
 * and a second tab keep working, and taken out of the address bar at once. The daemon
 * accepts the session cookie only together with it: browsers send a host's cookies to every
 * port on that host, so the cookie alone must not be a credential.
 */
function takePageKey(): string {
  const m = /^#kaged-page=([A-Za-z0-9_-]+)/.exec(location.hash);
  try {
    if (m) {
      localStorage.setItem(PAGE_KEY, m[1]);
      history.replaceState(null, '', `${location.pathname}#/`);
    }
    return localStorage.getItem(PAGE_KEY) ?? '';
  } catch {
    // Storage disabled: this tab still works until it is reloaded.
    return m?.[1] ?? '';
  }
}

/** The daemon as this tab talks to it: its endpoints plus the per-sign-in state they need. */
export class Api {
  private csrf = '';
  private readonly pageKey = takePageKey();
  /** Danger states announced so far; every response repeats them, so they only grow. */
  readonly warnings = new Store<Warning[]>([]);
  /** The latest 401 (or a refused read), which replaces every screen. */
  readonly authFailure = new Store<ApiError | null>(null);

  /** Who is signed in; keeps the CSRF token and the warnings it reports. */
  async me(): Promise<Me> {
    const me = await this.request<Me>('GET', '/api/v1/me');
    this.csrf = me.csrf_token;
    this.noteWarnings(me.warnings);
    return me;
  }

  status = () => this.request<Status>('GET', '/api/v1/status');
  projects = () => this.request<ProjectList>('GET', '/api/v1/projects');
  project = (id: string) => this.request<ProjectView>('GET', `/api/v1/projects/${enc(id)}`);
  loadProject = (body: LoadProject) => this.request<ProjectView>('POST', '/api/v1/projects', body);
  sessions = (projectId: string) => this.request<SessionList>('GET', `/api/v1/projects/${enc(projectId)}/sessions`);
  startSession = (projectId: string, body: StartSession) =>
    this.request<SessionInfo>('POST', `/api/v1/projects/${enc(projectId)}/sessions`, body);
  session = (id: string) => this.request<SessionInfo>('GET', `/api/v1/sessions/${enc(id)}`);
  allSessions = () => this.request<SessionList>('GET', '/api/v1/sessions');
  signal = (id: string, body: SignalRequest) => this.request<SessionInfo>('POST', `/api/v1/sessions/${enc(id)}/signal`, body);
  endSession = (id: string) => this.request<SessionInfo>('DELETE', `/api/v1/sessions/${enc(id)}`);
  approvals = () => this.request<ApprovalList>('GET', '/api/v1/approvals');
  answerApproval = (id: string, body: ApprovalAnswer) =>
    this.request<ApprovalOutcome>('POST', `/api/v1/approvals/${enc(id)}`, body);
  pushInfo = () => this.request<PushInfo>('GET', '/api/v1/push');
  subscribePush = (body: PushSubscribe) => this.request<PushSubscriptionView>('POST', '/api/v1/push/subscriptions', body);
  revokePush = (id: string) => this.request<PushRevoked>('DELETE', `/api/v1/push/subscriptions/${enc(id)}`);
  keybar = () => this.request<KeyBarChoice>('GET', '/api/v1/me/keybar');
  setKeybar = (body: KeyBarChoice) => this.request<KeyBarChoice>('PUT', '/api/v1/me/keybar', body);
  worktrees = (projectId: string) => this.request<WorktreeList>('GET', `/api/v1/projects/${enc(projectId)}/worktrees`);
  unknownWorktrees = (projectId: string) =>
    this.request<UnknownWorktreeList>('GET', `/api/v1/projects/${enc(projectId)}/worktrees/unknown`);
  worktreeReview = (run: string) => this.request<WorktreeReview>('GET', `/api/v1/worktrees/${enc(run)}`);
  removeWorktree = (run: string, discardIgnored = false) =>
    this.request<WorktreeRemoved>('DELETE', `/api/v1/worktrees/${enc(run)}${discardIgnored ? '?discard_ignored=true' : ''}`);
  restoreWorktree = (run: string, body: RestoreWorktree) =>
    this.request<WorktreeRun>('POST', `/api/v1/worktrees/${enc(run)}/restore`, body);
  mergeWorktree = (run: string, body: MergeWorktree) => this.request<WorktreeMerged>('POST', `/api/v1/worktrees/${enc(run)}/merge`, body);
  deleteWorktreeBranch = (run: string) => this.request<BranchDeleted>('DELETE', `/api/v1/worktrees/${enc(run)}/branch`);

  audit(params: AuditParams): Promise<AuditPage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, String(v));
    return this.request<AuditPage>('GET', `/api/v1/audit?${q}`);
  }

  /** Signs this browser session out and forgets its page key. */
  async logout(): Promise<void> {
    await this.request<unknown>('POST', '/api/v1/auth/logout', {});
    try {
      localStorage.removeItem(PAGE_KEY);
    } catch {
      // Nothing stored.
    }
  }

  eventsUrl = () => this.wsUrl('/api/v1/events');
  ptyUrl = (sessionId: string) => this.wsUrl(`/api/v1/sessions/${enc(sessionId)}/pty`);

  /** Browsers cannot put headers on a WebSocket upgrade, so the tokens ride the query. */
  private wsUrl(path: string): string {
    const u = new URL(path, location.href);
    u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('csrf', this.csrf);
    u.searchParams.set('page', this.pageKey);
    return u.toString();
  }

  private async request<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    this.noteWarnings((res.headers.get('x-kaged-warning') ?? '').split(','));
    const text = await res.text();
    const json = parseJson(text);
    if (res.ok) return json as T;
    throw this.failure(method, res, json, text);
  }

  private async send(method: Method, path: string, body: unknown): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', 'X-Kaged-Page': this.pageKey };
    if (method !== 'GET') headers['X-Kaged-CSRF'] = this.csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      return await fetch(path, {
        method,
        headers,
        credentials: 'same-origin',
        cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, null, `cannot reach the kaged daemon (${(e as Error).message})`);
    }
  }

  private failure(method: Method, res: Response, json: unknown, text: string): ApiError {
    const envelope = asEnvelope(json);
    const e = new ApiError(res.status, envelope, envelope?.error.message ?? (text.slice(0, 200) || res.statusText));
    // A refused write is that action's error; a refused read means this tab may not look at all.
    if (res.status === 401 || (res.status === 403 && e.code === 'forbidden' && method === 'GET')) this.authFailure.set(e);
    return e;
  }

  private noteWarnings(list: string[]) {
    const known = this.warnings.value;
    const added = list.map((w) => w.trim()).filter((w): w is Warning => isWarning(w) && !known.includes(w));
    if (added.length) this.warnings.set([...new Set([...known, ...added])]);
  }
}
