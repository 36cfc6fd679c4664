//! `kaged start`: resolve mode and settings, take the state-dir lock, run the start-up
//! self-checks, set up auth, bind, serve until SIGTERM/SIGINT, then shut down cleanly.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kaged_auth::{
    AuthMode, AuthPolicy, MIN_SIDECAR_NONCE_LEN, PolicyConfig, Secret, read_secret_file,
    remove_quietly, write_secret_file,
};
use kaged_config::{Env, Flags, NonceSource, Settings};
use kaged_deploy::{Layout, Probe};
use kaged_http::{Access, AppState, DaemonInfo, HostFacts, Parts};
use kaged_store::{AuditEvent, EventType, Store};
use serde_json::json;

use crate::cli::StartArgs;
use crate::client::{Endpoint, local_user};

pub fn run(mode: Option<String>, args: StartArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let notify_socket = take_notify_socket();
    let layout = Layout::resolve(&Probe::from_env(mode))?;
    let flags = Flags {
        config: args.config,
        bind: args.bind,
        auth_mode: args.auth_mode,
        insecure: args.insecure,
        no_sandbox: args.no_sandbox,
    };
    let env = Env::capture();
    let settings = Settings::resolve(&layout, &env, &flags)?;
    init_tracing(&settings.log_level.value);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kaged")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(layout, settings, started, notify_socket))
}

/// Takes `NOTIFY_SOCKET` out of the environment so that no child (cage, probe) can talk to
/// systemd on the daemon's behalf; readiness is ours to announce.
fn take_notify_socket() -> Option<std::ffi::OsString> {
    let value = std::env::var_os("NOTIFY_SOCKET")?;
    // SAFETY: called at the top of `kaged start`, before the runtime or any other thread
    // exists, so nothing can read the environment concurrently.
    unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    Some(value)
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn serve(
    layout: Layout,
    settings: Settings,
    started: Instant,
    notify_socket: Option<std::ffi::OsString>,
) -> Result<ExitCode> {
    let notify = |msg: &str| sd_notify(notify_socket.as_deref(), msg);
    tracing::info!(
        mode = %layout.mode,
        reason = %layout.reason,
        "mode={} (reason: {})",
        layout.mode,
        layout.reason
    );
    if let Some(note) = &layout.runtime_note {
        tracing::warn!("runtime dir {}: {note}", layout.runtime_dir.display());
    }
    if let Some(path) = &settings.config_file {
        tracing::info!("config: {}", path.display());
    } else {
        tracing::info!(
            "config: {} (not present; using defaults)",
            layout.config_file.display()
        );
    }
    layout.create_dirs()?;
    let _lock = StateLock::acquire(&layout)?;

    let bind = settings.bind.value;
    let insecure = settings.auth_mode.value == AuthMode::Insecure;
    let insecure_bind = bind_self_check(&settings)?;

    // ADR-0009: no cages, no start, unless the operator said --no-sandbox out loud.
    let cgroups = kaged_sandbox::cgroup_support();
    let sandbox = if settings.sandbox_enabled.value {
        let bwrap = kaged_sandbox::self_test().context("sandbox self-test failed")?;
        tracing::info!(
            "sandbox: {} {} passed the self-test",
            bwrap.path.display(),
            bwrap.version
        );
        json!({"enabled": true, "bwrap": bwrap, "cgroups": cgroups})
    } else {
        json!({"enabled": false, "cgroups": cgroups})
    };
    if let kaged_sandbox::CgroupSupport::Unavailable { reason } = cgroups {
        tracing::info!("cgroup limits unavailable: {reason}");
    }

    let db = settings.database_path().to_owned();
    if let Some(parent) = db.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let store = Store::open(&db)?;
    let audit = store.audit_writer()?;

    let listener = std::net::TcpListener::bind(bind).with_context(|| {
        format!(
            "cannot bind {bind}; if another service holds the port, pick another with --bind or KAGED_BIND"
        )
    })?;
    listener.set_nonblocking(true)?;
    let bound: SocketAddr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;

    let (policy, runtime_files) = setup_auth(&layout, &settings, bound.port())?;
    let access = Access::new(
        bound,
        &settings.allowed_hosts.value,
        &settings.allowed_origins.value,
    );
    let info = DaemonInfo {
        layout: layout.clone(),
        settings: settings.clone(),
        bind: bound,
        pid: std::process::id(),
        user: local_user(),
        started_at: kaged_store::now_rfc3339(),
        started,
        sandbox,
    };
    let mut mcfg = kaged_session::ManagerConfig::new(&layout.sessions_dir);
    mcfg.scrollback_bytes = settings.sessions.scrollback_bytes.value;
    mcfg.max_per_project = settings.sessions.max_per_project.value;
    mcfg.max_per_operator = settings.sessions.max_per_operator.value;
    let sessions = kaged_session::SessionManager::open(mcfg)?;
    let host = host_facts(&layout, &settings);
    let local = kaged_dsl::LocalConfig::load(&layout.local_file)?;
    tracing::info!(
        "local.toml {}: {} model alias(es), {} provider(s), {} registered project(s)",
        layout.local_file.display(),
        local.models.len(),
        local.providers.len(),
        local.projects.len()
    );
    let state = Arc::new(AppState::new(Parts {
        info,
        auth: policy,
        access,
        store,
        audit,
        sessions,
        host,
        local,
    }));
    let reloaded = state.projects.reload_all(&state.store).await?;
    for (root, err) in &reloaded.failed {
        tracing::warn!("registered project {root} did not load: {err}");
    }
    for registered in &state.local.projects {
        let canonical = std::fs::canonicalize(&registered.path).ok();
        let loaded = state
            .projects
            .list()
            .iter()
            .any(|p| Some(&p.root) == canonical.as_ref());
        if !loaded
            && let Err(e) = state
                .projects
                .load(&state.store, &registered.path, "local.toml")
                .await
        {
            tracing::warn!(
                "project {} from {} did not load: {e}",
                registered.path.display(),
                layout.local_file.display()
            );
        }
    }
    let bridge = kaged_http::spawn_event_bridge(state.clone());

    state
        .audit(AuditEvent::new(
            EventType::DaemonStarted,
            None,
            json!({
                "pid": std::process::id(),
                "mode": layout.mode,
                "mode_reason": layout.reason.to_string(),
                "bind": bound.to_string(),
                "auth_mode": settings.auth_mode.value,
                "sandbox": settings.sandbox_enabled.value,
                "version": env!("CARGO_PKG_VERSION"),
                "config": settings.config_file,
            }),
        ))
        .await;
    if insecure_bind {
        state
            .audit(AuditEvent::new(
                EventType::AuthInsecureBind,
                None,
                json!({"bind": bound.to_string(), "override": "KAGED_INSECURE_BIND=1"}),
            ))
            .await;
    }
    if insecure {
        print_insecure_block(bound);
        state
            .audit(AuditEvent::new(
                EventType::AuthInsecureMode,
                None,
                json!({
                    "bind": bound.to_string(),
                    "reason": settings.insecure_reason.as_ref().map(|r| r.value.clone()),
                    "event": "daemon_start",
                }),
            ))
            .await;
    }
    if !settings.sandbox_enabled.value {
        print_no_sandbox_block(bound);
        state
            .audit(AuditEvent::new(
                EventType::SandboxDisabled,
                None,
                json!({"source": settings.sandbox_enabled.source.to_string()}),
            ))
            .await;
    }

    let endpoint = Endpoint {
        url: state.info.base_url(),
        pid: std::process::id(),
        mode: layout.mode.to_string(),
        auth_mode: settings.auth_mode.value.to_string(),
        insecure,
        no_sandbox: !settings.sandbox_enabled.value,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    write_secret_file(&layout.endpoint_file(), &serde_json::to_string(&endpoint)?)?;
    let mut runtime_files = runtime_files;
    runtime_files.push(layout.endpoint_file());

    eprintln!(
        "kaged {} listening on http://{bound}",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!("  mode:    {} (reason: {})", layout.mode, layout.reason);
    eprintln!("  state:   {}", layout.state_dir.display());
    eprintln!("  auth:    {}", settings.auth_mode.value);
    match settings.auth_mode.value {
        AuthMode::Loopback => {
            let token = state.auth.issue_launch_token()?;
            eprintln!(
                "  nonce:   {} (0600; `kaged auth open` prints a fresh launch URL)",
                layout.auth_cookie_file().display()
            );
            eprintln!(
                "  open:    {}/launch?token={token}  (one-time, valid {}s)",
                state.info.base_url(),
                settings.launch_token_ttl.value.as_secs()
            );
        }
        AuthMode::Sidecar => eprintln!(
            "  sidecar: nonce in {} (0600; `kaged auth nonce` prints it)",
            layout.sidecar_nonce_file().display()
        ),
        AuthMode::Insecure => {}
    }

    state.set_ready(true);
    notify("READY=1\nSTATUS=serving");
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ready on http://{bound}"
    );

    let app = kaged_http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown_state = state.clone();
    let mut graceful_rx = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = graceful_rx.wait_for(|s| *s).await;
            })
            .await
    });

    let signal = wait_for_signal().await?;
    tracing::info!("received {signal}; shutting down");
    shutdown_state.set_ready(false);
    notify("STOPPING=1");
    let _ = stop_tx.send(true);
    // In-flight requests finish; long-lived WebSockets get a bounded grace period.
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("connections still open after 10s; closing them"),
    }
    state.sessions.shutdown().await;
    // Let the bridge audit the exits the shutdown caused.
    tokio::time::sleep(Duration::from_millis(50)).await;
    bridge.abort();
    state
        .audit(AuditEvent::new(
            EventType::DaemonStopped,
            None,
            json!({"signal": signal}),
        ))
        .await;
    if let Err(e) = state.audit.flush().await {
        tracing::warn!(error = %e, "audit flush failed");
    }
    remove_quietly(&runtime_files);
    drop(stop_rx);
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// What sessions need from the host, captured once: the login shell, the environment that
/// allowlisted names may draw from (never `KAGED_*`), and the paths no cage may see.
fn host_facts(layout: &Layout, settings: &Settings) -> HostFacts {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten();
    let shell = user
        .as_ref()
        .map(|u| u.shell.display().to_string())
        .filter(|s| !s.is_empty() && !s.ends_with("nologin") && !s.ends_with("false"))
        .unwrap_or_else(|| "/bin/sh".to_owned());
    let home = user
        .map(|u| u.dir)
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"));
    let env = std::env::vars()
        .filter(|(k, _)| !k.starts_with("KAGED_") && k != "NOTIFY_SOCKET")
        .collect();
    let mut deny = vec![layout.runtime_dir.clone(), layout.state_dir.clone()];
    if let Some(dir) = layout.config_file.parent() {
        deny.push(dir.to_owned());
    }
    if let Some(kaged_config::NonceSource::File(p)) =
        settings.sidecar_nonce.as_ref().map(|s| &s.value)
    {
        deny.push(p.clone());
    }
    if let Some(db_dir) = settings.database_path().parent() {
        deny.push(db_dir.to_owned());
    }
    deny.retain(|p| p.exists());
    deny.sort();
    deny.dedup();
    HostFacts {
        sandbox_enabled: settings.sandbox_enabled.value,
        shell,
        home,
        env,
        deny,
        scratch_root: layout.state_dir.join("scratch"),
    }
}

/// ADR-0007's start-up self-check. Returns whether the KAGED_INSECURE_BIND override was used.
fn bind_self_check(settings: &Settings) -> Result<bool> {
    let bind = settings.bind.value;
    if bind.ip().is_loopback() {
        return Ok(false);
    }
    if bind.ip().is_unspecified() {
        tracing::warn!(
            "binding {bind} exposes kaged on EVERY network interface; prefer 127.0.0.1 behind a sidecar (ADR-0007)"
        );
    }
    if settings.sidecar_nonce.is_some() && settings.auth_mode.value == AuthMode::Sidecar {
        return Ok(false);
    }
    if settings.insecure_bind.value {
        tracing::warn!(
            "!!! KAGED_INSECURE_BIND=1: serving on non-loopback {bind} WITHOUT a sidecar nonce. Anyone who can reach this address can try to talk to kaged. This override is audited. !!!"
        );
        return Ok(true);
    }
    bail!(
        "refusing to bind non-loopback address {bind} (from {}) without an auth sidecar: set auth.mode = \"sidecar\" with KAGED_AUTH_SIDECAR_NONCE or auth.sidecar_nonce_file, bind 127.0.0.1, or set KAGED_INSECURE_BIND=1 if you really know what you are doing (ADR-0007)",
        settings.bind.source
    )
}

/// Creates the per-start nonce files. Returns the policy and the runtime files to remove at
/// shutdown.
fn setup_auth(
    layout: &Layout,
    settings: &Settings,
    port: u16,
) -> Result<(AuthPolicy, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut loopback_nonce = None;
    let mut sidecar_nonce = None;
    match settings.auth_mode.value {
        AuthMode::Loopback => {
            let nonce = Secret::generate()?;
            write_secret_file(&layout.auth_cookie_file(), nonce.expose())?;
            files.push(layout.auth_cookie_file());
            loopback_nonce = Some(nonce);
        }
        AuthMode::Sidecar => {
            let nonce = match &settings.sidecar_nonce {
                Some(s) => {
                    let value = match &s.value {
                        NonceSource::Inline(v) => v.clone(),
                        NonceSource::File(p) => read_secret_file(p, true)?,
                    };
                    if value.len() < MIN_SIDECAR_NONCE_LEN {
                        return Err(kaged_auth::AuthSetupError::WeakNonce {
                            origin: s.source.to_string(),
                            len: value.len(),
                        }
                        .into());
                    }
                    Secret::from_string(value)
                }
                None => Secret::generate()?,
            };
            // `kaged auth nonce` reads this copy; only the daemon's UID can.
            write_secret_file(&layout.sidecar_nonce_file(), nonce.expose())?;
            files.push(layout.sidecar_nonce_file());
            sidecar_nonce = Some(nonce);
        }
        AuthMode::Insecure => {}
    }
    let policy = AuthPolicy::new(PolicyConfig {
        mode: settings.auth_mode.value,
        port,
        local_user: local_user(),
        loopback_nonce,
        sidecar_nonce,
        launch_ttl: settings.launch_token_ttl.value,
    })?;
    Ok((policy, files))
}

fn print_insecure_block(bind: SocketAddr) {
    let exposed = if bind.ip().is_loopback() {
        "Anyone who can reach this loopback address (any local user or process) is the operator."
    } else {
        "This is a NON-LOOPBACK address: anyone on the network who can reach it is the operator."
    };
    eprintln!(
        "\n\
         ################################################################################\n\
         ##  WARNING: kaged started with --insecure (auth.mode = insecure)\n\
         ##  AUTHENTICATION IS BYPASSED. Every request is accepted as `insecure-mode`.\n\
         ##  Bind address: {bind}\n\
         ##  {exposed}\n\
         ##  CSRF checks, the sandbox and the audit log stay on.\n\
         ##  See ADR-0007 (docs/auth.md): restrict network access yourself.\n\
         ################################################################################\n"
    );
}

fn print_no_sandbox_block(bind: SocketAddr) {
    eprintln!(
        "\n\
         ################################################################################\n\
         ##  WARNING: kaged started with --no-sandbox\n\
         ##  Sessions run WITHOUT bubblewrap cages, with the daemon's full rights.\n\
         ##  Bind address: {bind}\n\
         ##  See ADR-0009: cages are the default; this is an explicit escape hatch.\n\
         ################################################################################\n"
    );
}

/// The systemd notify protocol: one datagram to `$NOTIFY_SOCKET` (a path, or `@name` for an
/// abstract socket). Failures are logged; readiness is best effort outside systemd.
fn sd_notify(socket: Option<&std::ffi::OsStr>, msg: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(socket) = socket else { return };
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(std::path::Path::new(socket)),
    };
    let sent = addr.and_then(|addr| {
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(msg.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify to {} failed", socket.to_string_lossy());
    }
}

async fn wait_for_signal() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// An exclusive `flock` on `<state>/kaged.lock` for the daemon's lifetime: a second daemon on
/// the same state dir is refused instead of corrupting it.
struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

impl StateLock {
    fn acquire(layout: &Layout) -> Result<StateLock> {
        let path = &layout.lock_file;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let mut f: &File = &lock;
                f.set_len(0)?;
                f.rewind()?;
                write!(f, "{}", std::process::id())?;
                Ok(StateLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                bail!(
                    "another kaged (pid {}) already runs with state dir {} in {} mode; stop it first (`kaged status` shows it)",
                    pid.trim(),
                    layout.state_dir.display(),
                    layout.mode
                );
            }
        }
    }
}
