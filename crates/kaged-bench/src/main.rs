//! `kaged-bench`: kaged's session path side by side with the raw PTY limit and with Jupyter
//! Server's terminals (terminado), in one interleaved run on one machine, plus start-up, auth,
//! egress and adoption costs. It never judges a run by wall-clock time alone: every
//! streamed byte is counted and compared.
//!
//! - `kaged-bench setup`: the data files and the Jupyter venv.
//! - `kaged-bench smoke`: 1 MiB, few samples, one round (runs in the test suite).
//! - `kaged-bench full`: 5 rounds; writes the table into `BENCHMARKS.md`.

mod adopt;
mod authcost;
mod egress;
mod gatecost;
mod jupyter;
mod kaged;
mod metrics;
mod procfs;
mod raw;
mod report;
mod scan;
mod ungated;
mod ws;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::jupyter::Jupyter;
use crate::kaged::{Kaged, KagedOpts};
use crate::metrics::{DataFile, Params, Server};
use crate::report::Results;

#[derive(Parser)]
#[command(
    name = "kaged-bench",
    about = "Benchmark kaged's session path against a raw PTY and Jupyter's terminado"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the data files and install Jupyter Server + terminado into the venv.
    Setup(Opts),
    /// A small, quick run that checks the tool works (1 MiB, few samples, one round).
    Smoke(Opts),
    /// The benchmark: 5 interleaved rounds; writes the table into BENCHMARKS.md.
    Full(Opts),
    /// Internal: the raw start figures as JSON, measured from a process that holds no data.
    #[command(hide = true)]
    RawStart {
        #[arg(long)]
        project: PathBuf,
        #[arg(long)]
        samples: usize,
    },
    /// Internal: the daemon as `kaged start` runs it, without the auth gate (the auth-cost
    /// baseline). Takes `kaged start`'s flags.
    #[command(hide = true)]
    ServeUngated(ungated::ServeArgs),
    /// Internal: a session holder for the ungated daemon, which runs this binary as
    /// `kaged holder` runs in `kaged`.
    #[command(hide = true)]
    Holder { session: Option<String> },
    /// Internal: the gate's price per request, in memory (see `gatecost`); prints JSON.
    #[command(hide = true)]
    GateCostWorker(gatecost::WorkerArgs),
}

#[derive(Args, Clone)]
struct Opts {
    /// The kaged binary [default: `kaged` next to this binary].
    #[arg(long)]
    kaged: Option<PathBuf>,
    /// The Jupyter venv [default: `<target>/bench-venv`].
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Where the data files and the bench project live [default: `<target>/kaged-bench`].
    #[arg(long)]
    work: Option<PathBuf>,
    /// The Markdown file to write the table into [full: `BENCHMARKS.md` at the workspace root;
    /// smoke: none].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every sample as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Rounds [full: 5, smoke: 1].
    #[arg(long)]
    rounds: Option<usize>,
    /// Leave Jupyter/terminado out.
    #[arg(long)]
    no_terminado: bool,
    /// Run only these sections (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Section>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Throughput,
    Echo,
    Start,
    Fanout,
    Slow,
    Idle,
    Cold,
    Auth,
    Egress,
    Adopt,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Smoke,
    Full,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Holder { .. }) {
        return ExitCode::from(u8::try_from(kaged_session::holder::run()).unwrap_or(1));
    }
    let res = match cli.cmd {
        Cmd::Setup(o) => setup(&o).map(|_| true),
        Cmd::Smoke(o) => bench(Mode::Smoke, &o),
        Cmd::Full(o) => bench(Mode::Full, &o),
        Cmd::RawStart { project, samples } => metrics::raw_start_here(&project, samples)
            .and_then(|s| Ok(serde_json::to_writer(std::io::stdout(), &s)?))
            .map(|()| true),
        Cmd::ServeUngated(args) => ungated::run(args).map(|()| true),
        Cmd::Holder { .. } => Ok(true),
        Cmd::GateCostWorker(args) => gatecost::worker(args).map(|()| true),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kaged-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Paths {
    kaged: PathBuf,
    /// This binary, which serves the ungated baseline (`serve-ungated`).
    bench: PathBuf,
    venv: PathBuf,
    work: PathBuf,
    workspace: PathBuf,
}

impl Paths {
    fn resolve(o: &Opts) -> Result<Paths> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let profile_dir = exe
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
        let target = profile_dir
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", profile_dir.display()))?;
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Ok(Paths {
            kaged: o.kaged.clone().unwrap_or_else(|| profile_dir.join("kaged")),
            venv: o.venv.clone().unwrap_or_else(|| target.join("bench-venv")),
            work: o.work.clone().unwrap_or_else(|| target.join("kaged-bench")),
            workspace: workspace.canonicalize().unwrap_or(workspace),
            bench: exe,
        })
    }
}

struct Sizes {
    file: usize,
    fanout: usize,
}

fn sizes(mode: Mode) -> Sizes {
    match mode {
        Mode::Smoke => Sizes {
            file: 1 << 20,
            fanout: 1 << 20,
        },
        Mode::Full => Sizes {
            file: 256 << 20,
            fanout: 64 << 20,
        },
    }
}

/// The project dir (granted to kaged's cages, `root_dir` of Jupyter, cwd of the raw shell)
/// with the data files inside it, so every target reads the same path.
fn prepare_project(work: &Path, sizes: &Sizes) -> Result<(PathBuf, DataFile, DataFile)> {
    let project = work.join("project");
    std::fs::create_dir_all(project.join(".kaged"))
        .with_context(|| format!("creating {}", project.display()))?;
    let yaml = project.join(".kaged/project.yaml");
    std::fs::write(&yaml, "version: 1\nproject: bench\n")
        .with_context(|| format!("writing {}", yaml.display()))?;
    // The cage binds the project at its real path; give every target that same path.
    let project = project
        .canonicalize()
        .with_context(|| format!("resolving {}", project.display()))?;
    let file = data_file(&project, sizes.file)?;
    let fanout = if sizes.fanout == sizes.file {
        file.clone()
    } else {
        data_file(&project, sizes.fanout)?
    };
    Ok((project, file, fanout))
}

/// One line of base64 from /dev/urandom, exactly `len` bytes, made once and kept.
fn data_file(project: &Path, len: usize) -> Result<DataFile> {
    let dir = project.join("data");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("stream-{len}.b64"));
    if std::fs::metadata(&path).map(|m| m.len() as usize).ok() != Some(len) {
        eprintln!("kaged-bench: generating {} ({len} bytes)", path.display());
        let mut urandom = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
        let tmp = path.with_extension("tmp");
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let mut raw = vec![0u8; 3 << 20];
        let mut written = 0;
        while written < len {
            urandom
                .read_exact(&mut raw)
                .context("reading /dev/urandom")?;
            let text = base64::engine::general_purpose::STANDARD.encode(&raw);
            let n = text.len().min(len - written);
            out.write_all(&text.as_bytes()[..n])
                .with_context(|| format!("writing {}", tmp.display()))?;
            written += n;
        }
        out.flush()
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(out);
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(DataFile {
        bytes: Arc::new(bytes),
        path,
    })
}

fn setup(o: &Opts) -> Result<()> {
    let paths = Paths::resolve(o)?;
    prepare_project(&paths.work, &sizes(Mode::Full))?;
    prepare_project(&paths.work, &sizes(Mode::Smoke))?;
    jupyter::ensure_venv(&paths.venv)?;
    eprintln!(
        "kaged-bench: ready (data in {}, venv {})",
        paths.work.display(),
        paths.venv.display()
    );
    Ok(())
}

/// 1000 sessions with a viewer each need a few thousand descriptors, in this process and in
/// the servers it starts (they inherit the limit).
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

fn sh(cmd: &str, args: &[&str], cwd: &Path) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(cwd)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn bench_config() -> Option<String> {
    Some("[sessions]\nmax_per_project = 2000\nmax_per_operator = 2000\n".to_owned())
}

const KAGED_SCROLLBACK_DEFAULT: u64 = 4 << 20;
const MIB: f64 = 1048576.0;

/// Long on purpose: the bench is one script (baselines, rounds, report) whose phases share
/// the results table and must run in this order for the ratios to mean anything.
fn bench(mode: Mode, o: &Opts) -> Result<bool> {
    let started = Instant::now();
    let paths = Paths::resolve(o)?;
    if !paths.kaged.is_file() {
        bail!(
            "no kaged binary at {}; build it with `cargo build --release -p kaged` or pass --kaged",
            paths.kaged.display()
        );
    }
    raise_nofile();
    let sz = sizes(mode);
    let (project, file, fanout_file) = prepare_project(&paths.work, &sz)?;
    let want = |s: Section| o.only.is_empty() || o.only.contains(&s);
    let mut r = Results::default();

    let mut terminado = !o.no_terminado;
    if terminado {
        match mode {
            Mode::Full => jupyter::ensure_venv(&paths.venv)?,
            Mode::Smoke if !paths.venv.join("bin/jupyter-server").is_file() => {
                let why = format!(
                    "terminado: no venv at {} (run `kaged-bench setup` or `scripts/bench`)",
                    paths.venv.display()
                );
                eprintln!("kaged-bench: skipping {why}");
                r.meta.skipped.push(why);
                terminado = false;
            }
            Mode::Smoke => {}
        }
    } else {
        r.meta.skipped.push("terminado: --no-terminado".to_owned());
    }
    let mut auth = want(Section::Auth);
    if auth && Command::new("wrk").arg("--version").output().is_err() {
        let why = "auth cost: wrk is not installed (apt-get install wrk)".to_owned();
        if mode == Mode::Full {
            bail!("{why}");
        }
        eprintln!("kaged-bench: skipping {why}");
        r.meta.skipped.push(why);
        auth = false;
    }

    let full = mode == Mode::Full;
    let p = Params {
        file,
        fanout_file,
        project_dir: project.clone(),
        echo_samples: if full { 2000 } else { 50 },
        echo_gap: Duration::from_millis(2),
        viewers: 50,
        slow_rate: MIB,
        slow_linger: Duration::from_secs(if full { 20 } else { 1 }),
        idle_counts: if full {
            vec![0, 1, 100, 1000]
        } else {
            vec![0, 1, 5]
        },
        start_samples: if full { 10 } else { 3 },
    };
    let rounds = o.rounds.unwrap_or(if full { 5 } else { 1 });
    let cold_samples = if full { 20 } else { 2 };
    let auth_secs = if full { 5 } else { 1 };
    r.meta = report::Meta {
        mode: if full { "full" } else { "smoke" }.to_owned(),
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        commit: {
            let head = sh("git", &["rev-parse", "--short", "HEAD"], &paths.workspace);
            let dirty = sh(
                "git",
                &["status", "--porcelain", "--untracked-files=no"],
                &paths.workspace,
            );
            if dirty.is_empty() || dirty == "?" {
                head
            } else {
                format!("{head}` (plus uncommitted changes in the tree) `")
            }
        },
        nproc: sh("nproc", &[], &paths.workspace),
        kernel: sh("uname", &["-r"], &paths.workspace),
        cpu: cpu_model(),
        load_before: procfs::loadavg(),
        load_after: String::new(),
        rounds,
        file_bytes: p.file.bytes.len() as u64,
        fanout_bytes: p.fanout_file.bytes.len() as u64,
        viewers: p.viewers,
        echo_samples: p.echo_samples,
        echo_gap_ms: p.echo_gap.as_secs_f64() * 1000.0,
        slow_rate_bytes: p.slow_rate,
        scrollback_bytes: KAGED_SCROLLBACK_DEFAULT,
        idle_counts: p.idle_counts.clone(),
        start_samples: p.start_samples,
        cold_samples,
        auth_seconds: auth_secs,
        skipped: std::mem::take(&mut r.meta.skipped),
        minutes: 0.0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;

    if want(Section::Cold) {
        eprintln!("kaged-bench: cold start ×{cold_samples}");
        for i in 0..cold_samples {
            let res = cold_once(&paths.kaged);
            if let Some((ms, rss)) = record(&mut r, i, "kaged", "cold start", res) {
                r.add(i, "kaged", "cold_readyz_ms", ms);
                r.add(i, "kaged", "daemon_idle_rss_mib", rss);
            }
            if terminado {
                let res = (|| {
                    let (j, ready) = Jupyter::start(&paths.venv, &project, metrics::SHELL)?;
                    std::thread::sleep(Duration::from_millis(500));
                    let rss = procfs::rss_bytes(j.pid)? as f64 / MIB;
                    j.stop(Duration::from_secs(10));
                    Ok((ready.as_secs_f64() * 1000.0, rss))
                })();
                if let Some((ms, rss)) = record(&mut r, i, "terminado", "cold start", res) {
                    r.add(i, "terminado", "cold_readyz_ms", ms);
                    r.add(i, "terminado", "daemon_idle_rss_mib", rss);
                }
            }
        }
    }

    let session_sections = [
        Section::Throughput,
        Section::Echo,
        Section::Start,
        Section::Fanout,
        Section::Slow,
        Section::Idle,
    ];
    if session_sections.iter().any(|s| want(*s)) {
        for round in 0..rounds {
            eprintln!("kaged-bench: round {} of {rounds}: raw PTY", round + 1);
            raw_round(&mut r, &rt, round, &p, &want);
            eprintln!("kaged-bench: round {} of {rounds}: kaged", round + 1);
            server_round(&mut r, &rt, round, &p, &want, || {
                let (k, _) = Kaged::start(&KagedOpts {
                    bin: &paths.kaged,
                    command: "start",
                    args: Vec::new(),
                    env: Vec::new(),
                    config: bench_config(),
                    login: true,
                })?;
                k.api.load_project(&project)?;
                Ok(Target::Kaged(k))
            });
            if terminado {
                eprintln!("kaged-bench: round {} of {rounds}: terminado", round + 1);
                server_round(&mut r, &rt, round, &p, &want, || {
                    let (j, _) = Jupyter::start(&paths.venv, &project, metrics::SHELL)?;
                    Ok(Target::Jupyter(j))
                });
            }
        }
    }

    if want(Section::Adopt) {
        let n = if full { 100 } else { 5 };
        for round in 0..rounds {
            eprintln!(
                "kaged-bench: round {} of {rounds}: kill -9 with {n} sessions, adopt",
                round + 1
            );
            let res = adopt::once(&paths.kaged, &project, bench_config(), n);
            if let Some(a) = record(&mut r, round, "kaged", "adoption", res) {
                r.add(
                    round,
                    "kaged",
                    "adopt_ready_ms",
                    a.ready.as_secs_f64() * 1000.0,
                );
                r.add(
                    round,
                    "kaged",
                    "adopt_first_screen_ms",
                    a.first_screen.as_secs_f64() * 1000.0,
                );
                r.add(round, "kaged", "adopt_sessions", n as f64);
                r.add(round, "kaged", "adopt_adopted", a.adopted as f64);
            }
        }
    }

    if auth {
        eprintln!("kaged-bench: auth layers, {rounds} round(s) of wrk");
        let res = authcost::Daemons::start(&paths.kaged, &paths.bench);
        if let Some(daemons) = record(&mut r, 0, "auth", "starting the daemons", res) {
            for round in 0..rounds {
                let res = daemons.round(round, Duration::from_secs(auth_secs));
                if let Some(v) = record(&mut r, round, "auth", "wrk", res) {
                    for (mode, run, ungated) in v {
                        r.add(round, mode, "status_rps", run.rps);
                        r.add(round, mode, "status_rps_ungated_pair", ungated.rps);
                        r.add(round, "ungated", "status_rps", ungated.rps);
                        r.add(round, mode, "status_cpu_us", run.cpu_us_per_request);
                        let pair = ungated.cpu_us_per_request;
                        r.add(round, mode, "status_cpu_us_ungated_pair", pair);
                        r.add(round, "ungated", "status_cpu_us", pair);
                    }
                }
            }
        }
        let (requests, batches) = if full { (5000, 20) } else { (200, 2) };
        for mode in gatecost::MODES {
            eprintln!("kaged-bench: the gate in memory, {mode}");
            let res = gatecost::measure(&paths.bench, mode, requests, batches);
            if let Some(s) = record(&mut r, 0, mode, "gate in memory", res) {
                for (b, (gated, ungated)) in s.gated_ns.iter().zip(&s.ungated_ns).enumerate() {
                    r.add(b, mode, "gate_us", gated / 1000.0);
                    r.add(b, mode, "gate_us_ungated_pair", ungated / 1000.0);
                    r.add(b, mode, "gate_added_us", (gated - ungated) / 1000.0);
                }
            }
        }
    }

    if want(Section::Egress) {
        let (samples, big, starts) = if full {
            (1000, 64 << 20, 20)
        } else {
            (50, 1 << 20, 3)
        };
        for round in 0..rounds {
            eprintln!(
                "kaged-bench: round {} of {rounds}: egress gateway",
                round + 1
            );
            let res = egress::round(&paths.kaged, &project, samples, big, starts);
            if let Some(e) = record(&mut r, round, "egress", "egress gateway", res) {
                let q = egress::quantile;
                let (d50, g50) = (q(&e.direct_us, 0.5), q(&e.gateway_us, 0.5));
                let (d99, g99) = (q(&e.direct_us, 0.99), q(&e.gateway_us, 0.99));
                r.add(round, "egress", "direct_p50_us", d50);
                r.add(round, "egress", "gateway_p50_us", g50);
                r.add(round, "egress", "added_p50_us", g50 - d50);
                r.add(round, "egress", "direct_p99_us", d99);
                r.add(round, "egress", "gateway_p99_us", g99);
                r.add(round, "egress", "added_p99_us", g99 - d99);
                r.add(round, "egress", "direct_mib_s", e.direct_mib_s);
                r.add(round, "egress", "gateway_mib_s", e.gateway_mib_s);
                r.add(
                    round,
                    "egress",
                    "throughput_ratio",
                    e.gateway_mib_s / e.direct_mib_s,
                );
                r.add(round, "egress", "floor_mib_s", e.floor_mib_s);
                r.add(
                    round,
                    "egress",
                    "floor_ratio",
                    e.floor_mib_s / e.direct_mib_s,
                );
                r.add(
                    round,
                    "egress",
                    "gateway_floor_ratio",
                    e.gateway_mib_s / e.floor_mib_s,
                );
                let (t, w) = (q(&e.start_today_ms, 0.5), q(&e.start_relay_ms, 0.5));
                r.add(round, "egress", "start_today_ms", t);
                r.add(round, "egress", "start_relay_ms", w);
                r.add(round, "egress", "start_added_ms", w - t);
            }
        }
    }

    r.meta.load_after = procfs::loadavg();
    r.meta.minutes = started.elapsed().as_secs_f64() / 60.0;
    let table = report::render(&r);
    println!("{table}");
    let out = o
        .out
        .clone()
        .or_else(|| full.then(|| paths.workspace.join("BENCHMARKS.md")));
    if let Some(out) = out {
        report::write_into(&out, &table)?;
        eprintln!("kaged-bench: wrote {}", out.display());
    }
    if let Some(json) = &o.json {
        let text = serde_json::to_string_pretty(&r).context("serialising the results")?;
        std::fs::write(json, text).with_context(|| format!("writing {}", json.display()))?;
    }
    for e in &r.errors {
        eprintln!("kaged-bench: error: {e}");
    }
    Ok(r.errors.is_empty())
}

/// Keeps a failed measurement from ending a long run: the error goes into the report.
fn record<T>(r: &mut Results, round: usize, target: &str, what: &str, res: Result<T>) -> Option<T> {
    match res {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = format!("round {}, {target}, {what}: {e:#}", round + 1);
            eprintln!("kaged-bench: {msg}");
            r.errors.push(msg);
            None
        }
    }
}

fn cold_once(bin: &Path) -> Result<(f64, f64)> {
    let (k, ready) = Kaged::start(&KagedOpts {
        bin,
        command: "start",
        args: Vec::new(),
        env: Vec::new(),
        config: None,
        login: false,
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let rss = procfs::rss_bytes(k.pid)? as f64 / MIB;
    k.stop(Duration::from_secs(10));
    Ok((ready.as_secs_f64() * 1000.0, rss))
}

fn add_echo(r: &mut Results, round: usize, target: &str, mut rtts: Vec<Duration>) {
    rtts.sort();
    r.add(
        round,
        target,
        "echo_p50_ms",
        metrics::percentile(&rtts, 0.5),
    );
    r.add(
        round,
        target,
        "echo_p99_ms",
        metrics::percentile(&rtts, 0.99),
    );
    r.add(
        round,
        target,
        "echo_p999_ms",
        metrics::percentile(&rtts, 0.999),
    );
    r.add(round, target, "echo_samples", rtts.len() as f64);
}

fn add_throughput(
    r: &mut Results,
    round: usize,
    target: &str,
    t: &metrics::Throughput,
    file: &DataFile,
) {
    r.add(round, target, "throughput_mibs", t.mibs);
    r.add(round, target, "throughput_secs", t.secs);
    r.add(
        round,
        target,
        "throughput_intact",
        f64::from(u8::from(t.intact)),
    );
    r.add(round, target, "throughput_bytes", t.body_len as f64);
    r.add(
        round,
        target,
        "throughput_file_bytes",
        file.bytes.len() as f64,
    );
    if let Some(cpu) = t.server_cpu {
        r.add(
            round,
            target,
            "cpu_ms_per_mib",
            cpu.as_secs_f64() * 1000.0 / file.mib(),
        );
    }
}

/// How many times the raw loop streams the file per round; the best counts (the physical
/// limit), and the spread shows how steady the machine was.
const RAW_TRIES: usize = 3;

fn raw_round(
    r: &mut Results,
    rt: &tokio::runtime::Runtime,
    round: usize,
    p: &Params,
    want: &dyn Fn(Section) -> bool,
) {
    if want(Section::Throughput) {
        let mut runs = Vec::new();
        for _ in 0..RAW_TRIES {
            let res = metrics::raw_throughput(p, &p.file);
            if let Some(t) = record(r, round, "raw", "throughput", res) {
                runs.push(t);
            }
        }
        runs.sort_by(|a, b| b.mibs.total_cmp(&a.mibs));
        if let (Some(best), Some(worst)) = (runs.first(), runs.last()) {
            add_throughput(r, round, "raw", best, &p.file);
            r.add(round, "raw", "raw_worst_mibs", worst.mibs);
            r.add(
                round,
                "raw",
                "raw_spread_pct",
                (best.mibs - worst.mibs) / best.mibs * 100.0,
            );
        }
        let res = metrics::relay_floor_throughput(p, &p.file);
        if let Some(t) = record(r, round, "raw", "relay floor", res) {
            r.add(round, "raw", "floor_mibs", t.mibs);
            if let Some(cpu) = t.server_cpu {
                r.add(
                    round,
                    "raw",
                    "floor_cpu_ms_per_mib",
                    cpu.as_secs_f64() * 1000.0 / p.file.mib(),
                );
            }
        }
    }
    if want(Section::Fanout) {
        let res = metrics::raw_fanout_floor(rt, p);
        if let Some(mibs) = record(r, round, "raw", "fan-out floor", res) {
            r.add(round, "raw", "fanout_floor_mibs", mibs);
        }
    }
    if want(Section::Echo) {
        let res = metrics::raw_echo(p);
        if let Some(rtts) = record(r, round, "raw", "echo", res) {
            add_echo(r, round, "raw", rtts);
        }
    }
    if want(Section::Start) {
        let res = metrics::raw_start(p);
        if let Some(s) = record(r, round, "raw", "start", res) {
            r.add(round, "raw", "start_bash_ms", metrics::median_ms(&s.bash));
            r.add(
                round,
                "raw",
                "start_bwrap_bash_ms",
                metrics::median_ms(&s.bwrap_bash),
            );
            r.add(
                round,
                "raw",
                "bwrap_true_ms",
                metrics::median_ms(&s.bwrap_true),
            );
            // The cage start's baseline: bare `bwrap … true` plus a shell start.
            r.add(
                round,
                "raw",
                "start_bwrap_true_plus_bash_ms",
                metrics::median_ms(&s.bwrap_true) + metrics::median_ms(&s.bash),
            );
        }
    }
}

enum Target {
    Kaged(Kaged),
    Jupyter(Jupyter),
}

impl Target {
    fn server(&self) -> Server<'_> {
        match self {
            Target::Kaged(k) => Server::Kaged(k),
            Target::Jupyter(j) => Server::Jupyter(j),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Target::Kaged(_) => "kaged",
            Target::Jupyter(_) => "terminado",
        }
    }

    fn stop(self, grace: Duration) {
        match self {
            Target::Kaged(k) => k.stop(grace),
            Target::Jupyter(j) => j.stop(grace),
        }
    }
}

/// One round against a server: streaming metrics on one fresh server, idle sessions on
/// another (so that the idle baseline carries no memory from the streams).
/// Long on purpose: both halves must run against fresh servers in a fixed order.
fn server_round(
    r: &mut Results,
    rt: &tokio::runtime::Runtime,
    round: usize,
    p: &Params,
    want: &dyn Fn(Section) -> bool,
    start: impl Fn() -> Result<Target>,
) {
    let streaming = [
        Section::Throughput,
        Section::Echo,
        Section::Start,
        Section::Fanout,
        Section::Slow,
    ];
    if streaming.iter().any(|s| want(*s)) {
        let target = start();
        let name = match &target {
            Ok(t) => t.name(),
            Err(_) => "server",
        };
        if let Some(t) = record(r, round, name, "start", target) {
            let srv = t.server();
            if want(Section::Throughput) {
                let res = rt.block_on(metrics::ws_throughput(srv, &p.file));
                if let Some(th) = record(r, round, name, "throughput", res) {
                    add_throughput(r, round, name, &th, &p.file);
                    if !th.reattach.is_empty() {
                        r.add(
                            round,
                            name,
                            "reattach_screen_ms",
                            metrics::median_ms(&th.reattach),
                        );
                        r.add(
                            round,
                            name,
                            "reattach_screen_max_ms",
                            th.reattach.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                        );
                    }
                }
            }
            if want(Section::Echo) {
                let res = rt.block_on(metrics::ws_echo(srv, p));
                if let Some(rtts) = record(r, round, name, "echo", res) {
                    add_echo(r, round, name, rtts);
                }
            }
            if want(Section::Start) {
                let res = rt.block_on(metrics::ws_start(srv, p.start_samples));
                if let Some(v) = record(r, round, name, "start latency", res) {
                    r.add(round, name, "start_ms", metrics::median_ms(&v));
                }
            }
            if want(Section::Fanout) {
                let res = rt.block_on(metrics::ws_fanout(srv, p));
                if let Some(f) = record(r, round, name, "fan-out", res) {
                    r.add(round, name, "fanout_producer_mibs", f.producer_mibs);
                    if let Some(s) = f.slowest_intact_mibs {
                        r.add(round, name, "fanout_slowest_mibs", s);
                    }
                    r.add(round, name, "fanout_intact", f.intact as f64);
                    r.add(round, name, "fanout_gapped", f.gapped as f64);
                    r.add(round, name, "fanout_viewers", f.viewers as f64);
                }
            }
            if want(Section::Slow) {
                let res = rt.block_on(metrics::ws_slow(srv, p));
                if let Some(s) = record(r, round, name, "slow viewer", res) {
                    r.add(
                        round,
                        name,
                        "slow_rss_growth_mib",
                        s.rss_growth as f64 / MIB,
                    );
                    r.add(round, name, "slow_fast_mibs", s.fast_mibs);
                    r.add(
                        round,
                        name,
                        "slow_fast_intact",
                        f64::from(u8::from(s.fast_intact)),
                    );
                    r.add(round, name, "slow_read_mib", s.slow_bytes as f64 / MIB);
                    r.add(round, name, "slow_gaps", s.gaps as f64);
                    if let Some(c) = s.transcript_complete {
                        r.add(
                            round,
                            name,
                            "slow_transcript_complete",
                            f64::from(u8::from(c)),
                        );
                        let ok = s.gaps > 0 && s.gaps_contiguous && s.after_gap > 0;
                        r.add(round, name, "slow_gap_ok", f64::from(u8::from(ok)));
                    }
                }
            }
            t.stop(Duration::from_secs(30));
        }
    }
    if want(Section::Idle) {
        let target = start();
        let name = match &target {
            Ok(t) => t.name(),
            Err(_) => "server",
        };
        if let Some(t) = record(r, round, name, "start (idle)", target) {
            let res = rt.block_on(metrics::ws_idle(t.server(), &p.idle_counts));
            if let Some(v) = record(r, round, name, "idle sessions", res) {
                for (n, rss) in &v {
                    r.add(round, name, &format!("idle_rss_mib_{n}"), *rss as f64 / MIB);
                }
                if let (Some(first), Some(last)) = (v.first(), v.last())
                    && last.0 > first.0
                {
                    let per = (last.1 as f64 - first.1 as f64) / (last.0 - first.0) as f64;
                    r.add(round, name, "idle_kib_per_session", per / 1024.0);
                }
            }
            t.stop(Duration::from_secs(120));
        }
    }
}
