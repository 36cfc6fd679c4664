//! `pty` puts a process on a fresh PTY as the leader of its own session, with that PTY as its
//! controlling terminal (design §7: job control and Ctrl-C must work, so cages run without
//! bwrap's `--new-session`), and decides which descriptors cross exec: stdio and the ones
//! named, nothing else. Sessions, the cage tests and the bench all start PTY processes here,
//! so there is one PTY setup and one fd-closing rule. The one other thing a child does before
//! exec, joining its cage's cgroup ([`join_cgroup`]), lives here for the same reason.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use rustix::fs::OFlags;
use rustix::pty::OpenptFlags;
use rustix::termios::{self, InputModes, OptionalActions, Winsize};

/// A master and slave pair. Prepare a command with [`Pty::prepare`], spawn it, then keep only
/// [`Pty::into_master`]: a copy of the slave left open in the parent means reading the master
/// never reports the hang-up.
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

pub fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Sets the terminal size; the kernel sends SIGWINCH to the foreground process group.
pub fn set_size(master: BorrowedFd<'_>, cols: u16, rows: u16) -> io::Result<()> {
    Ok(termios::tcsetwinsize(master, winsize(cols, rows))?)
}

impl Pty {
    /// Opens a pair of `cols`×`rows`, both ends close-on-exec.
    pub fn open(cols: u16, rows: u16) -> io::Result<Pty> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        // TIOCGPTPEER opens the peer without a path lookup (no race on /dev/pts); fall back to
        // the name on kernels older than 4.13.
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
        Ok(Pty { master, slave })
    }

    /// A pair opened elsewhere and inherited: a session's holder gets both ends from the
    /// daemon that opened them (see `kaged-session`'s holder).
    pub fn from_fds(master: OwnedFd, slave: OwnedFd) -> Pty {
        Pty { master, slave }
    }

    pub fn slave(&self) -> BorrowedFd<'_> {
        self.slave.as_fd()
    }

    /// Splits the pair: a parent that keeps the master and hands the slave on.
    pub fn into_fds(self) -> (OwnedFd, OwnedFd) {
        (self.master, self.slave)
    }

    /// Makes `cmd` run on this PTY: stdio is the slave, and in the child, before exec, it
    /// becomes a session leader with the slave as controlling terminal (so its pid is also its
    /// process group id) and only stdio and `keep` (sorted, all above 2) stay open.
    pub fn prepare(&self, cmd: &mut Command, keep: &[RawFd]) -> io::Result<()> {
        let stdio = || self.slave.try_clone().map(Stdio::from);
        cmd.stdin(stdio()?).stdout(stdio()?).stderr(stdio()?);
        let keep = keep.to_vec();
        // SAFETY: the closure runs in the forked child before exec and only makes raw
        // syscalls (setsid, ioctl, fcntl, close_range, getrlimit): no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::setsid()?;
                // SAFETY: fd 0 is the PTY slave, set up by the stdio redirection before this.
                rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
                inherit_only(&keep)
            });
        }
        Ok(())
    }

    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// The master alone, once the child runs.
    pub fn into_master(self) -> OwnedFd {
        self.master
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open for writing as
/// `procs` (cgroup v2: writing `0` means "the writer"), so that what it execs, and everything
/// that starts, is inside from its first instruction. Call it in the child between fork and
/// exec; it is one write(2), so it is async-signal-safe.
pub fn join_cgroup(procs: RawFd) -> io::Result<()> {
    // SAFETY: write(2) from a static one-byte buffer; a bad descriptor just reports EBADF.
    let written = unsafe { libc::write(procs, b"0".as_ptr().cast(), 1) };
    match written {
        1 => Ok(()),
        -1 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::from_raw_os_error(libc::EIO)),
    }
}

/// Makes exactly `fds` (sorted ascending, all above 2) and stdio survive exec: every other
/// descriptor is marked close-on-exec, so nothing the daemon inherited or opened without
/// `O_CLOEXEC` (a listening socket, the database) leaks into a cage. Call it in the child
/// between fork and exec; it only makes syscalls, so it is async-signal-safe.
pub fn inherit_only(fds: &[RawFd]) -> io::Result<()> {
    let mut next: u32 = 3;
    for &fd in fds {
        let fd_u = u32::try_from(fd)
            .ok()
            .filter(|&f| f >= next)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        if fd_u > next {
            cloexec_range(next, fd_u - 1)?;
        }
        // SAFETY: fcntl on a descriptor number has no memory-safety preconditions.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        next = fd_u + 1;
    }
    cloexec_range(next, u32::MAX)
}

fn cloexec_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range(2) takes plain integers; with CLOSE_RANGE_CLOEXEC it closes nothing.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            last,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11: one by one, up to the descriptor limit.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let end = u32::try_from(limit.rlim_cur)
        .unwrap_or(u32::MAX)
        .min(last.saturating_add(1));
    for fd in first..end {
        let Ok(fd) = RawFd::try_from(fd) else { break };
        // SAFETY: as above; a closed descriptor just reports EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags != -1 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Read;
    use std::os::fd::AsRawFd;

    use super::*;

    fn output_of(mut cmd: Command, keep: &[RawFd]) -> String {
        let pty = Pty::open(80, 24).unwrap();
        pty.prepare(&mut cmd, keep).unwrap();
        let mut child = cmd.spawn().unwrap();
        drop(cmd);
        let mut master = std::fs::File::from(pty.into_master());
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // EIO: every slave is closed.
                Err(_) => break,
            }
        }
        child.wait().unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn the_child_leads_its_session_on_its_own_terminal() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ps -o sid= -o pgid= -o pid= -p $$; stty size; tty"]);
        let out = output_of(cmd, &[]);
        let mut ids = out.split_whitespace();
        let (sid, pgid, pid) = (ids.next(), ids.next(), ids.next());
        assert!(sid.is_some() && sid == pgid && pgid == pid, "{out}");
        assert!(out.contains("24 80"), "{out}");
        assert!(out.contains("/dev/pts/"), "{out}");
    }

    #[test]
    fn joining_a_cgroup_writes_zero_meaning_the_writer() {
        // A plain file stands in for `cgroup.procs`: the kernel reads the same one byte.
        let procs = tempfile::NamedTempFile::new().unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(procs.path())
            .unwrap();
        join_cgroup(file.as_raw_fd()).unwrap();
        assert_eq!(std::fs::read_to_string(procs.path()).unwrap(), "0");
        drop(file);
        let err = join_cgroup(-1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn only_named_descriptors_cross_exec() {
        // Opened without O_CLOEXEC on purpose: the rule must close what the daemon leaked.
        let leaked = tempfile::tempfile().unwrap();
        let kept = tempfile::tempfile().unwrap();
        let (leaked_fd, kept_fd) = (leaked.as_raw_fd(), kept.as_raw_fd());
        for f in [&leaked, &kept] {
            // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
            unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, 0) };
        }
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("ls /proc/self/fd/{leaked_fd} /proc/self/fd/{kept_fd} 2>&1"),
        ]);
        let out = output_of(cmd, &[kept_fd]);
        assert!(
            out.contains(&format!("/proc/self/fd/{kept_fd}\r\n"))
                || out.contains(&format!("/proc/self/fd/{kept_fd}\n")),
            "{out}"
        );
        assert!(out.contains("No such file"), "{out}");
    }
}
