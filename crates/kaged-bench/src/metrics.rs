//! The session-path scenarios, one function per metric and target kind (raw PTY, or a server
//! reached over WebSocket). Each returns plain numbers; `main` records and reports them.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::watch;

use crate::jupyter::{Jupyter, JupyterHandle};
use crate::kaged::{Api, Kaged, blocking};
use crate::procfs;
use crate::raw::RawPty;
use crate::scan::{Scanner, new_mark, stream_command};
use crate::ws::{Event, Term};

/// Every shell in the benchmark: no rc files (root's ~/.bashrc takes a pyenv lock).
pub const SHELL: &[&str] = &["bash", "--norc", "--noprofile"];

/// The echo: the terminal stops echoing and stops buffering lines, and `cat` writes back each
/// byte it reads. One byte in, the same byte out, through one process wake-up: the shape of a
/// keystroke echoed by a line editor.
pub const ECHO_CMD: &str = "stty -echo -icanon min 1 time 0; exec cat\r";

const MIB: f64 = 1024.0 * 1024.0;

/// A file streamed through a terminal, and where the shell finds it.
#[derive(Clone)]
pub struct DataFile {
    pub bytes: Arc<Vec<u8>>,
    pub path: PathBuf,
}

impl DataFile {
    pub fn mib(&self) -> f64 {
        self.bytes.len() as f64 / MIB
    }

    fn shell_path(&self) -> String {
        self.path.display().to_string()
    }
}

pub struct Params {
    pub file: DataFile,
    pub fanout_file: DataFile,
    pub project_dir: PathBuf,
    pub echo_samples: usize,
    /// Pause between keystrokes: a typist, not a flood.
    pub echo_gap: Duration,
    pub viewers: usize,
    /// Bytes per second the slow viewer reads.
    pub slow_rate: f64,
    /// How long the slow viewer keeps reading after the fast one finished, waiting for a gap.
    pub slow_linger: Duration,
    pub idle_counts: Vec<usize>,
    pub start_samples: usize,
}

/// A server target reached over WebSocket.
#[derive(Clone, Copy)]
pub enum Server<'a> {
    Kaged(&'a Kaged),
    Jupyter(&'a Jupyter),
}

#[derive(Clone)]
enum Opener {
    Kaged(Api),
    Jupyter(JupyterHandle),
}

impl Opener {
    fn open(&self) -> Result<String> {
        match self {
            Opener::Kaged(api) => api.create_session(SHELL),
            Opener::Jupyter(h) => h.create_terminal(),
        }
    }

    fn close(&self, id: &str) -> Result<()> {
        match self {
            Opener::Kaged(api) => api.end_session(id),
            Opener::Jupyter(h) => h.delete_terminal(id),
        }
    }
}

impl Server<'_> {
    pub fn pid(&self) -> u32 {
        match self {
            Server::Kaged(k) => k.pid,
            Server::Jupyter(j) => j.pid,
        }
    }

    fn opener(&self) -> Opener {
        match self {
            Server::Kaged(k) => Opener::Kaged(k.api.clone()),
            Server::Jupyter(j) => Opener::Jupyter(j.handle()),
        }
    }

    /// A new shell (a kaged session or a terminado terminal); returns its id.
    pub async fn open(&self) -> Result<String> {
        let o = self.opener();
        blocking(move || o.open()).await
    }

    pub async fn close(&self, id: &str) -> Result<()> {
        let o = self.opener();
        let id = id.to_owned();
        blocking(move || o.close(&id)).await
    }

    /// A viewer; for kaged it starts at offset 0 (the whole output so far).
    pub async fn attach(&self, id: &str) -> Result<Term> {
        match self {
            Server::Kaged(k) => k.attach(id, Some(0)).await,
            Server::Jupyter(j) => j.attach(id).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Server::Kaged(k) => format!("kaged's log:\n{}", k.log_tail()),
            Server::Jupyter(j) => format!("jupyter's log:\n{}", j.log_tail()),
        }
    }
}

/// Fresh viewers timed to their first full screen after a throughput run (kaged).
const REATTACH_SAMPLES: usize = 11;

pub struct Throughput {
    /// kaged: time to the first full screen of new viewers after the stream, sorted.
    pub reattach: Vec<Duration>,
    pub secs: f64,
    pub mibs: f64,
    pub intact: bool,
    pub body_len: u64,
    /// CPU (user + system) the reading side spent during the run: the server process, or for
    /// the raw PTY the reading thread minus what the byte-for-byte check alone costs.
    pub server_cpu: Option<Duration>,
}

fn shell_env(home: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("HOME".to_owned(), home.display().to_string()),
        ("TERM".to_owned(), "xterm-256color".to_owned()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Raw PTY

pub fn raw_throughput(p: &Params, file: &DataFile) -> Result<Throughput> {
    raw_stream(p, file, |_| Ok(()))
}

/// Streams `file` through a raw PTY shell, handing every read to `relay` on the reading thread,
/// and times it; the server CPU is that thread's, less what the checker alone costs.
fn raw_stream(
    p: &Params,
    file: &DataFile,
    mut relay: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Throughput> {
    let home = tempfile::tempdir().context("temp HOME for the raw shell")?;
    let mut pty = RawPty::spawn(SHELL, &shell_env(home.path()), &p.project_dir)?;
    pty.first_byte(Duration::from_secs(10))?;
    pty.drain(Duration::from_millis(200))?;
    let mark = new_mark();
    let cmd = stream_command(&file.shell_path(), &mark);
    let mut sc = Scanner::new(&file.bytes, &mark);
    let mut buf = vec![0u8; 128 << 10];
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    pty.write_all(cmd.as_bytes())?;
    loop {
        let n = pty.read(&mut buf)?;
        if n == 0 {
            bail!("the raw shell ended before the end marker");
        }
        relay(&buf[..n])?;
        if sc.feed(&buf[..n]) {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let reader_cpu = thread_cpu().saturating_sub(cpu0);
    Ok(Throughput {
        secs,
        mibs: file.mib() / secs,
        intact: sc.intact(),
        body_len: sc.body_len().unwrap_or(0),
        server_cpu: Some(reader_cpu.saturating_sub(check_cpu(&file.bytes, &mark))),
        reattach: Vec::new(),
    })
}

/// The floor under any web terminal that keeps a transcript: the raw PTY loop that also
/// sends each read over loopback TCP (with `TCP_NODELAY`, as kaged does; a thread drains it as
/// a viewer would) and appends it to a file in 256 KiB writes. Its reading thread's CPU is what
/// such a server pays the kernel before doing anything of its own; on loopback the sender's
/// thread also runs much of the receiver's TCP path.
pub fn relay_floor_throughput(p: &Params, file: &DataFile) -> Result<Throughput> {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().context("a directory for the relay floor's transcript")?;
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding the relay floor's viewer")?;
    let addr = listener.local_addr()?;
    let viewer = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut sock = std::net::TcpStream::connect(addr).context("connecting to the viewer")?;
    sock.set_nodelay(true)?;
    let path = dir.path().join("transcript");
    let mut transcript =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut pending = Vec::with_capacity(256 << 10);
    let mut t = raw_stream(p, file, |bytes| {
        sock.write_all(bytes).context("sending to the viewer")?;
        pending.extend_from_slice(bytes);
        if pending.len() >= 256 << 10 {
            transcript
                .write_all(&pending)
                .context("appending the transcript")?;
            pending.clear();
        }
        Ok(())
    })?;
    transcript
        .write_all(&pending)
        .context("appending the transcript")?;
    drop(sock);
    let delivered = viewer
        .join()
        .map_err(|_| anyhow!("the relay floor's viewer panicked"))?
        .context("the relay floor's viewer")?;
    t.intact &= delivered >= file.bytes.len() as u64;
    Ok(t)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// What the byte-for-byte check alone costs on the same stream, held in memory and fed in the
/// 4 KiB pieces a PTY delivers. Subtracted from the raw reader's CPU, so that the raw figure is
/// the kernel's cost of reading a PTY (the floor for any server), not the checker's.
fn check_cpu(file: &[u8], mark: &str) -> Duration {
    let mut sc = Scanner::new(file, mark);
    let cpu0 = thread_cpu();
    sc.feed(format!("BEGIN{mark}>").as_bytes());
    for piece in file.chunks(4096) {
        sc.feed(piece);
    }
    sc.feed(format!("END{mark}.").as_bytes());
    let spent = thread_cpu().saturating_sub(cpu0);
    std::hint::black_box(sc.intact());
    spent
}

pub fn raw_echo(p: &Params) -> Result<Vec<Duration>> {
    let home = tempfile::tempdir().context("temp HOME for the raw shell")?;
    let mut pty = RawPty::spawn(SHELL, &shell_env(home.path()), &p.project_dir)?;
    pty.first_byte(Duration::from_secs(10))?;
    pty.drain(Duration::from_millis(100))?;
    pty.write_all(ECHO_CMD.as_bytes())?;
    pty.drain(Duration::from_millis(300))?;
    let mut buf = [0u8; 4096];
    // Probe until `cat` answers, then measure.
    pty.write_all(b"z")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match pty.read_timeout(&mut buf, Duration::from_secs(5))? {
            Some(n) if buf[..n].contains(&b'z') => break,
            Some(0) | None => bail!("the raw echo never answered"),
            Some(_) if Instant::now() > deadline => bail!("the raw echo never answered"),
            Some(_) => {}
        }
    }
    pty.drain(Duration::from_millis(100))?;
    let mut rtts = Vec::with_capacity(p.echo_samples);
    for i in 0..p.echo_samples {
        let b = b'a' + (i % 26) as u8;
        let t0 = Instant::now();
        pty.write_all(&[b])?;
        loop {
            match pty.read_timeout(&mut buf, Duration::from_secs(5))? {
                Some(n) if n > 0 && buf[..n].contains(&b) => break,
                Some(0) | None => bail!("no echo of {:?} within 5 s", b as char),
                Some(_) => {}
            }
        }
        rtts.push(t0.elapsed());
        std::thread::sleep(p.echo_gap);
    }
    Ok(rtts)
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct RawStart {
    pub bash: Vec<Duration>,
    pub bwrap_bash: Vec<Duration>,
    pub bwrap_true: Vec<Duration>,
}

/// The cage kaged builds by default, by hand: the same namespaces and mounts, no daemon.
pub fn bwrap_args(project: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "--die-with-parent",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--cap-drop",
        "ALL",
        "--hostname",
        "kaged",
        "--clearenv",
        "--setenv",
        "HOME",
        "/home/cage",
        "--setenv",
        "PATH",
        "/usr/local/bin:/usr/bin:/bin",
        "--setenv",
        "TERM",
        "xterm-256color",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .map(str::to_owned)
    .into();
    for alias in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::symlink_metadata(alias) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(alias) {
                    a.extend([
                        "--symlink".to_owned(),
                        target.display().to_string(),
                        alias.to_owned(),
                    ]);
                }
            }
            Ok(m) if m.is_dir() => a.extend(["--ro-bind".into(), alias.into(), alias.into()]),
            _ => {}
        }
    }
    let proj = project.display().to_string();
    a.extend(
        [
            "--ro-bind",
            "/etc",
            "/etc",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/home/cage",
            "--bind",
            &proj,
            &proj,
            "--remount-ro",
            "/",
            "--chdir",
            &proj,
            "--",
        ]
        .map(str::to_owned),
    );
    a
}

/// The raw start figures, measured by a fresh `kaged-bench raw-start` process: this one holds
/// the data files (hundreds of MiB), and forking it made every raw start about 15 ms slower
/// than the same start from a small process such as the daemon.
pub fn raw_start(p: &Params) -> Result<RawStart> {
    let exe = std::env::current_exe().context("finding kaged-bench's own path")?;
    let out = std::process::Command::new(&exe)
        .arg("raw-start")
        .arg("--project")
        .arg(&p.project_dir)
        .arg("--samples")
        .arg(p.start_samples.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {} raw-start", exe.display()))?;
    if !out.status.success() {
        bail!("{} raw-start failed ({})", exe.display(), out.status);
    }
    serde_json::from_slice(&out.stdout).context("reading the raw-start figures")
}

/// Measures bash alone, the cage by hand with bash on a PTY, and `bwrap … true`, `samples`
/// times each, from the calling process.
pub fn raw_start_here(project_dir: &Path, samples: usize) -> Result<RawStart> {
    let home = tempfile::tempdir().context("temp HOME for the raw shell")?;
    let env = shell_env(home.path());
    let cage = bwrap_args(project_dir);
    let mut out = RawStart {
        bash: Vec::new(),
        bwrap_bash: Vec::new(),
        bwrap_true: Vec::new(),
    };
    for _ in 0..samples {
        let t0 = Instant::now();
        let mut pty = RawPty::spawn(SHELL, &env, project_dir)?;
        out.bash.push(pty.first_byte(Duration::from_secs(10))? - t0);
        drop(pty);

        let mut argv: Vec<String> = vec!["bwrap".into()];
        argv.extend(cage.iter().cloned());
        argv.extend(SHELL.iter().map(|s| (*s).to_owned()));
        let t0 = Instant::now();
        let mut pty = RawPty::spawn(&argv, &env, project_dir)?;
        out.bwrap_bash
            .push(pty.first_byte(Duration::from_secs(10))? - t0);
        drop(pty);

        let t0 = Instant::now();
        let status = std::process::Command::new("bwrap")
            .args(&cage)
            .arg("true")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .status()
            .context("running bwrap … true")?;
        out.bwrap_true.push(t0.elapsed());
        if !status.success() {
            bail!("bwrap … true failed ({status}); args: {cage:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Servers over WebSocket

/// Streams `file` through the viewer `t`, which must already be attached; returns the elapsed
/// time, the scanner's verdict and the session offset of the scanner's first byte.
async fn stream_through<'f>(
    t: &mut Term,
    file: &'f DataFile,
    limit: Duration,
) -> Result<(Duration, Scanner<'f>, u64)> {
    let mark = new_mark();
    let cmd = stream_command(&file.shell_path(), &mark);
    let mut sc = Scanner::new(&file.bytes, &mark);
    // Where the scanner's offset 0 sits in the session's output.
    let base = t.start_offset + t.received;
    let t0 = Instant::now();
    t.send(cmd.as_bytes()).await?;
    loop {
        match t.next_within(limit, "the end marker").await? {
            Some(Event::Data(b)) => {
                if sc.feed(&b) {
                    break;
                }
            }
            Some(Event::Gap { .. }) => sc.gap(),
            Some(Event::Exit) | None => bail!("the terminal ended before the end marker"),
        }
    }
    Ok((t0.elapsed(), sc, base))
}

pub async fn ws_throughput(srv: Server<'_>, file: &DataFile) -> Result<Throughput> {
    let id = srv.open().await?;
    let mut t = srv.attach(&id).await?;
    t.first_data(Duration::from_secs(10)).await?;
    t.drain(Duration::from_millis(200)).await?;
    let pid = srv.pid();
    let cpu0 = procfs::cpu_time(pid)?;
    let (el, sc, _) = stream_through(&mut t, file, Duration::from_secs(600))
        .await
        .with_context(|| srv.describe())?;
    let cpu = procfs::cpu_time(pid)?.saturating_sub(cpu0);
    // kaged: a new viewer of the session that just streamed the whole file asks for the
    // screen (the terminal model's dump), at the size the session has and at another.
    let mut reattach = Vec::new();
    if let Server::Kaged(k) = srv {
        for i in 0..REATTACH_SAMPLES {
            let (cols, rows) = if i % 2 == 0 { (80, 24) } else { (120, 40) };
            reattach.push(k.screen_time(&id, cols, rows).await?.0);
        }
        reattach.sort();
    }
    let out = Throughput {
        secs: el.as_secs_f64(),
        mibs: file.mib() / el.as_secs_f64(),
        intact: sc.intact(),
        body_len: sc.body_len().unwrap_or(0),
        server_cpu: Some(cpu),
        reattach,
    };
    t.close().await;
    srv.close(&id).await?;
    Ok(out)
}

pub async fn ws_echo(srv: Server<'_>, p: &Params) -> Result<Vec<Duration>> {
    let id = srv.open().await?;
    let mut t = srv.attach(&id).await?;
    t.first_data(Duration::from_secs(10)).await?;
    t.drain(Duration::from_millis(100)).await?;
    t.send(ECHO_CMD.as_bytes()).await?;
    t.drain(Duration::from_millis(300)).await?;
    t.send(b"z").await?;
    wait_for_byte(&mut t, b'z').await?;
    t.drain(Duration::from_millis(100)).await?;
    let mut rtts = Vec::with_capacity(p.echo_samples);
    for i in 0..p.echo_samples {
        let b = b'a' + (i % 26) as u8;
        let t0 = Instant::now();
        t.send(&[b]).await?;
        wait_for_byte(&mut t, b).await?;
        rtts.push(t0.elapsed());
        tokio::time::sleep(p.echo_gap).await;
    }
    t.close().await;
    srv.close(&id).await?;
    Ok(rtts)
}

async fn wait_for_byte(t: &mut Term, b: u8) -> Result<()> {
    loop {
        match t.next_within(Duration::from_secs(5), "an echo").await? {
            Some(Event::Data(d)) if d.contains(&b) => return Ok(()),
            Some(Event::Exit) | None => bail!("the terminal ended while waiting for an echo"),
            Some(_) => {}
        }
    }
}

pub struct Fanout {
    pub producer_mibs: f64,
    pub slowest_intact_mibs: Option<f64>,
    pub intact: usize,
    pub gapped: usize,
    pub viewers: usize,
}

pub async fn ws_fanout(srv: Server<'_>, p: &Params) -> Result<Fanout> {
    let file = &p.fanout_file;
    let id = srv.open().await?;
    let mut terms = Vec::with_capacity(p.viewers);
    for _ in 0..p.viewers {
        terms.push(srv.attach(&id).await?);
    }
    // Every viewer is attached (kaged answered hello; terminado registered the socket).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mark = new_mark();
    let cmd = stream_command(&file.shell_path(), &mark);
    let t0 = Instant::now();
    if let Some(first) = terms.first_mut() {
        first.send(cmd.as_bytes()).await?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut t in terms {
        let bytes = file.bytes.clone();
        let mark = mark.clone();
        tasks.spawn(async move {
            let mut sc = Scanner::new(&bytes, &mark);
            loop {
                match t
                    .next_within(Duration::from_secs(600), "the end marker")
                    .await?
                {
                    Some(Event::Data(b)) => {
                        if sc.feed(&b) {
                            break;
                        }
                    }
                    Some(Event::Gap { .. }) => sc.gap(),
                    Some(Event::Exit) | None => bail!("a viewer's terminal ended early"),
                }
            }
            let el = t0.elapsed();
            let res = (el, sc.intact(), sc.gapped);
            t.close().await;
            Ok::<_, anyhow::Error>(res)
        });
    }
    let mut done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        done.push(r.map_err(|e| anyhow!("viewer task failed: {e}"))??);
    }
    srv.close(&id).await?;
    let first = done
        .iter()
        .map(|d| d.0)
        .min()
        .ok_or_else(|| anyhow!("no viewers"))?;
    let slowest_intact = done.iter().filter(|d| d.1).map(|d| d.0).max();
    Ok(Fanout {
        producer_mibs: file.mib() / first.as_secs_f64(),
        slowest_intact_mibs: slowest_intact.map(|d| file.mib() / d.as_secs_f64()),
        intact: done.iter().filter(|d| d.1).count(),
        gapped: done.iter().filter(|d| d.2).count(),
        viewers: done.len(),
    })
}

/// The floor under fan-out: the raw PTY loop writing every read to `p.viewers` loopback TCP
/// connections (no WebSocket framing, no ring, blocking writes), read by the same kind of
/// client as kaged's viewers (one task each on the bench's one client thread, checking every
/// byte). Returns the producer's rate as `ws_fanout` defines it: the file over the time until
/// the first viewer has it all. On one machine the viewers' reads and the server's sends share
/// the cores, so this is what the hardware allows any server here.
pub fn raw_fanout_floor(rt: &tokio::runtime::Runtime, p: &Params) -> Result<f64> {
    use std::io::Write as _;
    use tokio::io::AsyncReadExt as _;
    let file = p.fanout_file.clone();
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding the fan-out floor")?;
    let addr = listener.local_addr()?;
    let mark = new_mark();
    let viewers = p.viewers;
    let producer = {
        let file = file.clone();
        let mark = mark.clone();
        let project = p.project_dir.clone();
        std::thread::spawn(move || -> Result<Instant> {
            let mut socks = Vec::with_capacity(viewers);
            for _ in 0..viewers {
                let (s, _) = listener.accept().context("accepting a viewer")?;
                s.set_nodelay(true)?;
                socks.push(s);
            }
            let home = tempfile::tempdir().context("temp HOME for the fan-out floor's shell")?;
            let mut pty = RawPty::spawn(SHELL, &shell_env(home.path()), &project)?;
            pty.first_byte(Duration::from_secs(10))?;
            pty.drain(Duration::from_millis(200))?;
            let mut sc = Scanner::new(&file.bytes, &mark);
            let mut buf = vec![0u8; 128 << 10];
            let t0 = Instant::now();
            pty.write_all(stream_command(&file.shell_path(), &mark).as_bytes())?;
            loop {
                let n = pty.read(&mut buf)?;
                if n == 0 {
                    bail!("the fan-out floor's shell ended before the end marker");
                }
                for s in &mut socks {
                    s.write_all(&buf[..n]).context("sending to a viewer")?;
                }
                if sc.feed(&buf[..n]) {
                    return Ok(t0);
                }
            }
        })
    };
    let done = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..viewers {
            let bytes = file.bytes.clone();
            let mark = mark.clone();
            let mut conn = tokio::net::TcpStream::connect(addr).await?;
            tasks.spawn(async move {
                let mut sc = Scanner::new(&bytes, &mark);
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = conn.read(&mut buf).await?;
                    if n == 0 {
                        bail!("the fan-out floor closed a viewer early");
                    }
                    if sc.feed(&buf[..n]) {
                        return Ok::<_, anyhow::Error>((Instant::now(), sc.intact()));
                    }
                }
            });
        }
        let mut done = Vec::new();
        while let Some(r) = tasks.join_next().await {
            done.push(r.map_err(|e| anyhow!("a floor viewer failed: {e}"))??);
        }
        Ok::<_, anyhow::Error>(done)
    })?;
    let t0 = producer
        .join()
        .map_err(|_| anyhow!("the fan-out floor's producer panicked"))??;
    if done.iter().any(|d| !d.1) {
        bail!("a fan-out floor viewer did not get every byte");
    }
    let first = done
        .iter()
        .map(|d| d.0)
        .min()
        .ok_or_else(|| anyhow!("no viewers"))?;
    Ok(file.mib() / first.duration_since(t0).as_secs_f64())
}

pub struct Slow {
    pub rss_growth: u64,
    pub fast_mibs: f64,
    pub fast_intact: bool,
    pub slow_bytes: u64,
    pub gaps: usize,
    /// Every gap began exactly where the slow viewer stood.
    pub gaps_contiguous: bool,
    /// Bytes the slow viewer got after its first gap (it went on reading).
    pub after_gap: u64,
    /// kaged: the transcript holds every byte of the session, the file at the right offset.
    pub transcript_complete: Option<bool>,
}

struct SlowStats {
    bytes: u64,
    gaps: usize,
    contiguous: bool,
    after_gap: u64,
}

/// A viewer that reads at `rate` bytes per second and otherwise leaves the socket alone, so
/// the server's send path backs up exactly as behind a slow link.
async fn slow_reader(
    mut t: Term,
    rate: f64,
    linger: Duration,
    mut fast_done: watch::Receiver<Option<Instant>>,
) -> Result<SlowStats> {
    let start = Instant::now();
    let mut s = SlowStats {
        bytes: 0,
        gaps: 0,
        contiguous: true,
        after_gap: 0,
    };
    let mut cursor = t.start_offset;
    loop {
        if let Some(at) = *fast_done.borrow_and_update()
            && ((s.gaps > 0 && s.after_gap > 0) || at.elapsed() > linger)
        {
            break;
        }
        let ev = match tokio::time::timeout(Duration::from_millis(100), t.next()).await {
            Ok(ev) => ev?,
            Err(_) => continue,
        };
        match ev {
            Some(Event::Data(b)) => {
                s.bytes += b.len() as u64;
                cursor += b.len() as u64;
                if s.gaps > 0 {
                    s.after_gap += b.len() as u64;
                }
                let due = Duration::from_secs_f64(s.bytes as f64 / rate);
                let el = start.elapsed();
                if due > el {
                    tokio::time::sleep(due - el).await;
                }
            }
            Some(Event::Gap { from, to }) => {
                s.gaps += 1;
                s.contiguous &= from == cursor && to > from;
                cursor = to;
            }
            Some(Event::Exit) | None => break,
        }
    }
    t.close().await;
    Ok(s)
}

pub async fn ws_slow(srv: Server<'_>, p: &Params) -> Result<Slow> {
    let file = &p.file;
    let id = srv.open().await?;
    let mut fast = srv.attach(&id).await?;
    fast.first_data(Duration::from_secs(10)).await?;
    fast.drain(Duration::from_millis(200)).await?;
    let slow = srv.attach(&id).await?;
    let pid = srv.pid();
    let rss0 = procfs::rss_bytes(pid)?;
    let peak = procfs::PeakRss::start(pid);
    let (done_tx, done_rx) = watch::channel(None);
    let slow_task = tokio::spawn(slow_reader(slow, p.slow_rate, p.slow_linger, done_rx));
    let streamed = stream_through(&mut fast, file, Duration::from_secs(600)).await;
    let _ = done_tx.send(Some(Instant::now()));
    let stats = slow_task
        .await
        .map_err(|e| anyhow!("slow viewer task failed: {e}"))??;
    let peak = peak.finish();
    let (el, sc, fast_start) = streamed.with_context(|| srv.describe())?;
    let body_start = sc.body_start.map(|b| fast_start + b);
    let fast_intact = sc.intact();
    drop(sc);
    let transcript_complete = match srv {
        Server::Kaged(k) => Some(transcript_complete(k, &id, file, body_start).await?),
        Server::Jupyter(_) => None,
    };
    fast.close().await;
    srv.close(&id).await?;
    Ok(Slow {
        rss_growth: peak.saturating_sub(rss0),
        fast_mibs: file.mib() / el.as_secs_f64(),
        fast_intact,
        slow_bytes: stats.bytes,
        gaps: stats.gaps,
        gaps_contiguous: stats.contiguous,
        after_gap: stats.after_gap,
        transcript_complete,
    })
}

/// The transcript on disk has as many bytes as the session produced, and the streamed file sits
/// at the offset the fast viewer saw it.
async fn transcript_complete(
    k: &Kaged,
    id: &str,
    file: &DataFile,
    body_start: Option<u64>,
) -> Result<bool> {
    let path = k.transcript_path(id);
    let Some(body_start) = body_start else {
        return Ok(false);
    };
    let api = k.api.clone();
    let sid = id.to_owned();
    // The writer batches; give it time to catch up with what the session reports.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let api = api.clone();
        let sid2 = sid.clone();
        let total = blocking(move || api.session(&sid2)).await?.bytes_total;
        let len = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if len == total && total >= body_start + file.bytes.len() as u64 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!(
                "kaged-bench: transcript {} has {len} bytes, the session reports {total}",
                path.display()
            );
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bytes = file.bytes.clone();
    blocking(move || {
        let f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut buf = vec![0u8; 4 << 20];
        let mut off = 0usize;
        while off < bytes.len() {
            let n = buf.len().min(bytes.len() - off);
            f.read_exact_at(&mut buf[..n], body_start + off as u64)
                .with_context(|| format!("reading {}", path.display()))?;
            if buf[..n] != bytes[off..off + n] {
                return Ok(false);
            }
            off += n;
        }
        Ok(true)
    })
    .await
}

/// Server RSS with `n` idle shells, each with one attached viewer, for each `n` in order.
pub async fn ws_idle(srv: Server<'_>, counts: &[usize]) -> Result<Vec<(usize, u64)>> {
    let pid = srv.pid();
    let mut terms: Vec<Term> = Vec::new();
    let mut out = Vec::new();
    for &n in counts {
        while terms.len() < n {
            let batch = (n - terms.len()).min(8);
            let opened = futures_util::future::try_join_all((0..batch).map(|_| async {
                let id = srv.open().await?;
                let mut t = srv.attach(&id).await?;
                t.first_data(Duration::from_secs(30)).await?;
                // kaged: a second viewer takes the screen from the terminal model and leaves,
                // so every idle session has been through its model.
                if let Server::Kaged(k) = srv {
                    k.screen_time(&id, 80, 24).await?;
                }
                Ok::<_, anyhow::Error>(t)
            }))
            .await
            .with_context(|| format!("opening idle shell {} of {n}", terms.len() + 1))?;
            terms.extend(opened);
        }
        // Let start-up allocations settle before reading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        out.push((n, procfs::rss_bytes(pid)?));
    }
    drop(terms);
    Ok(out)
}

/// `POST` (new shell) → WebSocket attach → the first prompt byte.
pub async fn ws_start(srv: Server<'_>, samples: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = Instant::now();
        let id = srv.open().await?;
        let mut t = srv.attach(&id).await?;
        t.first_data(Duration::from_secs(10)).await?;
        out.push(t0.elapsed());
        t.close().await;
        srv.close(&id).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(out)
}

/// Percentile by nearest rank.
pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

pub fn median_ms(v: &[Duration]) -> f64 {
    let mut s = v.to_vec();
    s.sort();
    percentile(&s, 0.5)
}
