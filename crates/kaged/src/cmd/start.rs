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
use kaged_http::{Access, AppState, DaemonInfo};
use kaged_store::{AuditEvent, EventType, Store};
use serde_json::json;

use crate::cli::StartArgs;
use crate::client::{Endpoint, local_user};

pub fn run(mode: Option<String>, args: StartArgs) -> Result<ExitCode> {
    let started = Instant::now();
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
    runtime.block_on(serve(layout, settings, started))
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

async fn serve(layout: Layout, settings: Settings, started: Instant) -> Result<ExitCode> {
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
    let state = Arc::new(AppState::new(info, policy, access, store, audit));

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
    notify(&[sd_notify::NotifyState::Ready]);
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
    notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    // In-flight requests finish; long-lived WebSockets get a bounded grace period.
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("connections still open after 10s; closing them"),
    }
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

fn notify(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(false, state)
    {
        tracing::warn!(error = %e, "sd_notify failed");
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
