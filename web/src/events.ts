// One app-wide connection to GET /api/v1/events. Screens subscribe to refresh their lists when
// sessions start, exit or get attached; the socket reconnects with backoff when it drops.

import { wsUrl } from './api';

export interface DaemonEvent {
  type: string;
  session?: { id: string; project_id: string; [k: string]: unknown };
  [k: string]: unknown;
}

type Listener = (e: DaemonEvent) => void;
const listeners = new Set<Listener>();
let socket: WebSocket | null = null;
let retry = 0;
let timer: number | undefined;
let ping: number | undefined;

function connect() {
  clearTimeout(timer);
  const ws = new WebSocket(wsUrl('/api/v1/events'));
  socket = ws;
  ws.onopen = () => {
    retry = 0;
    // A reconnect may have missed events: tell screens to refetch.
    listeners.forEach((l) => l({ type: 'events.connected' }));
    clearInterval(ping);
    ping = window.setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), 30_000);
  };
  ws.onmessage = (m) => {
    if (typeof m.data !== 'string') return;
    let ev: DaemonEvent;
    try {
      ev = JSON.parse(m.data);
    } catch {
      return;
    }
    if (ev.type === 'pong') return;
    listeners.forEach((l) => l(ev));
  };
  ws.onclose = () => {
    clearInterval(ping);
    if (socket !== ws || listeners.size === 0) return;
    const delay = Math.min(30_000, 500 * 2 ** retry++);
    timer = window.setTimeout(connect, delay);
  };
}

/** Subscribes to daemon events; the socket opens with the first subscriber. */
export function subscribe(l: Listener): () => void {
  listeners.add(l);
  if (!socket || socket.readyState === WebSocket.CLOSED) connect();
  return () => {
    listeners.delete(l);
  };
}
