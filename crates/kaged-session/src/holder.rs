//! Holders: what keeps a session alive while no daemon runs (design §6, durable sessions).
//!
//! A holder is the `kaged` binary in a hidden helper mode (`kaged holder`), one per session.
//! The daemon starts it in a session of its own (`setsid`), outside the daemon's process
//! group, and hands it both ends of the session's PTY, the descriptors the cage inherits and
//! the spec on stdin. The holder:
//! - starts the session's process on the PTY (it is its parent, so it reaps it) and closes
//!   its copy of the slave, so the master still reports the hang-up;
//! - keeps a copy of the master and hands it, with `SCM_RIGHTS`, to whichever daemon connects
//!   to its socket in the 0700 runtime dir, after checking the peer's uid (`SO_PEERCRED`);
//! - records the exit status in `<session dir>/exit.json` (atomically), tells the connected
//!   daemon, and exits. With no daemon connected it first appends what the PTY still buffers
//!   to the transcript, so an end while no daemon runs loses no byte either.
//!
//! It never reads the PTY while a daemon is connected: the hot path stays one reader, in the
//! daemon. It is single-threaded, std only, and does nothing the daemon could not redo, so
//! a newer daemon adopts an older binary's holders as long as it speaks their [`PROTOCOL`].

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use kaged_api::Timestamp;
use rustix::event::{PollFd, PollFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

use crate::persist::{self, TRANSCRIPT};

/// The holder protocol's version. A daemon adopts holders whose hello names a version it
/// speaks; bump it only for a change an older daemon would misread, and keep speaking the old
/// one so that an upgrade adopts the holders of the binary it replaces.
pub const PROTOCOL: u32 = 1;

/// Where the holder records how the session's process ended.
pub(crate) const EXIT_FILE: &str = "exit.json";

/// A hello or an exit is a few hundred bytes; anything longer is not ours.
const MAX_MESSAGE: usize = 4096;

/// How long a daemon waits for a holder's hello before giving up on it.
const HELLO_PATIENCE: Duration = Duration::from_secs(15);

/// How long a holder whose process already ended waits for the daemon that started it to take
/// the master; after that it keeps the output in the transcript itself.
const FIRST_DAEMON_PATIENCE: Duration = Duration::from_secs(10);

/// What the daemon hands a new holder on its stdin. Descriptor numbers are the holder's (the
/// daemon passes them at the same numbers).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HolderSpec {
    pub(crate) v: u32,
    pub(crate) session: String,
    pub(crate) session_dir: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) argv: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) cwd: PathBuf,
    pub(crate) master: RawFd,
    pub(crate) slave: RawFd,
    pub(crate) keep: Vec<RawFd>,
    pub(crate) cgroup_procs: Option<RawFd>,
    /// When the session's walltime runs out (ms since the epoch), echoed in every hello so
    /// that an adopting daemon keeps enforcing it.
    pub(crate) deadline_ms: Option<u64>,
}

/// The holder's one line on stdout once it started the process (or could not).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Started {
    Ok { child_pid: u32 },
    Err { message: String },
}

/// Holder → daemon, one message per packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Message {
    /// Sent on every accepted connection, with the PTY master attached.
    Hello {
        v: u32,
        session: String,
        holder_pid: u32,
        child_pid: u32,
        deadline_ms: Option<u64>,
    },
    /// The process ended; `exit.json` is written. The holder exits next.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Another daemon holds this session (two daemons on one state dir is refused by the
    /// state lock, so this means the other one is still going away).
    Busy,
}

/// `exit.json`: the holder's record of the end, for a daemon that was not there to hear it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    pub(crate) v: u32,
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) ended_at: Timestamp,
    /// Bytes the holder appended to the transcript from the PTY buffer (no daemon was there).
    pub(crate) drained: u64,
}

/// `kaged holder`: runs one session's holder. The spec comes on stdin (a pipe the daemon
/// closes), the outcome of starting the process goes to stdout as one line. Returns the exit
/// code of the holder itself.
pub fn run() -> i32 {
    // The daemon that started us may go away at any time: its pipes must not kill us.
    // SAFETY: single-threaded at this point, and SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let mut raw = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut raw) {
        report(&Started::Err {
            message: format!("reading the holder spec from stdin: {e}"),
        });
        return 2;
    }
    let spec: HolderSpec = match serde_json::from_slice(&raw) {
        Ok(spec) => spec,
        Err(e) => {
            report(&Started::Err {
                message: format!("the holder spec does not parse: {e}"),
            });
            return 2;
        }
    };
    if spec.v != PROTOCOL {
        report(&Started::Err {
            message: format!(
                "this holder speaks protocol {PROTOCOL}, the daemon sent {}",
                spec.v
            ),
        });
        return 2;
    }
    let holder = match Holder::start(spec) {
        Ok(holder) => holder,
        Err(message) => {
            report(&Started::Err { message });
            return 1;
        }
    };
    report(&Started::Ok {
        child_pid: holder.child.id(),
    });
    // Nothing more goes to the daemon's pipes; stdio now points at /dev/null.
    detach_stdio();
    holder.serve()
}

fn report(started: &Started) {
    let mut line = serde_json::to_vec(started).unwrap_or_default();
    line.push(b'\n');
    let mut out = io::stdout().lock();
    let _ = out.write_all(&line).and_then(|()| out.flush());
}

fn detach_stdio() {
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which we own.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

struct Holder {
    spec: HolderSpec,
    child: Child,
    pidfd: OwnedFd,
    master: OwnedFd,
    listener: OwnedFd,
    /// The daemon currently holding the session, if one is connected.
    daemon: Option<OwnedFd>,
    /// Whether any daemon has had the master yet.
    handed_over: bool,
}

impl Holder {
    fn start(spec: HolderSpec) -> Result<Holder, String> {
        // SAFETY: the daemon passed these descriptors at these numbers, open, for us alone.
        let take = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
        let master = take(spec.master);
        let slave = take(spec.slave);
        let cgroup = spec.cgroup_procs.map(take);
        let keep: Vec<OwnedFd> = spec.keep.iter().map(|&fd| take(fd)).collect();
        for fd in [Some(&master), Some(&slave), cgroup.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
        }
        let Some((program, args)) = spec.argv.split_first() else {
            return Err("the argv is empty".to_owned());
        };
        let pty = kaged_pty::Pty::from_fds(master, slave);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd);
        let procs = cgroup.as_ref().map(AsRawFd::as_raw_fd);
        // SAFETY: the closure makes raw syscalls only (write, prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if let Some(procs) = procs {
                    kaged_pty::join_cgroup(procs)?;
                }
                // Should the holder die (killed), its process goes too, instead of running on
                // with nobody left to reap it or hand its terminal to a daemon.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let keep_raw: Vec<RawFd> = {
            let mut k: Vec<RawFd> = keep.iter().map(AsRawFd::as_raw_fd).collect();
            k.sort_unstable();
            k
        };
        pty.prepare(&mut cmd, &keep_raw)
            .map_err(|e| format!("preparing the PTY: {e}"))?;
        // The daemon's error names the program and the directory; this is the reason.
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        // The command holds copies of the slave; they and ours must go, or the master never
        // reports the hang-up.
        drop(cmd);
        drop((keep, cgroup));
        let (master, slave) = pty.into_fds();
        drop(slave);
        let pid = rustix::process::Pid::from_raw(child.id() as i32)
            .ok_or_else(|| "the child has no pid".to_owned())?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|e| format!("pidfd_open({pid}): {e}"))?;
        let listener = listen(&spec.socket)?;
        Ok(Holder {
            spec,
            child,
            pidfd,
            master,
            listener,
            daemon: None,
            handed_over: false,
        })
    }

    fn serve(mut self) -> i32 {
        loop {
            let mut fds = vec![
                PollFd::new(&self.pidfd, PollFlags::IN),
                PollFd::new(&self.listener, PollFlags::IN),
            ];
            if let Some(daemon) = &self.daemon {
                fds.push(PollFd::new(daemon, PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return 1,
            }
            let child_done = !fds[0].revents().is_empty();
            let incoming = !fds[1].revents().is_empty();
            let daemon_event = fds.get(2).is_some_and(|f| !f.revents().is_empty());
            drop(fds);
            // A daemon that went away first, so that its successor, already queued on the
            // listener, is not turned away as busy.
            if daemon_event && let Some(daemon) = &self.daemon {
                let mut buf = [0u8; MAX_MESSAGE];
                match rustix::net::recv(daemon, &mut buf, RecvFlags::DONTWAIT) {
                    // Daemons send nothing yet; EOF or an error means it is gone.
                    Ok((0, _)) | Err(_) => self.daemon = None,
                    Ok(_) => {}
                }
            }
            if child_done {
                if !self.handed_over {
                    self.await_first_daemon();
                }
                return self.finish();
            }
            if incoming {
                self.accept();
            }
        }
    }

    fn accept(&mut self) {
        let Ok(conn) = rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC) else {
            return;
        };
        let same_user = rustix::net::sockopt::socket_peercred(&conn)
            .is_ok_and(|cred| cred.uid == rustix::process::getuid());
        if !same_user {
            return;
        }
        if self.daemon.is_some() {
            let _ = send(&conn, &Message::Busy, None);
            return;
        }
        let hello = Message::Hello {
            v: PROTOCOL,
            session: self.spec.session.clone(),
            holder_pid: std::process::id(),
            child_pid: self.child.id(),
            deadline_ms: self.spec.deadline_ms,
        };
        if send(&conn, &hello, Some(self.master.as_fd())).is_ok() {
            self.daemon = Some(conn);
            self.handed_over = true;
        }
    }

    /// The daemon that started us connects right after reading our `Started` line. A process
    /// that ended before that (`sh -c 'echo hi'` on a busy host) must still reach it: the
    /// daemon takes the master, reads the output from it, and then hears of the exit.
    fn await_first_daemon(&mut self) {
        let until = std::time::Instant::now() + FIRST_DAEMON_PATIENCE;
        while !self.handed_over {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let timeout = rustix::event::Timespec::try_from(left).ok();
            let mut fds = [PollFd::new(&self.listener, PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(0) => return,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            self.accept();
        }
    }

    /// Reaps the process, keeps what it left in the PTY when no daemon will read it, records
    /// the end, tells the daemon, and removes the socket.
    fn finish(mut self) -> i32 {
        let status = self.child.wait();
        let (code, signal) = match &status {
            Ok(st) => (st.code(), st.signal()),
            Err(_) => (None, None),
        };
        let drained = match self.daemon {
            Some(_) => 0,
            None => drain_to_transcript(&self.master, &self.spec.session_dir.join(TRANSCRIPT)),
        };
        let record = ExitRecord {
            v: PROTOCOL,
            code,
            signal,
            ended_at: Timestamp::now(),
            drained,
        };
        let _ = write_exit_record(&self.spec.session_dir, &record);
        if let Some(daemon) = &self.daemon {
            let _ = send(daemon, &Message::Exited { code, signal }, None);
        }
        let _ = std::fs::remove_file(&self.spec.socket);
        0
    }
}

fn listen(path: &Path) -> Result<OwnedFd, String> {
    let addr = SocketAddrUnix::new(path).map_err(|e| {
        format!(
            "{} cannot be a socket path ({e}; at most 107 bytes): use a shorter runtime dir",
            path.display()
        )
    })?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket(): {e}"))?;
    // A leftover from a holder of the same id cannot exist (ids are random), but a stale file
    // would make bind fail for no good reason.
    let _ = std::fs::remove_file(path);
    rustix::net::bind(&fd, &addr).map_err(|e| format!("binding {}: {e}", path.display()))?;
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(0o600))
        .map_err(|e| format!("chmod 0600 {}: {e}", path.display()))?;
    rustix::net::listen(&fd, 8).map_err(|e| format!("listening on {}: {e}", path.display()))?;
    Ok(fd)
}

/// Reads what the PTY still buffers (nobody else will) and appends it to the transcript.
fn drain_to_transcript(master: &OwnedFd, transcript: &Path) -> u64 {
    let flags = rustix::fs::fcntl_getfl(master).unwrap_or(rustix::fs::OFlags::empty());
    let _ = rustix::fs::fcntl_setfl(master, flags | rustix::fs::OFlags::NONBLOCK);
    let Ok(mut file) = persist::open_transcript_append(transcript) else {
        return 0;
    };
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        match rustix::io::read(master, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if file.write_all(&buf[..n]).is_err() {
                    break;
                }
                total += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            // EAGAIN: empty; EIO: every slave is closed and the buffer is read.
            Err(_) => break,
        }
    }
    let _ = file.sync_data();
    total
}

fn write_exit_record(dir: &Path, record: &ExitRecord) -> io::Result<()> {
    let tmp = dir.join(".exit.json.tmp");
    let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(EXIT_FILE))?;
    File::open(dir)?.sync_all()
}

/// The holder's record of the end, if it wrote one.
pub(crate) fn read_exit_record(dir: &Path) -> Option<ExitRecord> {
    let raw = std::fs::read(dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice(&raw).ok()
}

fn send(conn: &OwnedFd, msg: &Message, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    rustix::net::sendmsg(
        conn,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// One packet, with a descriptor if one came along. `Ok(None)`: the peer closed.
fn recv(conn: &OwnedFd, flags: RecvFlags) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        conn,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        flags | RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for received in fds {
                fd.get_or_insert(received);
            }
        }
    }
    if got.bytes == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..got.bytes.min(MAX_MESSAGE)])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((msg, fd)))
}

/// Why a daemon could not take a session over from its holder.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// Nobody listens: the holder is gone (its socket is missing or refuses).
    Gone(io::Error),
    /// A holder answered, but not so that the daemon can adopt the session.
    Refused(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Gone(e) => write!(f, "no holder listens ({e})"),
            ConnectError::Refused(why) => write!(f, "the holder refused: {why}"),
        }
    }
}

/// The daemon's end of a holder's socket.
#[derive(Debug)]
pub(crate) struct Link {
    conn: OwnedFd,
}

/// What a holder said when a daemon connected.
#[derive(Debug)]
pub(crate) struct Hello {
    pub(crate) child_pid: u32,
    pub(crate) deadline_ms: Option<u64>,
}

/// How the holder ended the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEnd {
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// The holder went away without a word: killed.
    Lost,
}

impl Link {
    /// Connects to the holder at `socket`, checks that it runs as our uid and speaks our
    /// protocol, and takes the session's PTY master from it.
    pub(crate) fn connect(
        socket: &Path,
        session: &str,
    ) -> Result<(Link, Hello, OwnedFd), ConnectError> {
        let addr = SocketAddrUnix::new(socket).map_err(|e| ConnectError::Gone(e.into()))?;
        let conn = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| ConnectError::Refused(format!("socket(): {e}")))?;
        rustix::net::connect(&conn, &addr).map_err(|e| ConnectError::Gone(e.into()))?;
        let peer = rustix::net::sockopt::socket_peercred(&conn)
            .map_err(|e| ConnectError::Refused(format!("SO_PEERCRED: {e}")))?;
        if peer.uid != rustix::process::getuid() {
            return Err(ConnectError::Refused(format!(
                "{} is served by uid {}, not ours",
                socket.display(),
                peer.uid.as_raw()
            )));
        }
        let _ = rustix::net::sockopt::set_socket_timeout(
            &conn,
            rustix::net::sockopt::Timeout::Recv,
            Some(HELLO_PATIENCE),
        );
        let refused = |what: String| ConnectError::Refused(what);
        match recv(&conn, RecvFlags::empty()) {
            Ok(Some((
                Message::Hello {
                    v,
                    session: said,
                    child_pid,
                    deadline_ms,
                    ..
                },
                Some(master),
            ))) => {
                if v != PROTOCOL {
                    return Err(refused(format!(
                        "the holder speaks protocol {v}; this daemon speaks {PROTOCOL}"
                    )));
                }
                if said != session {
                    return Err(refused(format!("the holder serves session {said}")));
                }
                let _ = rustix::net::sockopt::set_socket_timeout(
                    &conn,
                    rustix::net::sockopt::Timeout::Recv,
                    None,
                );
                Ok((
                    Link { conn },
                    Hello {
                        child_pid,
                        deadline_ms,
                    },
                    master,
                ))
            }
            Ok(Some((Message::Busy, _))) => {
                Err(refused("another daemon still holds it".to_owned()))
            }
            // The process ended while we connected: the holder is about to exit and has
            // written (or is writing) its record.
            Ok(Some((Message::Exited { .. }, _))) | Ok(None) => Err(ConnectError::Gone(
                io::Error::from(io::ErrorKind::ConnectionReset),
            )),
            Ok(Some((other, _))) => Err(refused(format!("unexpected first message {other:?}"))),
            Err(e) => Err(refused(format!("no hello: {e}"))),
        }
    }

    /// Waits until the holder reports the end (or dies). Cancel-safe.
    pub(crate) async fn ended(self) -> LinkEnd {
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which closes it only on drop.
        let Ok(conn) = (unsafe { tokio::io::unix::AsyncFd::register(self.conn) }) else {
            return LinkEnd::Lost;
        };
        loop {
            let Ok(mut guard) = conn.readable().await else {
                return LinkEnd::Lost;
            };
            match guard.try_io(|fd| recv(fd.get_ref(), RecvFlags::DONTWAIT)) {
                Ok(Ok(Some((Message::Exited { code, signal }, _)))) => {
                    return LinkEnd::Exited { code, signal };
                }
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return LinkEnd::Lost,
                Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {}
                Ok(Err(_)) => return LinkEnd::Lost,
                Err(_would_block) => {}
            }
        }
    }
}
