//! `kaged start`: resolve mode and settings, take the state-dir lock, run the start-up
//! self-checks, set up auth, bind, serve until SIGTERM/SIGINT, then shut down cleanly.

mod banner;
mod lock;
mod notify;
mod setup;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use kaged_auth::{AuthMode, remove_quietly, write_secret_file};
use kaged_config::{Env, Flags, Settings};
use kaged_deploy::{Layout, Probe};
use kaged_http::{Access, AppState, DaemonInfo, Parts};
use kaged_store::{AuditEvent, EventType, Store};
use serde_json::json;

use crate::cli::StartArgs;
use crate::client::{Endpoint, local_user};
use banner::{print_insecure_block, print_no_sandbox_block};
use lock::StateLock;
use notify::sd_notify;
use setup::{bind_self_check, host_facts, setup_auth};

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
    let reads = kaged_http::spawn_read_audit(state.clone());

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
        // Terminal output is many small writes: without TCP_NODELAY, Nagle holds a frame back
        // until the previous one is ACKed, and a delayed ACK makes that up to 40 ms (the first
        // prompt after the WebSocket `hello` waited exactly that).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
            }
        });
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
    reads.abort();
    state.flush_read_audit().await;
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

async fn wait_for_signal() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
