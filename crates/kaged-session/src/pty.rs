//! Starting a session's process on a fresh PTY (through `kaged-pty`, the one PTY setup and
//! fd-closing rule), from a thread that lives as long as the manager.

use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, mpsc};

use rustix::fs::OFlags;

use crate::holder::{self, HolderSpec, Started};
use crate::{SessionError, SpawnSpec};

pub(crate) struct Spawned {
    pub(crate) leader: Leader,
    /// Non-blocking and close-on-exec, so no later child inherits it.
    pub(crate) master: OwnedFd,
    pub(crate) pid: u32,
}

/// Whoever reports the end of the session's process.
#[derive(Debug)]
pub(crate) enum Leader {
    /// The daemon's own child: the session ends with the daemon (no holder configured).
    Child(tokio::process::Child),
    /// A holder owns the process and tells us over its socket.
    Holder(holder::Link),
}

/// How to start a session through a holder (see [`crate::holder`]).
#[derive(Debug)]
pub(crate) struct ViaHolder {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) socket: PathBuf,
    pub(crate) session: String,
    pub(crate) session_dir: PathBuf,
    pub(crate) deadline_ms: Option<u64>,
}

/// Starts a holder for the session (see [`crate::holder`]): it gets both PTY ends, the
/// descriptors to pass on and the spec; it answers with the child's pid; then we connect to
/// its socket, so that its report of the end reaches us.
fn spawn_via_holder(spec: &SpawnSpec, via: &ViaHolder) -> Result<Spawned, SessionError> {
    let Some(program) = spec.argv.first() else {
        return Err(SessionError::EmptyArgv);
    };
    let spawn_err = |source: io::Error| SessionError::Spawn {
        program: program.to_string_lossy().into_owned(),
        cwd: spec.cwd.clone(),
        source,
    };
    let pty = kaged_pty::Pty::open(spec.cols, spec.rows).map_err(SessionError::Pty)?;
    let (master, slave) = pty.into_fds();
    let keep: Vec<RawFd> = spec.keep_fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cgroup = spec.cgroup_procs.as_ref().map(AsRawFd::as_raw_fd);
    let mut passed: Vec<RawFd> = keep.clone();
    passed.extend([master.as_raw_fd(), slave.as_raw_fd()]);
    passed.extend(cgroup);
    passed.sort_unstable();
    let hspec = HolderSpec {
        v: holder::PROTOCOL,
        session: via.session.clone(),
        session_dir: via.session_dir.clone(),
        socket: via.socket.clone(),
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        master: master.as_raw_fd(),
        slave: slave.as_raw_fd(),
        keep,
        cgroup_procs: cgroup,
        deadline_ms: via.deadline_ms,
    };
    let json = serde_json::to_vec(&hspec).map_err(|e| spawn_err(io::Error::other(e)))?;
    // One socket pair is the holder's stdin and stdout: the spec goes in, one line comes out.
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(SessionError::Pty)?;
    let theirs_out = theirs.try_clone().map_err(SessionError::Pty)?;
    let mut cmd = tokio::process::Command::new(&via.program);
    // `ps` shows `kaged holder`, not `/proc/self/exe holder`.
    // The session id is for `ps` and the operator; the holder takes it from the spec.
    cmd.arg0("kaged")
        .args(&via.args)
        .arg(&via.session)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    // SAFETY: setsid and fcntl/close_range only, in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            // Outside the daemon's process group and session: a signal to the daemon's group
            // (Ctrl-C on a foreground `kaged start`) does not reach sessions.
            rustix::process::setsid()?;
            kaged_pty::inherit_only(&passed)
        });
    }
    let child = cmd.spawn().map_err(|e| {
        SessionError::Pty(io::Error::other(format!(
            "could not start the session holder {}: {e}",
            via.program.display()
        )))
    })?;
    // The holder stays our child until we exit. Dropped unwaited, tokio reaps it when it ends.
    drop(child);
    drop(cmd);
    // Only the holder (and, through it, the process) keeps the slave.
    drop(slave);
    let fed = ours
        .write_all(&json)
        .and_then(|()| ours.shutdown(std::net::Shutdown::Write));
    let mut line = String::new();
    let _ = io::BufReader::new(&ours).read_line(&mut line);
    let started: Started = serde_json::from_str(line.trim()).map_err(|e| {
        let fed = fed
            .as_ref()
            .err()
            .map(|e| format!(" (writing its spec: {e})"));
        SessionError::Pty(io::Error::other(format!(
            "the session holder {} gave no usable answer{}: {e}",
            via.program.display(),
            fed.unwrap_or_default()
        )))
    })?;
    let child_pid = match started {
        Started::Ok { child_pid } => child_pid,
        Started::Err { message } => return Err(spawn_err(io::Error::other(message))),
    };
    let (link, _hello, theirs) = match holder::Link::connect(&via.socket, &via.session) {
        Ok(connected) => connected,
        Err(e) => {
            // A process nobody can reach is of no use: end it (its holder then exits).
            if let Ok(pid) = i32::try_from(child_pid) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return Err(SessionError::Pty(io::Error::other(format!(
                "the session holder at {} did not answer: {e}",
                via.socket.display()
            ))));
        }
    };
    // The same open file as ours: one copy is enough.
    drop(theirs);
    set_nonblocking(master.as_fd()).map_err(SessionError::Pty)?;
    Ok(Spawned {
        leader: Leader::Holder(link),
        master,
        pid: child_pid,
    })
}

/// Spawns `spec.argv` on a new PTY as the leader of its own session, so its pid is also its
/// process group id and signals to that group reach everything it started in the foreground.
/// Only stdio and `spec.keep_fds` cross exec; with `spec.cgroup_procs` it joins that cgroup
/// first.
pub(crate) fn spawn(spec: &SpawnSpec, via: Option<&ViaHolder>) -> Result<Spawned, SessionError> {
    if let Some(via) = via {
        return spawn_via_holder(spec, via);
    }
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(SessionError::EmptyArgv);
    };
    let pty = kaged_pty::Pty::open(spec.cols, spec.rows).map_err(SessionError::Pty)?;
    let mut keep: Vec<RawFd> = spec.keep_fds.iter().map(AsRawFd::as_raw_fd).collect();
    keep.sort_unstable();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .kill_on_drop(false);
    if let Some(procs) = spec.cgroup_procs.as_ref().map(AsRawFd::as_raw_fd) {
        use std::os::unix::process::CommandExt;
        // SAFETY: one write(2) in the child, on a descriptor `spec` keeps open until spawned.
        unsafe {
            cmd.as_std_mut()
                .pre_exec(move || kaged_pty::join_cgroup(procs));
        }
    }
    pty.prepare(cmd.as_std_mut(), &keep)
        .map_err(SessionError::Pty)?;
    let child = cmd.spawn().map_err(|source| SessionError::Spawn {
        program: program.to_string_lossy().into_owned(),
        cwd: spec.cwd.clone(),
        source,
    })?;
    // The command holds copies of the slave; they and ours must go, or reading the master
    // never reports the hang-up.
    drop(cmd);
    let master = pty.into_master();
    let pid = child.id().unwrap_or(0);
    set_nonblocking(master.as_fd()).map_err(SessionError::Pty)?;
    Ok(Spawned {
        leader: Leader::Child(child),
        master,
        pid,
    })
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that exists only to fork session processes, for as long as the manager lives.
///
/// bwrap's `--die-with-parent` is `PR_SET_PDEATHSIG`, which fires when the *thread* that forked
/// it exits, not the process. Forking from whatever thread called `spawn` (a blocking-pool
/// thread that retires after 10 s idle, say) would kill cages at random; this thread lives
/// until the manager is dropped, when killing the cages is right.
#[derive(Debug)]
pub(crate) struct Spawner {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Spawner {
    pub(crate) fn new() -> io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kaged-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })?;
        Ok(Self {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs [`spawn`] on the spawner thread, inside the caller's tokio runtime (the child's
    /// pidfd is registered with it), and gives the spec back.
    pub(crate) fn spawn(
        &self,
        spec: SpawnSpec,
        via: Option<ViaHolder>,
    ) -> Result<(Spawned, SpawnSpec), SessionError> {
        let gone = || SessionError::Pty(io::Error::other("the session spawner thread is gone"));
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => return Err(SessionError::Pty(io::Error::other(e))),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _runtime = handle.enter();
            let result = spawn(&spec, via.as_ref());
            let _ = reply.send((result, spec));
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job);
        if sent.is_err() {
            return Err(gone());
        }
        match answer.recv() {
            Ok((Ok(spawned), spec)) => Ok((spawned, spec)),
            Ok((Err(e), _)) => Err(e),
            Err(_) => Err(gone()),
        }
    }
}
