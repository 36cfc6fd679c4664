//! What the auth layers cost: authenticated `GET /api/v1/status` per second with `wrk` on
//! loopback, in each auth mode, against the same route on the same daemon served without the
//! gate by this binary's `serve-ungated` (the `kaged` binary has no way to do that).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::kaged::{Kaged, KagedOpts};
use crate::procfs;

/// The configurations measured, in the order each round runs them.
pub const MODES: [&str; 4] = ["ungated", "loopback", "sidecar", "insecure"];

/// A daemon for one mode and the headers a client of that mode sends.
struct ModeDaemon {
    mode: &'static str,
    kaged: Kaged,
    headers: Vec<(String, String)>,
}

pub struct Daemons {
    daemons: Vec<ModeDaemon>,
}

const SIDECAR_NONCE: &str = "kaged-bench-sidecar-nonce-0123456789abcdef";

impl Daemons {
    /// `kaged` is the product binary; `bench` is this one, which serves the ungated baseline.
    pub fn start(kaged: &Path, bench: &Path) -> Result<Daemons> {
        let mut daemons = Vec::new();
        for mode in MODES {
            let (bin, command, args, env, login): (&Path, &str, Vec<String>, Vec<_>, bool) =
                match mode {
                    "ungated" => (bench, "serve-ungated", Vec::new(), Vec::new(), false),
                    "loopback" => (kaged, "start", Vec::new(), Vec::new(), true),
                    "sidecar" => (
                        kaged,
                        "start",
                        vec!["--auth-mode".into(), "sidecar".into()],
                        vec![("KAGED_AUTH_SIDECAR_NONCE".into(), SIDECAR_NONCE.into())],
                        false,
                    ),
                    _ => (kaged, "start", vec!["--insecure".into()], Vec::new(), false),
                };
            let (k, _) = Kaged::start(&KagedOpts {
                bin,
                command,
                args,
                env,
                config: None,
                login,
            })
            .with_context(|| format!("starting kaged for the {mode} auth measurement"))?;
            let headers = match mode {
                "loopback" => k
                    .api
                    .headers
                    .iter()
                    .filter(|(h, _)| h == "Cookie" || h == "X-Kaged-Page")
                    .cloned()
                    .collect(),
                "sidecar" => vec![
                    ("X-Kaged-Auth-Nonce".to_owned(), SIDECAR_NONCE.to_owned()),
                    ("X-Kaged-User-Id".to_owned(), "bench".to_owned()),
                ],
                _ => Vec::new(),
            };
            // The route must really answer 200 in this mode, or wrk measures refusals.
            let mut req = crate::kaged::agent().get(format!("{}/api/v1/status", k.api.base));
            for (h, v) in &headers {
                req = req.header(h, v);
            }
            let status = req.call().context("GET /api/v1/status")?.status();
            if status.as_u16() != 200 {
                bail!("GET /api/v1/status in {mode} mode answered {status}");
            }
            daemons.push(ModeDaemon {
                mode,
                kaged: k,
                headers,
            });
        }
        Ok(Daemons { daemons })
    }

    /// One round: each gated mode is measured back to back with the ungated daemon, in an order
    /// that flips every round, so the ratio is taken between neighbours and a drift in the
    /// machine's speed cancels out instead of landing on whichever mode ran later.
    /// Returns `(mode, its run, the ungated run of its pair)`.
    pub fn round(&self, round: usize, duration: Duration) -> Result<Vec<(&'static str, Run, Run)>> {
        let (ungated, gated) = self
            .daemons
            .split_first()
            .ok_or_else(|| anyhow!("no daemons were started"))?;
        let mut out = Vec::new();
        for d in gated {
            let (rps, base) = if round.is_multiple_of(2) {
                let base = ungated.wrk(duration)?;
                (d.wrk(duration)?, base)
            } else {
                let rps = d.wrk(duration)?;
                (rps, ungated.wrk(duration)?)
            };
            out.push((d.mode, rps, base));
        }
        Ok(out)
    }
}

/// One `wrk` run against one daemon.
#[derive(Clone, Copy)]
pub struct Run {
    pub rps: f64,
    /// The daemon's user + system CPU over the run divided by the requests wrk completed: the
    /// per-request cost, which a busy neighbour on a shared VM disturbs far less than the rate.
    pub cpu_us_per_request: f64,
}

impl ModeDaemon {
    fn wrk(&self, duration: Duration) -> Result<Run> {
        let before = procfs::cpu_time(self.kaged.pid)?;
        let (rps, requests) = wrk(&self.kaged.api.base, &self.headers, duration)?;
        let cpu = procfs::cpu_time(self.kaged.pid)?.saturating_sub(before);
        Ok(Run {
            rps,
            cpu_us_per_request: cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
        })
    }
}

/// Returns requests per second and the number of requests completed.
fn wrk(base: &str, headers: &[(String, String)], duration: Duration) -> Result<(f64, u64)> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c8"])
        .arg(format!("-d{}s", duration.as_secs().max(1)));
    for (h, v) in headers {
        cmd.arg("-H").arg(format!("{h}: {v}"));
    }
    cmd.arg(format!("{base}/api/v1/status"));
    let out = cmd.output().context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        bail!("wrk saw refusals ({}) at {base}", line.trim());
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no Requests/sec in wrk's output:\n{text}"))?;
    // "  123456 requests in 5.00s, 12.34MB read"
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow!("no request count in wrk's output:\n{text}"))?;
    Ok((rps, requests))
}
