//! `kaged start`: resolve mode and settings, start the daemon, tell the operator where it is,
//! serve until SIGTERM/SIGINT, then shut down in order.

mod banner;
mod notify;
mod on_stop;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Context, Result};
use kaged_config::{Env, Flags, Settings};
use kaged_daemon::Daemon;
use kaged_deploy::{Layout, Probe};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::StartArgs;
use notify::sd_notify;

pub fn run(mode: Option<String>, args: StartArgs) -> Result<ExitCode> {
    let notify_socket = take_notify_socket();
    // systemd sets these; what goes to stderr then lands in the journal for good.
    let service_manager = notify_socket.is_some()
        || std::env::var_os("JOURNAL_STREAM").is_some()
        || std::env::var_os("INVOCATION_ID").is_some();
    let layout = Layout::resolve(&Probe::from_env(mode))?;
    let flags = Flags {
        config: args.config,
        bind: args.bind,
        auth_mode: args.auth_mode,
        insecure: args.insecure,
        no_sandbox: args.no_sandbox,
    };
    let settings = Settings::resolve(&layout, &Env::capture(), &flags)?;
    init_tracing(&settings.log_level.value);
    banner::log_start(&layout, &settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kaged")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let daemon = Daemon::start(settings, layout).await?;
        banner::print(&daemon, service_manager);
        let socket = notify_socket.clone();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (stopped_by, why) = tokio::sync::oneshot::channel();
        let stop = async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!("received {name}; shutting down");
            sd_notify(socket.as_deref(), "STOPPING=1");
            let _ = stopped_by.send(name);
        };
        sd_notify(notify_socket.as_deref(), "READY=1\nSTATUS=serving");
        daemon
            .serve_until(kaged_http::router(daemon.clone()), stop)
            .await?;
        let setting = daemon.settings().sessions.on_stop.value;
        let job = match setting {
            kaged_config::SessionsOnStop::Auto => {
                tokio::task::spawn_blocking(on_stop::systemd_job)
                    .await
                    .unwrap_or(None)
            }
            kaged_config::SessionsOnStop::Keep | kaged_config::SessionsOnStop::End => None,
        };
        let end_sessions = on_stop::end_sessions(setting, job.as_deref());
        if end_sessions {
            tracing::info!("ending sessions (sessions.on_stop = {setting}, systemd job {job:?})");
        } else {
            tracing::info!(
                "leaving sessions running for the next daemon (sessions.on_stop = {setting}, systemd job {job:?})"
            );
        }
        daemon
            .shutdown(why.await.unwrap_or("shutdown"), end_sessions)
            .await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Takes `NOTIFY_SOCKET` out of the environment so that no child (cage, probe) can talk to
/// systemd on the daemon's behalf; readiness is ours to announce.
fn take_notify_socket() -> Option<OsString> {
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
