//! Quick, in-process measurements of the broker (no HTTP, no WebSocket), for development.
//! The real side-by-side benchmark is `kaged-bench`; this one answers "did my change to the
//! broker cost anything?" in seconds.
//!
//! ```text
//! cargo run --release -p kaged-session --example broker_bench -- throughput 256
//! cargo run --release -p kaged-session --example broker_bench -- idle 1000
//! cargo run --release -p kaged-session --example broker_bench -- slow 256
//! ```
//! Run on an otherwise idle machine and compare figures only within one run.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kaged_api::session::{CageState, SessionKind, SessionOrigin};
use kaged_session::{ManagerConfig, Session, SessionManager, SpawnSpec, Viewer, ViewerEvent};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("`{v}` is not a number"))
        })
    };
    let tmp = tempfile::tempdir()?;
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(tmp.path(), n(1, 256)?).await,
        Some("idle") => idle(tmp.path(), n(1, 1000)?).await,
        Some("slow") => slow(tmp.path(), n(1, 256)?).await,
        _ => bail!("usage: broker_bench throughput [MiB] | idle [sessions] | slow [MiB]"),
    }
}

fn spec(dir: &Path, argv: &[&str]) -> SpawnSpec {
    SpawnSpec {
        id: None,
        project_id: "bench".into(),
        actor: "bench".into(),
        argv: argv.iter().map(OsString::from).collect(),
        env: vec![
            ("HOME".into(), dir.as_os_str().to_owned()),
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("TERM".into(), "dumb".into()),
            ("PS1".into(), "$ ".into()),
        ],
        cwd: dir.to_path_buf(),
        cols: 80,
        rows: 24,
        walltime: None,
        keep_fds: Vec::new(),
        cgroup_procs: None,
        origin: SessionOrigin {
            kind: SessionKind::Command,
            name: None,
            command: Vec::new(),
            cage: CageState::NoSandbox,
            agent: None,
            worktree: None,
        },
    }
}

fn manager(dir: &Path) -> anyhow::Result<SessionManager> {
    let mut cfg = ManagerConfig::new(dir.join("sessions"));
    cfg.max_per_project = usize::MAX;
    cfg.max_per_operator = usize::MAX;
    Ok(SessionManager::open(cfg)?)
}

/// One line of base64, as the session-path benchmark streams it.
fn make_input(dir: &Path, mib: usize) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("input.b64");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut line = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for b in line.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = alphabet[(x % 64) as usize];
        }
        file.write_all(&line)?;
    }
    file.flush()?;
    Ok(path)
}

/// Counts bytes until the exit, returning (bytes, gaps).
async fn drain(mut viewer: Viewer) -> (u64, u64) {
    let (mut bytes, mut gaps) = (0u64, 0u64);
    while let Some(ev) = viewer.next().await {
        match ev {
            ViewerEvent::Data { bytes: b, .. } => bytes += b.len() as u64,
            ViewerEvent::Gap { from, to } => gaps += to - from,
            // Raw viewers (`attach`) get no screens or sizes.
            ViewerEvent::Exit { .. } | ViewerEvent::Screen(_) | ViewerEvent::Size { .. } => {}
        }
    }
    (bytes, gaps)
}

async fn throughput(dir: &Path, mib: usize) -> anyhow::Result<()> {
    let input = make_input(dir, mib)?;
    let input = input.to_str().context("temp path is not UTF-8")?;
    let mgr = manager(dir)?;
    for round in 1..=3 {
        let cpu = cpu_time()?;
        let raw = tokio::task::spawn_blocking({
            let input = input.to_owned();
            move || raw_pty_cat(&input)
        })
        .await??;
        let raw_cpu = cpu_time()? - cpu;
        let start = Instant::now();
        let s = mgr.spawn(spec(dir, &["cat", input]))?;
        let (bytes, gaps) = drain(s.attach(Some(0))).await;
        let broker = (bytes, start.elapsed());
        s.wait().await;
        let broker_cpu = cpu_time()? - cpu - raw_cpu;
        let per_mib = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / mib as f64;
        println!(
            "round {round}: raw {:.0} MiB/s ({:.2} ms CPU/MiB), broker {:.0} MiB/s \
             ({:.2} ms CPU/MiB, transcript included), ratio {:.2}x, {} bytes, {gaps} lost",
            rate(raw),
            per_mib(raw_cpu),
            rate(broker),
            per_mib(broker_cpu),
            rate(broker) / rate(raw),
            bytes
        );
    }
    mgr.shutdown().await;
    Ok(())
}

fn rate((bytes, took): (u64, Duration)) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

/// The physical limit: `cat` on a PTY and a blocking read loop until EIO.
fn raw_pty_cat(input: &str) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let pty = kaged_pty::Pty::open(80, 24)?;
    let mut cmd = std::process::Command::new("cat");
    cmd.arg(input);
    pty.prepare(&mut cmd, &[])?;
    let mut child = cmd.spawn()?;
    drop(cmd);
    let master = pty.into_master();
    let mut buf = vec![0u8; 128 << 10];
    let mut total = 0u64;
    loop {
        match rustix::io::read(master.as_fd(), &mut buf) {
            Ok(0) | Err(rustix::io::Errno::IO) => break,
            Ok(n) => total += n as u64,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    child.wait()?;
    Ok((total, start.elapsed()))
}

/// User plus system CPU time of this process, all threads.
fn cpu_time() -> anyhow::Result<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    Ok(micros(usage.user_time()) + micros(usage.system_time()))
}

fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?)
}

async fn idle(dir: &Path, count: usize) -> anyhow::Result<()> {
    let mgr = manager(dir)?;
    // One session first, so that one-off costs (threads, buffers) are not charged per session.
    let warm = mgr.spawn(spec(dir, &["/bin/sh"]))?;
    wait_prompt(&warm).await;
    let before = rss_kib()?;
    let mut viewers = Vec::with_capacity(count);
    for _ in 0..count {
        let s = mgr.spawn(spec(dir, &["/bin/sh"]))?;
        viewers.push(tokio::spawn(async move {
            let mut v = s.attach(None);
            // Stay attached, as an idle browser tab would.
            while v.next().await.is_some() {}
        }));
    }
    // Let every shell print its prompt and every viewer read it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib()?;
    println!(
        "{count} idle sessions with a viewer each: RSS {before} -> {after} KiB, {:.1} KiB per session",
        (after.saturating_sub(before)) as f64 / count as f64
    );
    mgr.shutdown().await;
    for v in viewers {
        v.await?;
    }
    Ok(())
}

async fn wait_prompt(s: &Arc<Session>) {
    let mut v = s.attach(None);
    while let Some(ViewerEvent::Data { bytes, .. }) = v.next().await {
        if bytes.ends_with(b"$ ") {
            break;
        }
    }
}

/// A viewer reading at 1 MiB/s next to a fast one on the same stream.
async fn slow(dir: &Path, mib: usize) -> anyhow::Result<()> {
    let input = make_input(dir, mib)?;
    let input = input.to_str().context("temp path is not UTF-8")?;
    let mgr = manager(dir)?;
    let before = rss_kib()?;
    let start = Instant::now();
    let s = mgr.spawn(spec(dir, &["cat", input]))?;
    let mut slow_viewer = s.attach(Some(0));
    let slow = tokio::spawn(async move {
        let (mut got, mut gaps) = (0u64, 0u64);
        let began = Instant::now();
        while let Some(ev) = slow_viewer.next().await {
            match ev {
                ViewerEvent::Data { bytes, .. } => got += bytes.len() as u64,
                ViewerEvent::Gap { from, to } => gaps += to - from,
                ViewerEvent::Exit { .. } => break,
                ViewerEvent::Screen(_) | ViewerEvent::Size { .. } => {}
            }
            let due = Duration::from_secs_f64(got as f64 / (1 << 20) as f64);
            tokio::time::sleep(due.saturating_sub(began.elapsed())).await;
        }
        (got, gaps)
    });
    let fast = drain(s.attach(Some(0))).await;
    let fast_rate = rate((fast.0, start.elapsed()));
    let peak = rss_kib()?;
    let info = s.wait().await;
    let (slow_got, slow_gaps) = slow.await?;
    let on_disk = std::fs::metadata(s.transcript_path())?.len();
    println!(
        "fast viewer: {} bytes, {} lost, {fast_rate:.0} MiB/s; slow viewer: {slow_got} bytes, \
         {slow_gaps} skipped; transcript {on_disk} of {} bytes; RSS grew {} KiB",
        fast.0,
        fast.1,
        info.bytes_total,
        peak.saturating_sub(before)
    );
    Ok(())
}
