//! `kaged-bench serve-ungated`: the daemon as `kaged start` builds it (same layout, settings,
//! start-up and shutdown), serving the same routes without the gate (Host, Origin, auth,
//! CSRF, audit), so the auth-cost section can take the gate's price as a ratio between two
//! otherwise identical daemons. It lives in the bench binary because no build of `kaged`
//! may ever serve ungated.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kaged_config::{Env, Flags, Settings};
use kaged_daemon::Daemon;
use kaged_deploy::{Layout, Probe};
use tokio::signal::unix::{SignalKind, signal};

/// The flags of `kaged [--mode M] start …`, so the bench starts both daemons alike.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Deployment mode: `user` or `system` (default: KAGED_MODE, else detected).
    #[arg(long)]
    mode: Option<String>,
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    #[arg(long, value_name = "MODE")]
    auth_mode: Option<String>,
    #[arg(long)]
    insecure: bool,
    #[arg(long)]
    no_sandbox: bool,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let layout = Layout::resolve(&Probe::from_env(args.mode))?;
    let flags = Flags {
        config: args.config,
        bind: args.bind,
        auth_mode: args.auth_mode,
        insecure: args.insecure,
        no_sandbox: args.no_sandbox,
    };
    let settings = Settings::resolve(&layout, &Env::capture(), &flags)?;
    // The same logging as `kaged start`, so the two daemons differ only in the router.
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level.value)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kaged")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let daemon = Daemon::start(settings, layout).await?;
        // The line `Kaged::start` waits for, as `kaged start` prints it.
        eprintln!(
            "kaged-bench serve-ungated (no auth gate) listening on http://{}",
            daemon.bind()
        );
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (stopped_by, why) = tokio::sync::oneshot::channel();
        let stop = async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            let _ = stopped_by.send(name);
        };
        let router = kaged_http::router_without_gate_for_bench(daemon.clone());
        daemon.serve_until(router, stop).await?;
        // The bench's sessions end with its daemon.
        daemon.shutdown(why.await.unwrap_or("shutdown"), true).await;
        Ok(())
    })
}
