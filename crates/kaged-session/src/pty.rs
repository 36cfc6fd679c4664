//! Starting a process on a fresh PTY, as the leader of its own session with that PTY as its
//! controlling terminal (design §7: job control and Ctrl-C must work, so no `--new-session`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::sync::{Mutex, mpsc};

use rustix::fs::OFlags;
use rustix::io::FdFlags;
use rustix::pty::OpenptFlags;
use rustix::termios::{self, InputModes, OptionalActions, Winsize};

use crate::{SessionError, SpawnSpec};

pub(crate) struct Spawned {
    pub(crate) child: tokio::process::Child,
    /// Non-blocking and close-on-exec, so no later child inherits it.
    pub(crate) master: OwnedFd,
    pub(crate) pid: u32,
}

pub(crate) fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn open_pair(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    // TIOCGPTPEER opens the peer without a path lookup (no race on /dev/pts); fall back to the
    // name on kernels older than 4.13.
    let slave = match rustix::pty::ioctl_tiocgptpeer(&master, flags) {
        Ok(slave) => slave,
        Err(_) => {
            let name = rustix::pty::ptsname(&master, Vec::new())?;
            rustix::fs::open(
                name.as_c_str(),
                OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?
        }
    };
    termios::tcsetwinsize(&slave, winsize(cols, rows))?;
    // Line editing in canonical mode (backspace over a multi-byte character) needs IUTF8,
    // which the kernel's default termios lacks.
    let mut attrs = termios::tcgetattr(&slave)?;
    attrs.input_modes |= InputModes::IUTF8;
    termios::tcsetattr(&slave, OptionalActions::Now, &attrs)?;
    Ok((master, slave))
}

/// Spawns `spec.argv` on a new PTY. The child runs `setsid` and `TIOCSCTTY` before exec, so its
/// pid is also its process group id and signals to that group reach everything it started in
/// the foreground.
pub(crate) fn spawn(spec: &SpawnSpec) -> Result<Spawned, SessionError> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(SessionError::EmptyArgv);
    };
    let (master, slave) = open_pair(spec.cols, spec.rows).map_err(SessionError::Pty)?;
    let stdio = || {
        slave
            .try_clone()
            .map(Stdio::from)
            .map_err(SessionError::Pty)
    };

    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(stdio()?)
        .stdout(stdio()?)
        .stderr(stdio()?)
        .kill_on_drop(false);
    let keep: Vec<RawFd> = spec.keep_fds.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: the closure runs in the forked child before exec and only makes raw syscalls
    // (setsid, ioctl, close_range, fcntl): no allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            // SAFETY: fd 0 is the PTY slave, set up by the stdio redirection before this runs.
            let stdin = BorrowedFd::borrow_raw(0);
            rustix::process::ioctl_tiocsctty(stdin)?;
            // Only stdio and `keep_fds` may cross exec, even if something in the daemon
            // opened a descriptor without O_CLOEXEC. Kernels before 5.11 lack close_range;
            // there we rely on O_CLOEXEC alone.
            // SAFETY: close_range takes plain integers; with CLOSE_RANGE_CLOEXEC it closes
            // nothing.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            for fd in &keep {
                // SAFETY: these descriptors are owned by the spec, which outlives the spawn.
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(*fd), FdFlags::empty())?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| SessionError::Spawn {
        program: program.to_string_lossy().into_owned(),
        cwd: spec.cwd.clone(),
        source,
    })?;
    // Our copies of the slave must go, or reading the master never reports the hang-up.
    drop(cmd);
    drop(slave);
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
