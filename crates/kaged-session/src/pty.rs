//! Starting a session's process on a fresh PTY (through `kaged-pty`, the one PTY setup and
//! fd-closing rule), from a thread that lives as long as the manager.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, mpsc};

use rustix::fs::OFlags;

use crate::{SessionError, SpawnSpec};

pub(crate) struct Spawned {
    pub(crate) child: tokio::process::Child,
    /// Non-blocking and close-on-exec, so no later child inherits it.
    pub(crate) master: OwnedFd,
    pub(crate) pid: u32,
}

/// Spawns `spec.argv` on a new PTY as the leader of its own session, so its pid is also its
/// process group id and signals to that group reach everything it started in the foreground.
/// Only stdio and `spec.keep_fds` cross exec; with `spec.cgroup_procs` it joins that cgroup
/// first.
pub(crate) fn spawn(spec: &SpawnSpec) -> Result<Spawned, SessionError> {
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
    Ok(Spawned { child, master, pid })
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
    pub(crate) fn spawn(&self, spec: SpawnSpec) -> Result<(Spawned, SpawnSpec), SessionError> {
        let gone = || SessionError::Pty(io::Error::other("the session spawner thread is gone"));
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => return Err(SessionError::Pty(io::Error::other(e))),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _runtime = handle.enter();
            let result = spawn(&spec);
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
