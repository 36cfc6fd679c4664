//! The physical limit: a process on a PTY read with plain blocking `read` calls until EIO, no
//! network, no daemon. Whatever kaged adds on top is measured against this.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::event::{PollFd, PollFlags, Timespec};

/// A child on a fresh PTY, as the leader of its own session with that PTY as its controlling
/// terminal: the same shape kaged gives a session, minus everything else.
pub struct RawPty {
    master: File,
    child: Child,
}

pub const COLS: u16 = 200;
pub const ROWS: u16 = 50;

impl RawPty {
    pub fn spawn<S: AsRef<OsStr>>(
        argv: &[S],
        env: &[(String, String)],
        cwd: &Path,
    ) -> Result<RawPty> {
        let Some((program, args)) = argv.split_first() else {
            bail!("empty argv for the raw PTY");
        };
        let pty = kaged_pty::Pty::open(COLS, ROWS).context("opening a PTY")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd);
        pty.prepare(&mut cmd, &[])
            .context("preparing the PTY child")?;
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {:?}", program.as_ref()))?;
        // The command holds copies of the slave; they must go, or the master never reports
        // the hang-up.
        drop(cmd);
        let master = pty.into_master();
        Ok(RawPty {
            master: File::from(master),
            child,
        })
    }

    /// One blocking read. The end of output (every slave closed: EIO) is `Ok(0)`.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.master.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Ok(0);
                }
                Err(e) => return Err(e).context("reading the PTY master"),
            }
        }
    }

    /// A read that gives up after `timeout`; `None` means nothing arrived.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        if !readable(self.master.as_fd(), timeout)? {
            return Ok(None);
        }
        self.read(buf).map(Some)
    }

    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.master
            .write_all(data)
            .context("writing to the PTY master")
    }

    /// Reads until nothing arrives for `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(n) = self.read_timeout(&mut buf, quiet)? {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    /// Waits for the first output byte (a prompt) and returns when it came.
    pub fn first_byte(&mut self, timeout: Duration) -> Result<Instant> {
        let mut buf = [0u8; 4096];
        match self.read_timeout(&mut buf, timeout)? {
            Some(n) if n > 0 => Ok(Instant::now()),
            Some(_) => bail!("the process on the raw PTY exited before printing anything"),
            None => bail!("no output on the raw PTY within {timeout:?}"),
        }
    }
}

impl Drop for RawPty {
    fn drop(&mut self) {
        // The child leads its own process group; end all of it.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool> {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    loop {
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("poll on the PTY master"),
        }
    }
}
