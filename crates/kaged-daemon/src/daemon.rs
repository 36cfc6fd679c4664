//! The daemon's lifecycle: [`Daemon::start`] sets everything up and binds, [`Daemon::serve_until`]
//! serves an app until told to stop and drains it, [`Daemon::shutdown`] ends sessions and
//! flushes the audit log, in that order, each step awaited.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use kaged_api::{DaemonEvent, SandboxStatus, Timestamp, Warning};
use kaged_auth::{AuthMode, AuthPolicy};
use kaged_config::Settings;
use kaged_deploy::Layout;
use kaged_dsl::LocalConfig;
use kaged_session::SessionManager;
use kaged_store::{AuditEvent, EventType, Store};
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::Access;
use crate::audit::Audit;
use crate::endpoint::Endpoint;
use crate::error::StartError;
use crate::host::HostFacts;
use crate::lock::StateLock;
use crate::projects::Projects;
use crate::startup::{
    bind_self_check, harden_process, setup_auth, warn_if_few_files, warn_if_root,
};

/// How long in-flight requests may take to finish once the daemon stops accepting.
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// Subscribers of `/api/v1/events` that lag this far behind get a `gap` instead of memory.
const EVENT_CAPACITY: usize = 1024;

/// The running daemon. Cheap to clone; every clone is the same daemon.
#[derive(Clone)]
pub struct Daemon {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) settings: Settings,
    pub(crate) bind: SocketAddr,
    /// The UNIX user the daemon runs as.
    pub(crate) user: String,
    pub(crate) started_at: Timestamp,
    pub(crate) started: Instant,
    pub(crate) sandbox: SandboxStatus,
    pub(crate) auth: AuthPolicy,
    pub(crate) access: Access,
    pub(crate) store: Store,
    pub(crate) audit: Audit,
    pub(crate) backoff: crate::backoff::Backoff,
    pub(crate) owners: crate::owners::Owners,
    pub(crate) sessions: SessionManager,
    pub(crate) projects: Projects,
    pub(crate) host: HostFacts,
    pub(crate) local: LocalConfig,
    pub(crate) worktrees: crate::worktrees::WorktreeSupport,
    /// The providers every filtered-network cage reaches through its gateway, keys included.
    pub(crate) providers: Arc<kaged_egress::Providers>,
    pub(crate) events: broadcast::Sender<DaemonEvent>,
    /// Each watched agent run's state, by session id.
    pub(crate) agents: Mutex<std::collections::HashMap<String, kaged_api::AgentState>>,
    /// When each run was last pushed about going quiet (see `agents.rs`).
    pub(crate) idle_pushed: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Agents' tool calls held for the operator, by approval id (see `hooks.rs`).
    pub(crate) approvals: Mutex<std::collections::HashMap<String, crate::hooks::Pending>>,
    /// Web Push with the daemon's VAPID key.
    pub(crate) pusher: kaged_push::Pusher,
    /// Pushes to send, in the order the states changed (see `agents.rs`).
    pub(crate) push_queue: tokio::sync::mpsc::UnboundedSender<crate::agents::Outgoing>,
    pub(crate) warnings: Vec<Warning>,
    /// Serialises setting up cages with removing finished cages' stand-ins.
    pub(crate) cage_setup: Mutex<()>,
    /// Session exit watchers and the read-audit ticker; shutdown waits for all of them.
    pub(crate) tasks: TaskTracker,
    pub(crate) stop: CancellationToken,
    ready: AtomicBool,
    listener: Mutex<Option<std::net::TcpListener>>,
    runtime_files: Vec<PathBuf>,
    _lock: StateLock,
}

impl Daemon {
    /// Everything short of serving: directories, the state-dir lock, the start-up self-checks
    /// (bind safety, bwrap), storage, the listener, auth and its nonce files, sessions, the
    /// project registry, and the start-up audit rows. Must run inside a tokio runtime.
    pub async fn start(settings: Settings, layout: Layout) -> Result<Daemon, StartError> {
        harden_process();
        warn_if_root(&layout);
        layout.create_dirs()?;
        let lock = StateLock::acquire(&layout)?;
        let insecure_bind = bind_self_check(&settings)?;
        let sandbox = sandbox_status(&settings)?;
        let db = settings.database_path().to_owned();
        if let Some(parent) = db.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StartError::Io {
                what: "create",
                path: parent.to_owned(),
                source,
            })?;
        }
        let store = Store::open(&db)?;
        let audit = Audit::new(store.audit_writer()?);
        let bind = settings.bind.value;
        let listener = std::net::TcpListener::bind(bind)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| StartError::Bind { bind, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { bind, source })?;
        let user = local_user();
        let (auth, mut runtime_files) = setup_auth(&layout, &settings, bound.port(), user.clone())?;
        let access = Access::new(
            bound,
            &settings.allowed_hosts.value,
            &settings.allowed_origins.value,
        );
        let mut mcfg = kaged_session::ManagerConfig::new(&layout.sessions_dir);
        mcfg.scrollback_bytes = settings.sessions.scrollback_bytes.value;
        mcfg.max_per_project = settings.sessions.max_per_project.value;
        mcfg.max_per_operator = settings.sessions.max_per_operator.value;
        // Each session's process hangs off a holder (this binary, `kaged holder`), so that it
        // outlives this daemon: a restart, an upgrade or a crash adopts it.
        mcfg.holder = Some(kaged_session::HolderConfig {
            program: PathBuf::from("/proc/self/exe"),
            args: vec!["holder".into()],
            sockets_dir: layout.runtime_dir.clone(),
        });
        let sessions = SessionManager::open(mcfg)?;
        // After the session manager, which raises the open-file limit.
        warn_if_few_files(&settings);
        let local = LocalConfig::load(&layout.local_file)?;
        let endpoint = Endpoint::new(&layout, &settings, bound);
        endpoint.write(&layout)?;
        runtime_files.push(layout.endpoint_file());
        let admin_group = settings.admin_group.as_ref().map(|g| g.value.clone());
        let host = HostFacts::capture(&layout, &settings, sandbox.cgroups.clone());
        let providers = Arc::new(crate::host::egress_providers(&local, &host)?);
        let pusher = kaged_push::Pusher::new(
            kaged_push::Vapid::load_or_create(&layout.state_dir.join("vapid.key"))?,
            settings.push_contact.value.clone(),
            kaged_egress::tls_config(None)?,
        );
        let (push_queue, pushes) = tokio::sync::mpsc::unbounded_channel();
        // Before serving: a crash mid-operation is settled from the journal first.
        let (worktrees, recovered) =
            crate::worktrees::WorktreeSupport::open(&db, &layout.state_dir, &local.worktrees);
        let daemon = Daemon {
            inner: Arc::new(Inner {
                host,
                providers,
                warnings: warnings(&settings),
                layout,
                settings,
                bind: bound,
                user,
                started_at: Timestamp::now(),
                started: Instant::now(),
                sandbox,
                auth,
                access,
                store,
                audit,
                backoff: crate::backoff::Backoff::default(),
                owners: crate::owners::Owners::new(admin_group),
                sessions,
                projects: Projects::default(),
                local,
                worktrees,
                events: broadcast::channel(EVENT_CAPACITY).0,
                agents: Mutex::default(),
                idle_pushed: Mutex::default(),
                approvals: Mutex::default(),
                push_queue,
                pusher,
                cage_setup: Mutex::new(()),
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
                ready: AtomicBool::new(false),
                listener: Mutex::new(Some(listener)),
                runtime_files,
                _lock: lock,
            }),
        };
        daemon.load_registered_projects().await;
        daemon.audit_start(insecure_bind).await;
        daemon.audit_recovery(recovered).await;
        daemon.recover_sessions().await;
        daemon.spawn_read_audit();
        daemon.spawn_pusher(pushes);
        daemon.spawn_worktree_timer();
        Ok(daemon)
    }

    /// Serves `app` on the listener, under the header-read timeout and connection caps of
    /// `server.*` (see `listener`), until `shutdown` resolves, then stops accepting and gives
    /// in-flight requests [`DRAIN_GRACE`] to finish. Readiness (`/api/v1/readyz`) is on exactly
    /// while serving.
    pub async fn serve_until(
        &self,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| std::io::Error::other("the daemon is already serving"))?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let drain = CancellationToken::new();
        let server = tokio::spawn({
            let limits = self.inner.settings.server.clone();
            let drain = drain.clone();
            async move { crate::listener::serve(listener, app, &limits, drain).await }
        });
        self.inner.ready.store(true, Ordering::SeqCst);
        tracing::info!(
            elapsed_ms = self.inner.started.elapsed().as_millis() as u64,
            "ready on http://{}",
            self.inner.bind
        );
        shutdown.await;
        self.inner.ready.store(false, Ordering::SeqCst);
        drain.cancel();
        match tokio::time::timeout(DRAIN_GRACE, server).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => {
                tracing::warn!("requests still running after {DRAIN_GRACE:?}; closing them");
                Ok(())
            }
        }
    }

    /// With `end_sessions`, ends every session (HUP, TERM, KILL to each group) and waits until
    /// their ends are recorded and audited; without, leaves them to their holders with their
    /// transcripts flushed, for the next daemon to adopt. Then writes the counted reads and
    /// `daemon.stopped`, flushes the audit log and removes the runtime files. `reason` names
    /// what stopped the daemon (a signal, say).
    pub async fn shutdown(&self, reason: &str, end_sessions: bool) {
        let inner = &self.inner;
        inner.ready.store(false, Ordering::SeqCst);
        let running = inner
            .sessions
            .list(None)
            .iter()
            .filter(|s| s.state != kaged_api::SessionState::Exited)
            .count();
        if end_sessions {
            inner.sessions.shutdown().await;
        } else {
            inner.sessions.detach().await;
        }
        inner.stop.cancel();
        inner.tasks.close();
        inner.tasks.wait().await;
        inner.audit.flush_reads().await;
        inner
            .audit
            .record(AuditEvent::new(
                EventType::DaemonStopped,
                None,
                json!({"signal": reason, "running_sessions": running,
                       "sessions": if end_sessions { "ended" } else { "kept" }}),
            ))
            .await;
        if let Err(e) = inner.audit.flush().await {
            tracing::warn!(error = %e, "audit flush failed");
        }
        kaged_auth::remove_quietly(&inner.runtime_files);
        tracing::info!("stopped");
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The address the listener is bound to (the OS picks the port for `:0`).
    pub fn bind(&self) -> SocketAddr {
        self.inner.bind
    }

    /// The auth policy the gate applies to every request.
    pub fn auth(&self) -> &AuthPolicy {
        &self.inner.auth
    }

    /// The Host and Origin allowlists the gate applies.
    pub fn access(&self) -> &Access {
        &self.inner.access
    }

    /// The audit log, for the gate's request, read and refusal rows.
    pub fn audit_log(&self) -> &Audit {
        &self.inner.audit
    }

    pub fn warnings(&self) -> &[Warning] {
        &self.inner.warnings
    }

    /// The URL local clients use: a wildcard bind is reached through loopback, because
    /// `0.0.0.0` is not a Host the allowlist accepts.
    pub fn base_url(&self) -> String {
        base_url(self.inner.bind)
    }

    /// Daemon events from now on, for `/api/v1/events`.
    pub fn events(&self) -> broadcast::Receiver<DaemonEvent> {
        self.inner.events.subscribe()
    }

    /// Publishes to `/api/v1/events`; nobody listening is fine.
    pub(crate) fn publish(&self, event: DaemonEvent) {
        let _ = self.inner.events.send(event);
    }

    async fn audit_start(&self, insecure_bind: bool) {
        let (i, s) = (&self.inner, &self.inner.settings);
        let bind = i.bind.to_string();
        i.audit
            .record(AuditEvent::new(
                EventType::DaemonStarted,
                None,
                json!({
                    "pid": std::process::id(),
                    "mode": i.layout.mode,
                    "mode_reason": i.layout.reason.to_string(),
                    "bind": bind,
                    "auth_mode": s.auth_mode.value,
                    "sandbox": s.sandbox_enabled.value,
                    "version": env!("CARGO_PKG_VERSION"),
                    "config": s.config_file,
                }),
            ))
            .await;
        if insecure_bind {
            i.audit
                .record(AuditEvent::new(
                    EventType::AuthInsecureBind,
                    None,
                    json!({"bind": bind, "override": "KAGED_INSECURE_BIND=1"}),
                ))
                .await;
        }
        if s.auth_mode.value == AuthMode::Insecure {
            i.audit
                .record(AuditEvent::new(
                    EventType::AuthInsecureMode,
                    None,
                    json!({"bind": bind, "event": "daemon_start",
                           "reason": s.insecure_reason.as_ref().map(|r| r.value.clone())}),
                ))
                .await;
        }
        if !s.sandbox_enabled.value {
            i.audit
                .record(AuditEvent::new(
                    EventType::SandboxDisabled,
                    None,
                    json!({"source": s.sandbox_enabled.source.to_string()}),
                ))
                .await;
        }
    }

    /// Sends queued pushes one at a time, in order, until shutdown: a device shows the newest
    /// state of a run last, whatever each push service's latency.
    fn spawn_pusher(
        &self,
        mut pushes: tokio::sync::mpsc::UnboundedReceiver<crate::agents::Outgoing>,
    ) {
        let daemon = self.clone();
        let stop = self.inner.stop.clone();
        self.inner.tasks.spawn(async move {
            loop {
                tokio::select! {
                    next = pushes.recv() => match next {
                        Some(out) => daemon.push_to(&out).await,
                        None => return,
                    },
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    /// Writes the counted authenticated reads once a second, until shutdown.
    fn spawn_read_audit(&self) {
        let daemon = self.clone();
        let stop = self.inner.stop.clone();
        self.inner.tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => daemon.inner.audit.flush_reads().await,
                    () = stop.cancelled() => return,
                }
            }
        });
    }
}

pub(crate) fn base_url(bind: SocketAddr) -> String {
    match bind.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            format!("http://127.0.0.1:{}", bind.port())
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            format!("http://localhost:{}", bind.port())
        }
        _ => format!("http://{bind}"),
    }
}

fn warnings(settings: &Settings) -> Vec<Warning> {
    let mut w = Vec::new();
    if settings.auth_mode.value == AuthMode::Insecure {
        w.push(Warning::InsecureMode);
    }
    if !settings.sandbox_enabled.value {
        w.push(Warning::NoSandbox);
    }
    w
}

/// ADR-0009: no cages, no start, unless the operator said `--no-sandbox` out loud. Cgroup
/// limits are set up first, before anything is spawned: on a delegated host the daemon moves
/// into a leaf cgroup of its own.
fn sandbox_status(settings: &Settings) -> Result<SandboxStatus, StartError> {
    let cgroups = kaged_sandbox::setup_cgroups();
    match &cgroups {
        kaged_api::CgroupSupport::Delegated { cgroup } => tracing::info!(
            "cgroup limits: each cage gets a cgroup in the delegated subtree {}",
            cgroup.display()
        ),
        kaged_api::CgroupSupport::SystemdScope { systemd_run } => tracing::info!(
            "cgroup limits: each cage runs in a `{} --user --scope`",
            systemd_run.display()
        ),
        kaged_api::CgroupSupport::Unavailable { reason } => {
            let then = match settings.sessions.limits.as_ref().map(|l| l.value) {
                Some(kaged_api::LimitEnforcement::BestEffort) => {
                    "cages run without their memory, pids and cpu limits (sessions.limits = \
                     \"best-effort\"), and each such start is audited"
                }
                Some(kaged_api::LimitEnforcement::Strict) => {
                    "cages with memory, pids or cpu limits are refused (sessions.limits = \
                     \"strict\")"
                }
                None => {
                    "cages with memory, pids or cpu limits are refused unless their limits say \
                     `enforce: best-effort`"
                }
            };
            tracing::warn!("cgroup limits cannot be enforced here: {reason}; {then}")
        }
    }
    let bwrap = if settings.sandbox_enabled.value {
        let bwrap = kaged_sandbox::self_test()?;
        tracing::info!(
            "sandbox: {} {} passed the self-test",
            bwrap.path.display(),
            bwrap.version
        );
        Some(bwrap)
    } else {
        None
    };
    Ok(SandboxStatus {
        enabled: settings.sandbox_enabled.value,
        bwrap,
        cgroups,
    })
}

/// The UNIX user the daemon runs as, for the loopback identity and the audit trail.
pub fn local_user() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid-{uid}"))
}
