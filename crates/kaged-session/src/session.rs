//! One session: its PTY reader, transcript writer, supervisor and viewers.

use std::cell::RefCell;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kaged_api::Timestamp;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rustix::io::Errno;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::holder::{self, LinkEnd};
use crate::persist::{self, TRANSCRIPT};
use crate::pty::Leader;
use crate::ring::{Ring, RingRead};
use crate::screen::{Screen, Snapshot};
use crate::{EndReason, HolderConfig, SessionError, SessionInfo, SessionOrigin, SessionState, pty};

/// Upper bound of one coalesced read: whatever is readable right now, up to this, becomes one
/// chunk (and usually one WebSocket frame).
pub(crate) const READ_COALESCE_MAX: usize = 128 << 10;
/// Upper bound of one `Data` event handed to a viewer that is behind.
const VIEWER_FRAME_MAX: usize = 256 << 10;
/// A reader that sees this much unwritten wakes the transcript writer even if it was already
/// woken (it writes whatever is pending at once; see `transcript_writer`).
const TRANSCRIPT_BATCH: u64 = 64 << 10;
/// At most this much goes into one `writev`.
const TRANSCRIPT_WRITE_MAX: usize = 1 << 20;
/// The screen model is fed once this much output waits for it (at most half the ring), or
/// when a viewer needs the screen. Large batches keep the model off the hot path: in one
/// batch, plain text that scrolls away is skipped (see `screen.rs`), so the larger the batch
/// the less of it is drawn.
const SCREEN_BATCH: u64 = 2 << 20;
/// At most this much is fed to the model in one go.
const SCREEN_FEED_MAX: usize = 4 << 20;
/// A model neither fed nor read for this long is compacted to its dump.
const SCREEN_IDLE: Duration = Duration::from_secs(2);
/// After the process exits, how long to keep reading output that is still buffered or written
/// by leftovers holding the PTY open, before hanging the PTY up.
const DRAIN_GRACE: Duration = Duration::from_millis(1000);

thread_local! {
    /// The read buffer is per worker thread, not per session: an idle session then holds no
    /// read buffer at all (an idle attached session costs kilobytes), and a busy one reads
    /// straight into warm memory.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug)]
struct Status {
    state: SessionState,
    pid: Option<u32>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    end_reason: Option<EndReason>,
    ended_at: Option<Timestamp>,
    cols: u16,
    rows: u16,
    transcript_complete: bool,
}

/// A session, live or past. Past sessions (loaded from disk) answer `info` and `attach` from
/// their transcript; controlling them returns [`SessionError::NotRunning`].
#[derive(Debug)]
pub struct Session {
    id: String,
    dir: PathBuf,
    project_id: String,
    actor: String,
    argv: Vec<String>,
    origin: SessionOrigin,
    started_at: Timestamp,
    adopted_at: Option<Timestamp>,
    status: Mutex<Status>,
    ring: Mutex<Ring>,
    /// The terminal model (live sessions only). Lock order: `screen`, then `ring`.
    screen: Option<Mutex<Screen>>,
    /// Wakes the screen keeper: a batch is ready, or the model was used.
    screen_notify: Notify,
    /// Viewers that want to set the size, most recently active last (see [`Viewer::set_size`]).
    sizes: Mutex<Sizes>,
    /// New bytes, a new size or the exit: wakes viewers.
    data_notify: Notify,
    /// Wakes the transcript writer.
    writer_notify: Notify,
    /// The writer made progress: wakes a reader throttled by unpersisted bytes.
    persisted_notify: Notify,
    reader_done: AtomicBool,
    master: Mutex<Option<Arc<AsyncFd<OwnedFd>>>>,
    /// Serialises input so two viewers typing at once never interleave partial writes, and
    /// holds each client's last applied sequence number (sequenced input is idempotent).
    input_lock: tokio::sync::Mutex<InputLog>,
    pgid: Option<Pid>,
    leader_exited: watch::Sender<bool>,
    done: watch::Sender<bool>,
    terminating: AtomicBool,
    kill_grace: Duration,
    /// Set when the daemon leaves the session to its holder (a graceful stop that keeps
    /// sessions): the supervisor then flushes and lets go instead of waiting for the end.
    detaching: AtomicBool,
    detach_notify: Notify,
}

/// What became of one sequenced input frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOutcome {
    /// Written to the PTY.
    Written,
    /// Already written earlier (a resend); nothing was written this time.
    Duplicate,
    /// The frame skipped `expected`; nothing was written.
    OutOfOrder { expected: u64 },
}

/// How many clients' sequence numbers a session remembers. A client is one browser tab or
/// CLI attach; past this the least recently used is forgotten (it then starts again at 1).
const INPUT_CLIENTS: usize = 64;

/// Last applied input sequence number per client, most recently used last. Empty (and
/// allocation-free) until someone sends sequenced input.
#[derive(Debug, Default)]
struct InputLog {
    clients: Vec<(String, u64)>,
}

impl InputLog {
    fn last(&self, client: &str) -> u64 {
        self.clients
            .iter()
            .find(|(c, _)| c == client)
            .map_or(0, |(_, seq)| *seq)
    }

    fn applied(&mut self, client: &str, seq: u64) {
        if let Some(i) = self.clients.iter().position(|(c, _)| c == client) {
            self.clients.remove(i);
        } else if self.clients.len() >= INPUT_CLIENTS {
            self.clients.remove(0);
        }
        self.clients.push((client.to_owned(), seq));
    }
}

/// The size rule (one PTY, one size): the viewer that was active last (attached with a size,
/// typed, or sent its size) sets the PTY's size; when it leaves, the one active before it
/// takes over. Every other viewer is told the size and shows the reflowed screen.
#[derive(Debug, Default)]
struct Sizes {
    next_id: u64,
    /// `(viewer id, cols, rows)`, most recently active last.
    viewers: Vec<(u64, u16, u16)>,
}

/// What a viewer receives, in order. `Exit` comes once, after the last byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerEvent {
    /// Output bytes starting at `offset`.
    Data { offset: u64, bytes: Bytes },
    /// The whole screen at `snapshot.offset`; the next `Data` starts there. Comes first for
    /// a viewer attached with [`Session::attach_screen`], and after each `Gap` it suffers.
    Screen(Snapshot),
    /// The PTY's size changed (a screen viewer only).
    Size { cols: u16, rows: u16 },
    /// Bytes `from..to` are no longer held (the viewer was too slow, or asked for an offset
    /// older than the scrollback); the next `Data` starts at `to`.
    Gap { from: u64, to: u64 },
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// A cursor into a session's output. Dropping it detaches; nothing else needs cleaning up.
#[derive(Debug)]
pub struct Viewer {
    session: Arc<Session>,
    cursor: u64,
    exit_sent: bool,
    /// Whether a gap is followed by the screen, and size changes are reported.
    screens: bool,
    /// An event due before the next read of the ring.
    pending: Option<ViewerEvent>,
    /// The size this viewer last heard of.
    size_seen: (u16, u16),
    /// This viewer's entry in the size rule, once it said its size.
    size_id: Option<u64>,
}

/// What only a running session has.
struct Live {
    master: Arc<AsyncFd<OwnedFd>>,
    kill_grace: Duration,
}

pub(crate) struct NewSession<'a> {
    pub(crate) id: String,
    pub(crate) dir: PathBuf,
    pub(crate) scrollback_bytes: usize,
    pub(crate) kill_grace: Duration,
    pub(crate) spawner: &'a pty::Spawner,
    pub(crate) holder: Option<&'a HolderConfig>,
}

/// A running session a holder kept while no daemon ran, as a new daemon takes it over.
pub(crate) struct Adoption {
    pub(crate) info: SessionInfo,
    pub(crate) dir: PathBuf,
    pub(crate) scrollback_bytes: usize,
    pub(crate) kill_grace: Duration,
    pub(crate) link: holder::Link,
    pub(crate) hello: holder::Hello,
    pub(crate) master: OwnedFd,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every critical section
    // is a few assignments), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Session {
    /// Starts the process and the session's tasks. Called with the manager's lock held, so
    /// that limits are checked and the slot taken atomically.
    pub(crate) fn start(
        new: NewSession<'_>,
        spec: crate::SpawnSpec,
    ) -> Result<Arc<Session>, SessionError> {
        let argv: Vec<String> = spec
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if argv.is_empty() {
            return Err(SessionError::EmptyArgv);
        }
        kaged_deploy::ensure_private_dir(&new.dir)?;
        let transcript = new.dir.join(TRANSCRIPT);
        persist::create_transcript(&transcript)?;
        let mut info = SessionInfo {
            id: new.id.clone(),
            project_id: spec.project_id.clone(),
            actor: spec.actor.clone(),
            argv: argv.clone(),
            state: SessionState::Starting,
            pid: None,
            exit_code: None,
            signal: None,
            end_reason: None,
            started_at: Timestamp::now(),
            ended_at: None,
            cols: spec.cols,
            rows: spec.rows,
            bytes_total: 0,
            transcript_complete: true,
            origin: spec.origin.clone(),
            adopted_at: None,
            // Who may see it besides its owner is the daemon's business, not the broker's.
            shared_with: Default::default(),
            agent: None,
        };
        persist::write_meta(&new.dir, &info)?;

        let via = new.holder.map(|h| pty::ViaHolder {
            program: h.program.clone(),
            args: h.args.clone(),
            socket: h.socket(&new.id),
            session: new.id.clone(),
            session_dir: new.dir.clone(),
            deadline_ms: spec.walltime.map(|w| {
                let at = std::time::SystemTime::now() + w;
                at.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            }),
        });
        let (spawned, spec) = match new.spawner.spawn(spec, via) {
            Ok(done) => done,
            Err(e) => {
                // Nothing ran, so there is nothing to keep.
                if let Err(rm) = std::fs::remove_dir_all(&new.dir) {
                    tracing::warn!(dir = %new.dir.display(), error = %rm, "could not remove the directory of a session that failed to start");
                }
                return Err(e);
            }
        };
        drop((spec.keep_fds, spec.cgroup_procs));
        let mut leader = spawned.leader;
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which closes it only on drop.
        let master = match unsafe { AsyncFd::register(spawned.master) } {
            Ok(master) => Arc::new(master),
            Err(e) => {
                // Without a reader the session is useless; do not leave the process behind.
                match &mut leader {
                    Leader::Child(child) => {
                        let _ = child.start_kill();
                    }
                    Leader::Holder(_) => {
                        if let Ok(pid) = i32::try_from(spawned.pid) {
                            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                        }
                    }
                }
                return Err(SessionError::Pty(e.into()));
            }
        };
        info.state = SessionState::Running;
        info.pid = Some(spawned.pid);
        let mut ring = Ring::new(new.scrollback_bytes);
        ring.track_model();
        let live = Live {
            master: master.clone(),
            kill_grace: new.kill_grace,
        };
        let session = Arc::new(Session::build(info.clone(), new.dir, ring, Some(live)));
        if let Err(e) = persist::write_meta(&session.dir, &info) {
            tracing::warn!(session = %session.id, error = %e, "could not record the running session");
        }
        let pump = tokio::spawn(pump(session.clone(), master));
        let writer = tokio::spawn(transcript_writer(session.clone(), transcript));
        tokio::spawn(screen_keeper(session.clone()));
        tokio::spawn(supervise(
            session.clone(),
            leader,
            pump,
            writer,
            spec.walltime,
        ));
        Ok(session)
    }

    /// Takes over a session its holder kept: the ring is rebuilt from the transcript's tail
    /// (the transcript is what the last daemon wrote, so offsets carry on from its end), and
    /// reading resumes where the PTY buffer holds what the process wrote meanwhile.
    pub(crate) fn adopt(a: Adoption) -> Result<Arc<Session>, SessionError> {
        let Adoption {
            mut info,
            dir,
            scrollback_bytes,
            kill_grace,
            link,
            hello,
            master,
        } = a;
        let transcript = dir.join(TRANSCRIPT);
        let len = std::fs::metadata(&transcript).map_or(0, |m| m.len());
        let from = len.saturating_sub(scrollback_bytes as u64);
        let tail = read_at(&transcript, from, (len - from) as usize)?;
        let mut ring = Ring::resumed_at(from, scrollback_bytes);
        // In reader-sized pieces (zero-copy slices), as if the pump had read them.
        let mut at = 0;
        while at < tail.len() {
            let next = (at + READ_COALESCE_MAX).min(tail.len());
            ring.push(tail.slice(at..next));
            at = next;
        }
        ring.mark_persisted(ring.end());
        // The screen model is rebuilt from the same tail (see `build`): exact when the tail
        // holds the whole screen's making, as after a full redraw.
        ring.track_model();
        // The last daemon's record lags behind its transcript only when it died without
        // letting go: then what it had read but not yet written may be missing.
        if info.bytes_total != len {
            info.transcript_complete = false;
        }
        info.bytes_total = len;
        info.state = SessionState::Running;
        info.pid = Some(hello.child_pid);
        info.adopted_at = Some(Timestamp::now());
        let fd = master;
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| SessionError::Pty(e.into()))?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| SessionError::Pty(e.into()))?;
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which closes it only on drop.
        let master =
            Arc::new(unsafe { AsyncFd::register(fd) }.map_err(|e| SessionError::Pty(e.into()))?);
        let live = Live {
            master: master.clone(),
            kill_grace,
        };
        let session = Arc::new(Session::build(info.clone(), dir, ring, Some(live)));
        if let Err(e) = persist::write_meta(&session.dir, &info) {
            tracing::warn!(session = %session.id, error = %e, "could not record the adoption");
        }
        let walltime = hello.deadline_ms.map(|ms| {
            let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        let pump = tokio::spawn(pump(session.clone(), master));
        let writer = tokio::spawn(transcript_writer(session.clone(), transcript));
        tokio::spawn(screen_keeper(session.clone()));
        tokio::spawn(supervise(
            session.clone(),
            Leader::Holder(link),
            pump,
            writer,
            walltime,
        ));
        Ok(session)
    }

    /// A session from a previous daemon run, served from its transcript.
    pub(crate) fn past(info: SessionInfo, dir: PathBuf, scrollback_bytes: usize) -> Arc<Session> {
        let ring = Ring::released_at(info.bytes_total, scrollback_bytes);
        Arc::new(Session::build(info, dir, ring, None))
    }

    /// A live session (with its PTY) or a past one (without): the same shape either way.
    fn build(info: SessionInfo, dir: PathBuf, ring: Ring, live: Option<Live>) -> Session {
        let running = live.is_some();
        let pgid = info
            .pid
            .filter(|_| running)
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        let kill_grace = live.as_ref().map_or(Duration::ZERO, |l| l.kill_grace);
        // The model starts where the ring does: empty for a new session, the transcript's
        // tail for an adopted one.
        let screen = running.then(|| Mutex::new(Screen::new(info.cols, info.rows, ring.start())));
        Session {
            id: info.id,
            dir,
            project_id: info.project_id,
            actor: info.actor,
            argv: info.argv,
            origin: info.origin,
            started_at: info.started_at,
            adopted_at: info.adopted_at,
            status: Mutex::new(Status {
                state: info.state,
                pid: info.pid,
                exit_code: info.exit_code,
                signal: info.signal,
                end_reason: info.end_reason,
                ended_at: info.ended_at,
                cols: info.cols,
                rows: info.rows,
                transcript_complete: info.transcript_complete,
            }),
            ring: Mutex::new(ring),
            screen,
            screen_notify: Notify::new(),
            sizes: Mutex::new(Sizes::default()),
            data_notify: Notify::new(),
            writer_notify: Notify::new(),
            persisted_notify: Notify::new(),
            reader_done: AtomicBool::new(!running),
            master: Mutex::new(live.map(|l| l.master)),
            input_lock: tokio::sync::Mutex::new(InputLog::default()),
            pgid,
            leader_exited: watch::Sender::new(!running),
            done: watch::Sender::new(!running),
            terminating: AtomicBool::new(!running),
            kill_grace,
            detaching: AtomicBool::new(false),
            detach_notify: Notify::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn state(&self) -> SessionState {
        lock(&self.status).state
    }

    pub fn info(&self) -> SessionInfo {
        let bytes_total = lock(&self.ring).end();
        let st = lock(&self.status);
        SessionInfo {
            id: self.id.clone(),
            project_id: self.project_id.clone(),
            actor: self.actor.clone(),
            argv: self.argv.clone(),
            state: st.state,
            pid: st.pid,
            exit_code: st.exit_code,
            signal: st.signal,
            end_reason: st.end_reason,
            started_at: self.started_at,
            ended_at: st.ended_at,
            cols: st.cols,
            rows: st.rows,
            bytes_total,
            transcript_complete: st.transcript_complete,
            origin: self.origin.clone(),
            adopted_at: self.adopted_at,
            shared_with: Default::default(),
            agent: None,
        }
    }

    /// Whether a restarted daemon took this session over from its holder.
    pub fn is_adopted(&self) -> bool {
        self.adopted_at.is_some()
    }

    /// Leaves a running session to its holder: reading stops, the transcript is flushed and
    /// recorded, the daemon's PTY master and link are closed. Returns once that is done. The
    /// process runs on; the next daemon adopts it. No-op for a session that has exited.
    pub(crate) async fn detach(&self) {
        self.detaching.store(true, Ordering::SeqCst);
        self.detach_notify.notify_one();
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// True once the daemon let go of the session (see [`Session::detach`]); its state then
    /// stays running.
    pub fn is_detached(&self) -> bool {
        self.detaching.load(Ordering::SeqCst) && self.state() != SessionState::Exited
    }

    /// Where every output byte of the session is appended.
    pub fn transcript_path(&self) -> PathBuf {
        self.dir.join(TRANSCRIPT)
    }

    fn master(&self) -> Result<Arc<AsyncFd<OwnedFd>>, SessionError> {
        lock(&self.master)
            .clone()
            .ok_or_else(|| SessionError::NotRunning {
                id: self.id.clone(),
            })
    }

    fn running(&self) -> Result<Pid, SessionError> {
        match (self.state(), self.pgid) {
            (SessionState::Running, Some(pgid)) => Ok(pgid),
            _ => Err(SessionError::NotRunning {
                id: self.id.clone(),
            }),
        }
    }

    /// Writes terminal input. It waits only on its own caller: when the PTY's input buffer is
    /// full (the process is not reading), this future waits for room while output keeps
    /// flowing to every viewer. Dropping the future abandons the rest of `data`.
    pub async fn write_input(&self, data: &[u8]) -> Result<(), SessionError> {
        let _serial = self.input_lock.lock().await;
        self.write_locked(data).await
    }

    /// Writes input frame `seq` of `client` exactly once: a frame already applied (a resend
    /// after a reconnect) is acknowledged without writing, and a frame that skips one is
    /// refused so that nothing reaches the process out of order.
    pub async fn write_input_seq(
        &self,
        client: &str,
        seq: u64,
        data: &[u8],
    ) -> Result<InputOutcome, SessionError> {
        let mut log = self.input_lock.lock().await;
        let last = log.last(client);
        if seq <= last {
            return Ok(InputOutcome::Duplicate);
        }
        if seq != last + 1 {
            return Ok(InputOutcome::OutOfOrder { expected: last + 1 });
        }
        self.write_locked(data).await?;
        log.applied(client, seq);
        Ok(InputOutcome::Written)
    }

    /// The last input frame of `client` that reached the process (0 when none did).
    pub async fn input_seq(&self, client: &str) -> u64 {
        self.input_lock.lock().await.last(client)
    }

    async fn write_locked(&self, data: &[u8]) -> Result<(), SessionError> {
        let fd = self.master()?;
        let mut rest = data;
        while !rest.is_empty() {
            let mut guard = fd.writable().await.map_err(|e| self.control("input", e))?;
            match guard.try_io(|inner| Ok(rustix::io::write(inner.get_ref(), rest)?)) {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) if e.raw_os_error() == Some(Errno::INTR.raw_os_error()) => {}
                Ok(Err(e)) if e.raw_os_error() == Some(Errno::IO.raw_os_error()) => {
                    return Err(SessionError::NotRunning {
                        id: self.id.clone(),
                    });
                }
                Ok(Err(e)) => return Err(self.control("input", e)),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Sets the terminal size; the kernel sends SIGWINCH to the foreground process group.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), SessionError> {
        let fd = self.master()?;
        kaged_pty::set_size(fd.get_ref().as_fd(), cols, rows)
            .map_err(|e| self.control("resize", e))?;
        if let Some(screen) = &self.screen {
            // What the ring holds now was written for the old size.
            let mut screen = lock(screen);
            let end = lock(&self.ring).end();
            screen.resize_at(end, cols, rows);
        }
        {
            let mut st = lock(&self.status);
            st.cols = cols;
            st.rows = rows;
        }
        self.data_notify.notify_waiters();
        Ok(())
    }

    /// Applies the size of the most recently active viewer, if it differs.
    fn apply_sizes(&self) {
        let Some((_, cols, rows)) = lock(&self.sizes).viewers.last().copied() else {
            return;
        };
        let current = {
            let st = lock(&self.status);
            (st.cols, st.rows)
        };
        if current != (cols, rows)
            && let Err(e) = self.resize(cols, rows)
        {
            tracing::debug!(session = %self.id, error = %e, "size not applied");
        }
    }

    /// Feeds the model what the ring holds beyond it, up to `upto` (at most `max` bytes per
    /// call when `upto` is `None`), and lets the ring evict what the model now has.
    fn feed_screen(&self, screen: &mut Screen, upto: Option<u64>) {
        loop {
            let (chunks, end) = {
                let ring = lock(&self.ring);
                let end = upto.unwrap_or(ring.end()).min(ring.end());
                if screen.fed() >= end {
                    return;
                }
                let max = (end - screen.fed()).min(SCREEN_FEED_MAX as u64) as usize;
                (ring.chunks_from(screen.fed(), max), end)
            };
            if chunks.is_empty() {
                return;
            }
            // One contiguous batch: the model's fast path looks across chunk boundaries.
            let room = (end - screen.fed()) as usize;
            let mut batch = chunks.concat();
            batch.truncate(room);
            screen.feed(screen.fed(), &batch);
            lock(&self.ring).mark_modelled(screen.fed());
            self.persisted_notify.notify_one();
            if upto.is_none() {
                return;
            }
        }
    }

    /// The screen now, from the model, at the offset where the live stream continues.
    /// `None` for a session without a model (one from a previous daemon run).
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.read_screen(Screen::snapshot)
    }

    /// What the screen shows now, hashed ([`Screen::digest`]): an agent that redraws the
    /// same screen is as idle as one that writes nothing. `None` without a model.
    pub fn screen_digest(&self) -> Option<u64> {
        self.read_screen(Screen::digest)
    }

    /// Runs `read` on the model caught up with all output so far.
    fn read_screen<R>(&self, read: impl FnOnce(&mut Screen) -> R) -> Option<R> {
        let screen = self.screen.as_ref()?;
        // Catching the model up can take a batch's worth of parsing (see `screen_keeper`).
        let out = off_the_runtime(|| {
            let mut screen = lock(screen);
            let idle = !screen.is_live();
            let end = lock(&self.ring).end();
            self.feed_screen(&mut screen, Some(end));
            let out = read(&mut screen);
            if idle {
                // An idle session stays compact: a viewer looking costs no grid.
                screen.compact();
            }
            out
        });
        // The keeper compacts the model once it is idle again.
        self.screen_notify.notify_one();
        Some(out)
    }

    /// Sends `sig` to the session's process group (the leader and what it runs in the
    /// foreground of that group).
    pub fn signal(&self, sig: Signal) -> Result<(), SessionError> {
        let pgid = self.running()?;
        killpg(pgid, sig).map_err(|e| self.control("signal", e.into()))
    }

    /// Ends the session: SIGHUP, then SIGTERM after the grace period, then SIGKILL, each to
    /// the whole process group. Returns at once; the escalation runs in the background and
    /// stops as soon as the process is gone. Use [`Session::wait`] to wait for the end.
    pub fn terminate(self: &Arc<Self>) {
        self.terminate_for(EndReason::Terminated);
    }

    pub(crate) fn terminate_for(self: &Arc<Self>, reason: EndReason) {
        {
            let mut st = lock(&self.status);
            if st.state == SessionState::Exited {
                return;
            }
            st.end_reason.get_or_insert(reason);
        }
        if self.terminating.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(pgid) = self.pgid else {
            return;
        };
        let session = self.clone();
        tokio::spawn(async move {
            let mut exited = session.leader_exited.subscribe();
            for sig in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGKILL] {
                if *exited.borrow_and_update() {
                    return;
                }
                if let Err(e) = killpg(pgid, sig) {
                    tracing::debug!(session = %session.id, signal = %sig, error = %e, "killpg");
                }
                if sig == Signal::SIGKILL {
                    return;
                }
                let grace = session.kill_grace;
                let _ = tokio::time::timeout(grace, exited.wait_for(|gone| *gone)).await;
            }
        });
    }

    /// Waits until the session has exited and its transcript and metadata are written.
    pub async fn wait(&self) -> SessionInfo {
        let mut done = self.done.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = done.wait_for(|d| *d).await;
        self.info()
    }

    /// Starts a viewer at `from`. `None` means the start of the scrollback; an offset beyond
    /// the end means the end. While the session runs, an
    /// offset older than the scrollback yields a [`ViewerEvent::Gap`] first; once it has
    /// exited, every offset is served from the complete transcript on disk.
    pub fn attach(self: &Arc<Self>, from: Option<u64>) -> Viewer {
        let ring = lock(&self.ring);
        let cursor = match from {
            None => ring.default_start(),
            Some(offset) => offset.min(ring.end()),
        };
        drop(ring);
        let size_seen = self.size();
        Viewer {
            session: self.clone(),
            cursor,
            exit_sent: false,
            screens: false,
            pending: None,
            size_seen,
            size_id: None,
        }
    }

    /// Starts a viewer that sees screens rather than old bytes: with `size`, it becomes the
    /// active viewer and the PTY takes its size first (see [`Viewer::set_size`]); then it gets
    /// the screen from the model and the live stream from exactly there. With `from`, it
    /// resumes the raw stream at that offset instead (a reconnect), and only a gap brings a
    /// screen. A session without a model falls back to the raw stream.
    pub fn attach_screen(self: &Arc<Self>, from: Option<u64>, size: Option<(u16, u16)>) -> Viewer {
        let mut viewer = self.attach(from);
        viewer.screens = true;
        if let Some((cols, rows)) = size {
            viewer.set_size(cols, rows);
        }
        if from.is_none()
            && let Some(snapshot) = self.snapshot()
        {
            viewer.cursor = snapshot.offset;
            viewer.size_seen = (snapshot.cols, snapshot.rows);
            viewer.pending = Some(ViewerEvent::Screen(snapshot));
        }
        viewer
    }

    fn size(&self) -> (u16, u16) {
        let st = lock(&self.status);
        (st.cols, st.rows)
    }

    /// Reads up to `max` transcript bytes from `offset`, from disk. For a running session this
    /// sees what has been written so far (at most one batch behind the scrollback).
    pub async fn read_transcript(&self, offset: u64, max: usize) -> Result<Bytes, SessionError> {
        let path = self.transcript_path();
        tokio::task::spawn_blocking(move || read_at(&path, offset, max))
            .await
            .map_err(|e| SessionError::Io {
                action: "reading (task failed)",
                path: self.transcript_path(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    fn control(&self, action: &'static str, source: std::io::Error) -> SessionError {
        SessionError::Control {
            id: self.id.clone(),
            action,
            source,
        }
    }
}

fn read_at(path: &Path, offset: u64, max: usize) -> Result<Bytes, SessionError> {
    let io = |source| SessionError::Io {
        action: "reading the transcript",
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let want = len.saturating_sub(offset).min(max as u64) as usize;
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

impl Viewer {
    /// The offset of the next byte this viewer will receive.
    pub fn offset(&self) -> u64 {
        self.cursor
    }

    /// This viewer's terminal is `cols`×`rows`, and it is now the active viewer: the PTY
    /// takes this size (the size rule in [`Sizes`]). The caller checks that the viewer may
    /// change the session at all.
    pub fn set_size(&mut self, cols: u16, rows: u16) {
        let session = &self.session;
        {
            let mut sizes = lock(&session.sizes);
            let id = *self.size_id.get_or_insert_with(|| {
                sizes.next_id += 1;
                sizes.next_id
            });
            sizes.viewers.retain(|(v, _, _)| *v != id);
            sizes.viewers.push((id, cols, rows));
        }
        session.apply_sizes();
    }

    /// The viewer typed: it becomes the active viewer, and its size (if it said one)
    /// applies.
    pub fn activate(&mut self) {
        let Some(id) = self.size_id else { return };
        {
            let mut sizes = lock(&self.session.sizes);
            let Some(i) = sizes.viewers.iter().position(|(v, _, _)| *v == id) else {
                return;
            };
            if i + 1 == sizes.viewers.len() {
                return;
            }
            let entry = sizes.viewers.remove(i);
            sizes.viewers.push(entry);
        }
        self.session.apply_sizes();
    }

    /// The next event, or `None` after `Exit`. Cancel-safe: dropping the future loses
    /// nothing, so it can sit in a `select!` next to the socket.
    pub async fn next(&mut self) -> Option<ViewerEvent> {
        if let Some(event) = self.pending.take() {
            return Some(event);
        }
        let Viewer {
            session,
            cursor,
            exit_sent,
            screens,
            pending,
            size_seen,
            size_id: _,
        } = self;
        loop {
            let notified = session.data_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The state is read before the ring: a session is marked exited only after its
            // last byte was pushed, so a ring read after seeing `Exited` is final.
            let (exit, size) = {
                let st = lock(&session.status);
                let exit = (st.state == SessionState::Exited).then_some(ViewerEvent::Exit {
                    code: st.exit_code,
                    signal: st.signal,
                });
                (exit, (st.cols, st.rows))
            };
            if *screens && size != *size_seen && exit.is_none() {
                *size_seen = size;
                return Some(ViewerEvent::Size {
                    cols: size.0,
                    rows: size.1,
                });
            }
            let end = {
                let ring = lock(&session.ring);
                if !ring.is_released() {
                    match ring.read(*cursor, VIEWER_FRAME_MAX) {
                        RingRead::Gap { from, to } => {
                            drop(ring);
                            // A screen viewer gets the current screen right after the gap,
                            // so its picture is whole again at once.
                            if *screens && let Some(snapshot) = session.snapshot() {
                                *cursor = snapshot.offset;
                                *size_seen = (snapshot.cols, snapshot.rows);
                                let to = snapshot.offset;
                                *pending = Some(ViewerEvent::Screen(snapshot));
                                return Some(ViewerEvent::Gap { from, to });
                            }
                            *cursor = to;
                            return Some(ViewerEvent::Gap { from, to });
                        }
                        RingRead::Data { offset, bytes } => {
                            *cursor = offset + bytes.len() as u64;
                            return Some(ViewerEvent::Data { offset, bytes });
                        }
                        RingRead::CaughtUp => None,
                    }
                } else {
                    Some(ring.end()).filter(|end| *cursor < *end)
                }
            };
            if let Some(end) = end {
                return Some(read_from_transcript(session, cursor, end).await);
            }
            if let Some(exit) = exit {
                if *exit_sent {
                    return None;
                }
                *exit_sent = true;
                return Some(exit);
            }
            notified.await;
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let Some(id) = self.size_id else { return };
        let was_active = {
            let mut sizes = lock(&self.session.sizes);
            let active = sizes.viewers.last().is_some_and(|(v, _, _)| *v == id);
            sizes.viewers.retain(|(v, _, _)| *v != id);
            active
        };
        if was_active {
            self.session.apply_sizes();
        }
    }
}

/// Exited sessions keep no scrollback in memory; their bytes come from the transcript.
async fn read_from_transcript(session: &Session, cursor: &mut u64, end: u64) -> ViewerEvent {
    let from = *cursor;
    let want = (end - from).min(VIEWER_FRAME_MAX as u64) as usize;
    let path = session.transcript_path();
    let read = tokio::task::spawn_blocking(move || read_at(&path, from, want)).await;
    match read {
        Ok(Ok(bytes)) if !bytes.is_empty() => {
            *cursor = from + bytes.len() as u64;
            ViewerEvent::Data {
                offset: from,
                bytes,
            }
        }
        other => {
            if let Ok(Err(e)) = &other {
                tracing::warn!(session = %session.id, error = %e, "transcript replay failed");
            }
            // The transcript is shorter than the output was (disk error or a crash): say so
            // rather than pretend.
            *cursor = end;
            ViewerEvent::Gap { from, to: end }
        }
    }
}

/// Outcome of draining what is readable right now.
enum Drained {
    /// Hit EAGAIN: wait for readiness.
    WouldBlock,
    /// Filled the coalescing buffer: read again at once.
    Full,
    /// The slave side is closed (EIO) or the read failed: no more output.
    End,
}

/// Linux queues PTY output in chunks of up to this many bytes.
const SHORT_READ: usize = 4096;

fn drain_readable(fd: &OwnedFd, buf: &mut [u8]) -> (usize, Drained) {
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(fd.as_fd(), &mut buf[n..]) {
            Ok(0) => return (n, Drained::End),
            // A read shorter than the TTY's flip-buffer chunk means the line discipline was
            // empty: stop here instead of confirming with one more read, which would wait for
            // the kernel's flip-buffer worker on the other CPU. The next chunk raises a fresh
            // readiness event, so nothing is missed.
            Ok(k) if k < SHORT_READ => return (n + k, Drained::WouldBlock),
            Ok(k) => n += k,
            Err(Errno::AGAIN) => return (n, Drained::WouldBlock),
            Err(Errno::INTR) => {}
            // EIO is how Linux reports that every slave fd is closed.
            Err(Errno::IO) => return (n, Drained::End),
            Err(e) => {
                tracing::warn!(error = %e, "reading the PTY failed");
                return (n, Drained::End);
            }
        }
    }
    (n, Drained::Full)
}

/// The session's only PTY reader.
async fn pump(s: Arc<Session>, fd: Arc<AsyncFd<OwnedFd>>) {
    let (cap, batch, screen_batch) = {
        let ring = lock(&s.ring);
        let cap = ring.cap() as u64;
        (
            cap,
            TRANSCRIPT_BATCH.min(cap / 4).max(1),
            SCREEN_BATCH.min(cap / 2).max(1),
        )
    };
    loop {
        // The ring may not evict unwritten bytes; if the disk falls a whole scrollback behind,
        // stop reading (the process then blocks on its output) instead of growing.
        loop {
            let progressed = s.persisted_notify.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let ring = lock(&s.ring);
                if ring.unpersisted() <= cap && ring.unmodelled() <= cap {
                    break;
                }
            }
            progressed.await;
        }
        let mut guard = match fd.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!(session = %s.id, error = %e, "waiting for PTY output failed");
                return;
            }
        };
        let (chunk, drained) = SCRATCH.with_borrow_mut(|buf| {
            if buf.len() < READ_COALESCE_MAX {
                buf.resize(READ_COALESCE_MAX, 0);
            }
            let (n, drained) = drain_readable(fd.get_ref(), buf);
            (Bytes::copy_from_slice(&buf[..n]), drained)
        });
        if matches!(drained, Drained::WouldBlock) {
            guard.clear_ready();
        }
        drop(guard);
        if !chunk.is_empty() {
            let len = chunk.len() as u64;
            let (before, unmodelled) = {
                let mut ring = lock(&s.ring);
                let before = ring.unpersisted();
                ring.push(chunk);
                (before, ring.unmodelled())
            };
            s.data_notify.notify_waiters();
            if unmodelled >= screen_batch && unmodelled - len < screen_batch {
                s.screen_notify.notify_one();
            }
            // Wake the writer when it may be idle (nothing was pending, so it waits without a
            // deadline) or when a batch just filled up.
            if before == 0 || (before < batch && before + len >= batch) {
                s.writer_notify.notify_one();
            }
        }
        if matches!(drained, Drained::End) {
            return;
        }
    }
}

/// Feeds the screen model in large batches, off the reader's path, and compacts it when it
/// has been idle for a while. Ends with the session's output.
async fn screen_keeper(s: Arc<Session>) {
    let Some(screen) = &s.screen else { return };
    let batch = {
        let ring = lock(&s.ring);
        SCREEN_BATCH.min(ring.cap() as u64 / 2).max(1)
    };
    loop {
        let notified = s.screen_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if s.reader_done.load(Ordering::SeqCst) {
            return;
        }
        if lock(&s.ring).unmodelled() >= batch {
            // A batch takes the parser tens of milliseconds: off the runtime's worker, so the
            // PTY readers and sockets of every session keep moving meanwhile.
            off_the_runtime(|| {
                let mut screen = lock(screen);
                s.feed_screen(&mut screen, None);
            });
            continue;
        }
        let idle_for = {
            let screen = lock(screen);
            screen.is_live().then(|| screen.last_used.elapsed())
        };
        match idle_for {
            Some(idle) if idle >= SCREEN_IDLE => lock(screen).compact(),
            Some(idle) => {
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep(SCREEN_IDLE - idle) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Runs `f` where it cannot stall other tasks: `block_in_place` on a multi-thread runtime
/// (the daemon's), in place elsewhere (a current-thread runtime cannot hand its tasks off).
fn off_the_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Appends the ring to the transcript as soon as there is something to append: under load
/// each `writev` takes whatever piled up meanwhile, so the batches grow by themselves. Bytes
/// read but not yet written are what a `kill -9` of the daemon loses (its sessions live on in
/// their holders), so this window is kept to one wake-up of this task. Returns whether every
/// byte was written.
async fn transcript_writer(s: Arc<Session>, path: PathBuf) -> bool {
    loop {
        loop {
            let notified = s.writer_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pending = lock(&s.ring).unpersisted();
            let closed = s.reader_done.load(Ordering::SeqCst);
            if pending > 0 || closed {
                break;
            }
            notified.await;
        }
        if let Err(e) = flush_transcript(&s, &path) {
            tracing::warn!(session = %s.id, path = %path.display(), error = %e,
                "writing the transcript failed; the rest of this session's output is kept in memory only");
            lock(&s.ring).disable_persistence();
            lock(&s.status).transcript_complete = false;
            s.persisted_notify.notify_one();
            return false;
        }
        s.persisted_notify.notify_one();
        if s.reader_done.load(Ordering::SeqCst) && lock(&s.ring).unpersisted() == 0 {
            return true;
        }
    }
}

/// Writes everything pending, a bounded `writev` at a time. The file is open only meanwhile.
fn flush_transcript(s: &Session, path: &Path) -> std::io::Result<()> {
    let mut file: Option<File> = None;
    loop {
        let (chunks, from) = {
            let ring = lock(&s.ring);
            (
                ring.unpersisted_chunks(TRANSCRIPT_WRITE_MAX),
                ring.persisted(),
            )
        };
        if chunks.is_empty() {
            return Ok(());
        }
        let file = match &mut file {
            Some(file) => file,
            None => file.insert(persist::open_transcript_append(path)?),
        };
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        let mut slices = &mut slices[..];
        let mut written = 0;
        while written < total {
            match file.write_vectored(slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        lock(&s.ring).mark_persisted(from + total as u64);
    }
}

/// Waits for the end of the process (told by the child's status or its holder).
async fn leader_ends(leader: Leader) -> (Option<i32>, Option<i32>, bool) {
    match leader {
        Leader::Child(mut child) => match child.wait().await {
            Ok(status) => (status.code(), status.signal(), false),
            Err(e) => {
                tracing::warn!(error = %e, "could not reap the session's process");
                (None, None, false)
            }
        },
        Leader::Holder(link) => match link.ended().await {
            LinkEnd::Exited { code, signal } => (code, signal, false),
            LinkEnd::Lost => (None, None, true),
        },
    }
}

/// Waits for the process, enforces the walltime, drains the PTY, and records the end; or,
/// when the daemon leaves the session to its holder, flushes and lets go.
async fn supervise(
    s: Arc<Session>,
    leader: Leader,
    mut pump: JoinHandle<()>,
    writer: JoinHandle<bool>,
    walltime: Option<Duration>,
) {
    let ends = leader_ends(leader);
    tokio::pin!(ends);
    let detach = async {
        loop {
            let notified = s.detach_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if s.detaching.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    };
    tokio::pin!(detach);
    // A year stands in for "never" when there is no walltime; the branch is off then anyway.
    let sleep = tokio::time::sleep(walltime.unwrap_or(Duration::from_secs(365 * 86_400)));
    tokio::pin!(sleep);
    let mut armed = walltime.is_some();
    let (code, signal, lost) = loop {
        tokio::select! {
            end = &mut ends => break end,
            () = &mut sleep, if armed => {
                armed = false;
                s.terminate_for(EndReason::Walltime);
            }
            () = &mut detach => {
                let_go(&s, pump, writer).await;
                return;
            }
        }
    };
    if lost {
        tracing::warn!(session = %s.id, "the session's holder died without reporting an end");
        lock(&s.status)
            .end_reason
            .get_or_insert(EndReason::HolderLost);
    }
    s.leader_exited.send_replace(true);

    // Output still in the PTY (or written by leftovers) is read until the hang-up; anything
    // that keeps the PTY open longer is cut off by closing the master.
    if tokio::time::timeout(DRAIN_GRACE, &mut pump).await.is_err() {
        pump.abort();
        let _ = pump.await;
    }
    lock(&s.master).take();
    s.reader_done.store(true, Ordering::SeqCst);
    s.writer_notify.notify_one();
    let complete = writer.await.unwrap_or(false);
    if let Some(screen) = &s.screen {
        // The final screen stays, compact, for viewers that come later.
        let mut screen = lock(screen);
        s.feed_screen(&mut screen, Some(u64::MAX));
        screen.compact();
    }
    s.screen_notify.notify_one();
    if complete {
        lock(&s.ring).release();
    }
    {
        let mut st = lock(&s.status);
        st.state = SessionState::Exited;
        st.exit_code = code;
        st.signal = signal;
        st.end_reason.get_or_insert(EndReason::ProcessExited);
        st.ended_at = Some(Timestamp::now());
        st.transcript_complete &= complete;
    }
    let (dir, info) = (s.dir.clone(), s.info());
    match tokio::task::spawn_blocking(move || persist::write_final(&dir, &info)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(session = %s.id, error = %e, "could not record the session's end");
        }
        Err(e) => {
            tracing::warn!(session = %s.id, error = %e, "recording the session's end failed");
        }
    }
    s.data_notify.notify_waiters();
    s.done.send_replace(true);
}

/// The daemon leaves the session to its holder: stop reading (the pump only stops between
/// reads, so every byte read is in the ring), write every byte read to the transcript, record
/// the session as still running with its byte count, close our PTY master. Whatever the
/// process writes from now on waits in the PTY buffer for the next daemon.
async fn let_go(s: &Arc<Session>, pump: JoinHandle<()>, writer: JoinHandle<bool>) {
    pump.abort();
    let _ = pump.await;
    s.reader_done.store(true, Ordering::SeqCst);
    s.writer_notify.notify_one();
    let complete = writer.await.unwrap_or(false);
    lock(&s.master).take();
    lock(&s.status).transcript_complete &= complete;
    let (dir, info) = (s.dir.clone(), s.info());
    match tokio::task::spawn_blocking(move || persist::write_final(&dir, &info)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(session = %s.id, error = %e, "could not record the session for the next daemon");
        }
        Err(e) => {
            tracing::warn!(session = %s.id, error = %e, "recording the session for the next daemon failed");
        }
    }
    s.data_notify.notify_waiters();
    s.done.send_replace(true);
}
