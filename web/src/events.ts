// One app-wide connection to GET /api/v1/events. Screens subscribe to refresh their lists when
// sessions start, exit or get attached; the socket reconnects with backoff when it drops.

import type { Api, DaemonEvent } from './api';

/** Sent to listeners whenever the socket (re)opens: events may have been missed meanwhile. */
export type Connected = { type: 'events.connected' };
export type Heard = DaemonEvent | Connected;
type Listener = (ev: Heard) => void;

/** What a screen shows: one project's sessions, or one session. */
export type Scope = { projectId: string } | { sessionId: string };

/** Whether `ev` may change what a screen showing `scope` has on it. */
export function touches(ev: Heard, scope: Scope): boolean {
  switch (ev.type) {
    case 'events.connected':
    case 'gap':
      return true;
    case 'pong':
      return false;
    case 'egress':
      // A connection changes no session snapshot; the session page keeps its own log.
      return false;
    case 'approval.requested':
      return 'projectId' in scope ? ev.approval.project_id === scope.projectId : ev.approval.session_id === scope.sessionId;
    case 'approval.answered':
      return 'projectId' in scope ? ev.outcome.project_id === scope.projectId : ev.outcome.session_id === scope.sessionId;
    case 'agent.state':
      return 'projectId' in scope ? ev.project_id === scope.projectId : ev.session_id === scope.sessionId;
    case 'session.attached':
      // No session state changes, but a project's list refetches for fresh byte counts.
      return 'projectId' in scope && ev.project_id === scope.projectId;
    default:
      return 'projectId' in scope ? ev.session.project_id === scope.projectId : ev.session.id === scope.sessionId;
  }
}

const PING_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;

export class EventHub {
  private listeners = new Set<Listener>();
  private socket: WebSocket | null = null;
  private retry = 0;
  private timer: number | undefined;
  private ping: number | undefined;

  constructor(private api: Api) {}

  /** Subscribes to daemon events; the socket opens with the first subscriber. */
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    if (!this.socket || this.socket.readyState === WebSocket.CLOSED) this.connect();
    return () => {
      this.listeners.delete(l);
    };
  }

  private emit(ev: Heard) {
    this.listeners.forEach((l) => l(ev));
  }

  private connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.api.eventsUrl());
    this.socket = ws;
    ws.onopen = () => {
      this.retry = 0;
      this.emit({ type: 'events.connected' });
      clearInterval(this.ping);
      // Keeps idle proxies from closing the socket; the daemon answers with `pong`.
      this.ping = window.setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), PING_MS);
    };
    ws.onmessage = (m) => {
      const ev = typeof m.data === 'string' ? parseEvent(m.data) : null;
      if (ev && ev.type !== 'pong') this.emit(ev);
    };
    ws.onclose = () => {
      clearInterval(this.ping);
      if (this.socket !== ws || this.listeners.size === 0) return;
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.retry++);
      this.timer = window.setTimeout(() => this.connect(), delay);
    };
  }
}

// A Record, so a new event type in the generated types fails to compile until it is listed.
const EVENT_TYPES: Record<DaemonEvent['type'], true> = {
  'session.started': true,
  'session.exited': true,
  'session.attached': true,
  'run.started': true,
  'run.ended': true,
  'agent.state': true,
  'approval.requested': true,
  'approval.answered': true,
  egress: true,
  gap: true,
  pong: true,
};

/** A known event, or null: a newer daemon's unknown types are skipped, not misread. */
function parseEvent(text: string): DaemonEvent | null {
  try {
    const ev = JSON.parse(text) as DaemonEvent | null;
    return typeof ev?.type === 'string' && Object.hasOwn(EVENT_TYPES, ev.type) ? ev : null;
  } catch {
    return null;
  }
}
