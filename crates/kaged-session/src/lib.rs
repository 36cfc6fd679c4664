//! `session` owns sessions: processes on PTYs, their scrollback and their viewers (design §6).
//! It never checks auth; callers hand it an already-authorised identity. It never decides cage
//! policy either: it runs whatever argv it is given (usually `bwrap … -- cmd` from
//! `kaged-sandbox`) and knows nothing about HTTP or WebSocket framing.
//!
//! The hot path: one task per session reads the PTY master once, coalescing what is
//! already readable into one chunk without any timer, appends it to a bounded scrollback ring
//! addressed by byte offsets, and wakes viewers. Viewers are cursors into that ring, so a slow
//! or dead viewer costs nothing and never stalls the process; when it falls behind the ring it
//! gets a [`ViewerEvent::Gap`]. A separate task appends the ring to the on-disk transcript as
//! soon as anything is pending (under load the batches grow by themselves); the ring never evicts a byte the transcript has not taken, so the transcript is
//! complete.
//!
//! With a [`HolderConfig`], each session's process hangs off a holder process (see
//! [`holder`]) instead of the daemon, so sessions outlive the daemon: [`SessionManager::detach`]
//! lets go of them on a graceful stop, and the next [`SessionManager::open`] adopts them.
//!
//! Every function that starts work (spawning, attaching, terminating) must run inside a tokio
//! runtime with IO and time enabled.

pub mod holder;
mod manager;
mod persist;
mod pty;
mod ring;
mod screen;
mod session;

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

pub use kaged_api::session::{EndReason, SessionInfo, SessionOrigin, SessionState};
pub use manager::{Recovered, SessionManager};
pub use nix::sys::signal::Signal;
pub use persist::new_id as new_session_id;
pub use screen::Snapshot;
pub use session::{InputOutcome, Session, Viewer, ViewerEvent};

/// Settings of the session manager. The daemon fills it from `config.toml` (`[sessions]`).
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where `<id>/meta.json` and `<id>/transcript` live (created 0700).
    pub sessions_dir: PathBuf,
    /// Memory cap of each session's scrollback ring, allocated on demand
    /// (`sessions.scrollback_bytes`).
    pub scrollback_bytes: usize,
    /// Running sessions allowed per project (`sessions.max_per_project`).
    pub max_per_project: usize,
    /// Running sessions allowed per operator (`sessions.max_per_operator`).
    pub max_per_operator: usize,
    /// How long termination waits after SIGHUP and after SIGTERM before the next signal.
    pub kill_grace: Duration,
    /// Start sessions through holders, so they outlive the daemon; `None` makes them the
    /// daemon's own children, which end with it (the library's own tests and benches).
    pub holder: Option<HolderConfig>,
}

/// How to start a session's holder, and where holders listen.
#[derive(Debug, Clone)]
pub struct HolderConfig {
    /// The `kaged` binary; the daemon uses `/proc/self/exe`, which still runs the binary
    /// that started it after an upgrade replaced the file.
    pub program: PathBuf,
    /// Arguments that select the helper mode (`["holder"]`).
    pub args: Vec<OsString>,
    /// The 0700 runtime dir: `holder-<id>.sock` for each session.
    pub sockets_dir: PathBuf,
}

impl HolderConfig {
    pub fn socket(&self, id: &str) -> PathBuf {
        self.sockets_dir.join(format!("holder-{id}.sock"))
    }
}

impl ManagerConfig {
    /// The defaults: 4 MiB of scrollback, 16 sessions per project, 64 per operator, 2 s grace.
    pub fn new(sessions_dir: impl Into<PathBuf>) -> Self {
        Self {
            sessions_dir: sessions_dir.into(),
            scrollback_bytes: 4 << 20,
            max_per_project: 16,
            max_per_operator: 64,
            kill_grace: Duration::from_secs(2),
            holder: None,
        }
    }
}

/// Everything needed to start one session. The argv is final: sandboxing already happened.
#[derive(Debug)]
pub struct SpawnSpec {
    /// The id, when the caller names resources after it before the spawn (from
    /// [`new_session_id`]); `None` picks a fresh one.
    pub id: Option<String>,
    pub project_id: String,
    /// The operator's user id, for limits, metadata and events.
    pub actor: String,
    pub argv: Vec<OsString>,
    /// The complete environment of the child; nothing of the daemon's is inherited. Include
    /// `TERM` (for example `xterm-256color`) for a usable terminal.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    pub cols: u16,
    pub rows: u16,
    /// Terminate (with the usual escalation) once the session has run this long.
    pub walltime: Option<Duration>,
    /// Descriptors the child inherits at the same numbers (for example bwrap's `--args FD`,
    /// `--seccomp FD`). They are closed in the daemon once the child runs.
    pub keep_fds: Vec<OwnedFd>,
    /// A cgroup's `cgroup.procs`, open for writing: the child joins that cgroup before exec,
    /// so the cage's limits hold from its first instruction. Closed once the child runs.
    pub cgroup_procs: Option<OwnedFd>,
    /// What was asked for and the cage it got, stored and reported with the session.
    pub origin: SessionOrigin,
}

/// Which running-session limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    PerProject,
    PerOperator,
}

impl LimitKind {
    /// The configuration key that sets this limit.
    pub fn config_key(self) -> &'static str {
        match self {
            LimitKind::PerProject => "sessions.max_per_project",
            LimitKind::PerOperator => "sessions.max_per_operator",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Maps to HTTP 429 `rate_limited`.
    #[error(
        "{subject} already has {max} running sessions (limit `{key}` = {max}); end one or raise `{key}`",
        key = kind.config_key()
    )]
    Limit {
        kind: LimitKind,
        subject: String,
        max: usize,
    },
    #[error("the argv is empty; give at least the program to run")]
    EmptyArgv,
    #[error("session id {id:?} is malformed or already in use; take one from new_session_id()")]
    BadId { id: String },
    #[error("could not start `{program}` in {cwd}: {source}")]
    Spawn {
        program: String,
        cwd: PathBuf,
        source: std::io::Error,
    },
    #[error("could not set up a PTY for the session: {0}")]
    Pty(#[source] std::io::Error),
    #[error("session {id} is not running")]
    NotRunning { id: String },
    #[error(transparent)]
    Dir(#[from] kaged_deploy::DirError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the session manager is shutting down; no new sessions")]
    ShuttingDown,
    #[error("session {id}: {action} failed: {source}")]
    Control {
        id: String,
        action: &'static str,
        source: std::io::Error,
    },
}
