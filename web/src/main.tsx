// kaged web UI entry point: loads the identity and CSRF token, then renders the app shell
// (danger banners, navigation, the insecure-mode splash) around the screen the hash names.

import './csp-styles';
import '@xterm/xterm/css/xterm.css';
import './style.css';

import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Me, type Warning } from './api';
import { ServicesContext, createServices, useApi } from './context';
import { useRoute } from './router';
import { useStore } from './store';
import { ProjectsPage } from './pages/projects';
import { ProjectPage } from './pages/project';
import { SessionPage } from './pages/session';
import { StatusPage } from './pages/status';
import { AuditPage } from './pages/audit';
import { DevicePage } from './pages/device';
import { WorktreePage } from './pages/worktree';

/** localStorage key holding the local date (YYYY-MM-DD) the insecure-mode splash was acknowledged. */
export const INSECURE_ACK_KEY = 'kaged.insecureAck';

function today(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function Banners({ warnings }: { warnings: Warning[] }) {
  return (
    <div class="banners">
      {warnings.includes('insecure-mode') && (
        <div class="banner banner-danger" id="insecure-banner" role="alert">
          INSECURE MODE — AUTH BYPASSED
        </div>
      )}
      {warnings.includes('no-sandbox') && (
        <div class="banner banner-danger" id="nosandbox-banner" role="alert">
          NO SANDBOX — SESSIONS ARE NOT CAGED
        </div>
      )}
    </div>
  );
}

/** ADR-0007: the first session of each day must click "I understand"; the banner stays after. */
function InsecureSplash() {
  const ref = useRef<HTMLDialogElement>(null);
  const [open, setOpen] = useState(() => {
    try {
      return localStorage.getItem(INSECURE_ACK_KEY) !== today();
    } catch {
      return true;
    }
  });
  useEffect(() => {
    const d = ref.current;
    if (open && d && !d.open) d.showModal();
  }, [open]);
  if (!open) return null;
  const ack = () => {
    try {
      localStorage.setItem(INSECURE_ACK_KEY, today());
    } catch {
      // Storage refused (private mode): the splash simply comes back on the next load.
    }
    ref.current?.close();
    setOpen(false);
  };
  return (
    <dialog
      ref={ref}
      class="splash"
      id="insecure-splash"
      aria-labelledby="insecure-splash-title"
      onCancel={(e) => e.preventDefault()}
    >
      <h2 id="insecure-splash-title">INSECURE MODE — AUTH BYPASSED</h2>
      <p>
        This kaged daemon runs with <code>--insecure</code>: it accepts every request without authentication. Anyone who
        can reach <code>{location.host}</code> is the operator and can start processes as this daemon's user.
      </p>
      <p>
        Keep the daemon on loopback or behind a firewall or VPN, or restart it without <code>--insecure</code> (see
        ADR-0007). CSRF checks, the sandbox and the audit log still apply.
      </p>
      <button class="btn danger" id="insecure-ack" autofocus onClick={ack}>
        I understand
      </button>
    </dialog>
  );
}

function AuthScreen({ error }: { error: ApiError }) {
  if (error.status === 401) {
    return (
      <section class="page center" id="unauthenticated">
        <h1>Not signed in</h1>
        <p>
          Run <code>kaged auth open</code> on the machine running kaged and open the URL it prints.
        </p>
        <p class="muted">
          If this kaged runs behind an auth sidecar (oauth2-proxy or similar), sign in through your sidecar instead. A
          restarted daemon invalidates earlier sign-ins.
        </p>
        <p class="muted">Daemon said: {error.message}</p>
        <button class="btn" onClick={() => location.reload()}>
          Try again
        </button>
      </section>
    );
  }
  if (error.status === 403) {
    return (
      <section class="page center" id="forbidden">
        <h1>Forbidden</h1>
        <p>The daemon refused this request: {error.message}</p>
        <p class="muted">
          Open kaged through the exact URL it printed (host and port matter), or ask the operator to add this host to{' '}
          <code>auth.allowed_hosts</code>.
        </p>
        <button class="btn" onClick={() => location.reload()}>
          Try again
        </button>
      </section>
    );
  }
  return (
    <section class="page center" id="unreachable">
      <h1>Cannot reach kaged</h1>
      <p>{error.message}</p>
      <p class="muted">Is the daemon running? <code>kaged status</code> on its machine tells.</p>
      <button class="btn" onClick={() => location.reload()}>
        Try again
      </button>
    </section>
  );
}

function Screen() {
  const route = useRoute();
  const [head, id] = route.path;
  // Keyed by id: another project or session gets a fresh page, so no late answer about the
  // previous one lands on it.
  switch (head) {
    case undefined:
    case 'projects':
      return id ? <ProjectPage key={id} id={id} /> : <ProjectsPage />;
    case 'sessions':
      return id ? <SessionPage key={id} id={id} /> : <ProjectsPage />;
    case 'worktrees':
      return id ? <WorktreePage key={id} run={id} projectId={route.query.get('project') ?? ''} /> : <ProjectsPage />;
    case 'status':
      return <StatusPage />;
    case 'audit':
      return <AuditPage query={route.query} />;
    case 'device':
      return <DevicePage />;
    default:
      return (
        <section class="page">
          <h1>Not found</h1>
          <p>
            Nothing lives at <code>{location.hash}</code>. <a href="#/">Back to projects</a>.
          </p>
        </section>
      );
  }
}

function Nav({ me }: { me: Me | null }) {
  const route = useRoute();
  const here = route.path[0] ?? 'projects';
  const link = (key: string, href: string, label: string) => (
    <a href={href} aria-current={here === key ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <header class="topbar">
      <a class="brand" href="#/">
        kaged
      </a>
      <nav aria-label="Main">
        {link('projects', '#/', 'Projects')}
        {link('status', '#/status', 'Status')}
        {link('audit', '#/audit', 'Audit')}
        {link('device', '#/device', 'Device')}
      </nav>
      {me && (
        <span class="who" title={`${me.identity.email ?? ''} · auth mode ${me.identity.mode}`}>
          {me.identity.user_id}
        </span>
      )}
      {me?.identity.mode === 'loopback' && <SignOut />}
    </header>
  );
}

/** Ends this browser's session for good; a new launch URL signs in again. */
function SignOut() {
  const api = useApi();
  const [busy, setBusy] = useState(false);
  const out = () => {
    setBusy(true);
    api.logout().then(
      () => api.authFailure.set(new ApiError(401, null, 'You signed out of this browser.')),
      () => setBusy(false),
    );
  };
  return (
    <button type="button" class="link" id="sign-out" disabled={busy} onClick={out}>
      Sign out
    </button>
  );
}

function App() {
  const api = useApi();
  const [me, setMe] = useState<Me | null>(null);
  const [meError, setMeError] = useState<ApiError | null>(null);
  const warnings = useStore(api.warnings);
  const authFailure = useStore(api.authFailure);
  useEffect(() => {
    api.me().then(setMe, (e) => setMeError(e instanceof ApiError ? e : new ApiError(0, null, String(e))));
  }, [api]);
  const fatal = authFailure ?? meError;

  return (
    <div class="app">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <Banners warnings={warnings} />
      <Nav me={fatal ? null : me} />
      <main id="main" tabIndex={-1}>
        {fatal ? <AuthScreen error={fatal} /> : me ? <Screen /> : <p class="page muted">Loading…</p>}
      </main>
      {warnings.includes('insecure-mode') && <InsecureSplash />}
    </div>
  );
}

function Root() {
  const [services] = useState(createServices);
  return (
    <ServicesContext.Provider value={services}>
      <App />
    </ServicesContext.Provider>
  );
}

const root = document.getElementById('app');
if (root) render(<Root />, root);

// The service worker shows push notifications and opens the session a tap names. It lives at
// the root, so its scope is the whole UI. Without it (no secure context) the UI works as before.
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('service worker not registered:', e));
  // A tap on a notification while this tab is open: go to the page it names.
  navigator.serviceWorker.addEventListener('message', (e) => {
    const url = (e.data as { type?: string; url?: string } | null)?.url;
    if ((e.data as { type?: string } | null)?.type === 'kaged.open' && url?.startsWith('/#/')) location.hash = url.slice(1);
  });
}
