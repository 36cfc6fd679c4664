//! The gate's own price per request, without the network: one process builds the daemon as
//! `kaged start` does, then drives `GET /api/v1/status` through the full router and through the
//! same routes without the gate, in memory (`tower::ServiceExt::oneshot`), in alternating
//! batches. On a shared VM, `wrk` over loopback swings by ±10 % between two identical daemons;
//! here both routers share one process, one core and one daemon, so their difference is the
//! gate (Host, Origin, auth, CSRF, audit counting, response headers) and little else.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use clap::Args;
use http::{Request, StatusCode, header};
use kaged_config::{Env, Flags, Settings};
use kaged_daemon::Daemon;
use kaged_deploy::{Layout, Probe};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

/// The auth modes whose gate is priced, as `kaged start` flags.
pub const MODES: [&str; 3] = ["loopback", "sidecar", "insecure"];

const SIDECAR_NONCE: &str = "kaged-bench-sidecar-nonce-0123456789abcdef";

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// `loopback`, `sidecar` or `insecure`.
    #[arg(long)]
    mode: String,
    /// Requests per batch.
    #[arg(long, default_value_t = 5000)]
    requests: u32,
    /// Batches per router; the two routers alternate, the order flipping every pair.
    #[arg(long, default_value_t = 10)]
    batches: u32,
}

/// Nanoseconds per request, one entry per batch.
#[derive(Serialize, Deserialize, Default)]
pub struct Samples {
    pub gated_ns: Vec<f64>,
    pub ungated_ns: Vec<f64>,
}

/// Runs the worker in a temp HOME (like every daemon the bench starts) and reads its samples.
pub fn measure(bench: &Path, mode: &str, requests: u32, batches: u32) -> Result<Samples> {
    let root = tempfile::Builder::new()
        .prefix("kaged-bench-gate-")
        .tempdir()
        .context("creating a temp dir for the gate-cost worker")?;
    let (home, rt) = (root.path().join("home"), root.path().join("rt"));
    std::fs::create_dir_all(&home).context("creating the temp HOME")?;
    std::fs::create_dir_all(&rt).context("creating the temp runtime dir")?;
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700))
        .context("chmod 0700 on the runtime dir")?;
    let out = Command::new(bench)
        .arg("gate-cost-worker")
        .args(["--mode", mode])
        .args(["--requests", &requests.to_string()])
        .args(["--batches", &batches.to_string()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &rt)
        .env("KAGED_MODE", "user")
        .env("KAGED_AUTH_SIDECAR_NONCE", SIDECAR_NONCE)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} gate-cost-worker", bench.display()))?;
    if !out.status.success() {
        bail!(
            "the gate-cost worker for {mode} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("reading the gate-cost worker's samples")
}

/// `kaged-bench gate-cost-worker`: prints [`Samples`] as JSON on stdout.
pub fn worker(args: WorkerArgs) -> Result<()> {
    let layout = Layout::resolve(&Probe::from_env(Some("user".to_owned())))?;
    let flags = Flags {
        config: None,
        bind: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        auth_mode: (args.mode == "sidecar").then(|| "sidecar".to_owned()),
        insecure: args.mode == "insecure",
        no_sandbox: false,
    };
    let settings = Settings::resolve(&layout, &Env::capture(), &flags)?;
    // One thread: both routers run on the same core, in turn.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let samples = runtime.block_on(async {
        let daemon = Daemon::start(settings, layout).await?;
        let res = batches(&daemon, &args).await;
        daemon.shutdown("gate-cost measured", true).await;
        res
    })?;
    serde_json::to_writer(std::io::stdout(), &samples)?;
    Ok(())
}

async fn batches(daemon: &Daemon, args: &WorkerArgs) -> Result<Samples> {
    let gated = kaged_http::router(daemon.clone());
    let ungated = kaged_http::router_without_gate_for_bench(daemon.clone());
    let host = daemon.bind().to_string();
    let mut headers = vec![(header::HOST.as_str().to_owned(), host.clone())];
    match args.mode.as_str() {
        "loopback" => headers.extend(login(&gated, daemon, &host).await?),
        "sidecar" => {
            headers.push(("X-Kaged-Auth-Nonce".to_owned(), SIDECAR_NONCE.to_owned()));
            headers.push(("X-Kaged-User-Id".to_owned(), "bench".to_owned()));
        }
        _ => {}
    }
    // Both must really answer 200, or the batches would time refusals.
    for router in [&gated, &ungated] {
        let status = status_once(router, &headers).await?;
        if status != StatusCode::OK {
            bail!("GET /api/v1/status in {} mode answered {status}", args.mode);
        }
    }
    let mut s = Samples::default();
    for b in 0..args.batches {
        let order = if b % 2 == 0 {
            [(&gated, true), (&ungated, false)]
        } else {
            [(&ungated, false), (&gated, true)]
        };
        for (router, is_gated) in order {
            let t0 = Instant::now();
            for _ in 0..args.requests {
                let status = status_once(router, &headers).await?;
                if status != StatusCode::OK {
                    bail!("GET /api/v1/status answered {status} during the batch");
                }
            }
            let ns = t0.elapsed().as_nanos() as f64 / f64::from(args.requests.max(1));
            if is_gated {
                s.gated_ns.push(ns);
            } else {
                s.ungated_ns.push(ns);
            }
        }
    }
    Ok(s)
}

/// One request through `router`, body read to the end as a client would.
async fn status_once(router: &Router, headers: &[(String, String)]) -> Result<StatusCode> {
    let mut req = Request::get("/api/v1/status");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let mut req = req.body(Body::empty())?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let res = router.clone().oneshot(req).await?;
    let status = res.status();
    axum::body::to_bytes(res.into_body(), usize::MAX).await?;
    Ok(status)
}

/// What a browser tab sends after the launch URL: the cookie and the page key.
async fn login(gated: &Router, daemon: &Daemon, host: &str) -> Result<Vec<(String, String)>> {
    let url = daemon
        .launch_url()
        .map_err(|e| anyhow!("no launch URL: {e}"))?
        .url;
    let path = url
        .find("/launch")
        .map(|i| &url[i..])
        .ok_or_else(|| anyhow!("the launch URL has no /launch path"))?;
    let mut req = Request::get(path)
        .header(header::HOST, host)
        .body(Body::empty())?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let res = gated.clone().oneshot(req).await?;
    if res.status() != StatusCode::SEE_OTHER {
        bail!("the launch URL answered {} instead of 303", res.status());
    }
    let cookie = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kaged_session_"))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the launch URL set no kaged_session_ cookie"))?;
    let page = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.strip_prefix("/#kaged-page="))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the launch URL handed over no page key"))?;
    Ok(vec![
        ("Cookie".to_owned(), cookie),
        ("X-Kaged-Page".to_owned(), page),
    ])
}
