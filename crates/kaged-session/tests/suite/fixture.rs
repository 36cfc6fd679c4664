//! Shared helpers: a manager over a temp dir and `/bin/sh` sessions that read no rc file.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kaged_api::session::{CageState, SessionKind, SessionOrigin};
use kaged_session::{ManagerConfig, Session, SessionManager, SpawnSpec, Viewer, ViewerEvent};
use tempfile::TempDir;

/// Long enough for a loaded 2-core machine; only a hang ever reaches it.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Fixture {
    pub state: TempDir,
    pub home: TempDir,
    pub mgr: SessionManager,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut ManagerConfig)) -> Self {
        let state = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let mut cfg = config(&state.path().join("sessions"));
        tweak(&mut cfg);
        let mgr = SessionManager::open(cfg).unwrap();
        Self { state, home, mgr }
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.state.path().join("sessions")
    }

    /// A spec running `argv` with a minimal environment and the temp HOME as cwd.
    pub fn spec(&self, argv: &[&str]) -> SpawnSpec {
        spec_in(self.home.path(), "proj", "alice", argv)
    }

    pub fn spawn(&self, argv: &[&str]) -> Arc<Session> {
        self.mgr.spawn(self.spec(argv)).unwrap()
    }

    /// An interactive `/bin/sh` (no rc file: HOME is empty and ENV unset).
    pub fn shell(&self) -> Arc<Session> {
        self.spawn(&["/bin/sh"])
    }
}

pub fn config(dir: &Path) -> ManagerConfig {
    let mut cfg = ManagerConfig::new(dir);
    cfg.kill_grace = Duration::from_millis(200);
    cfg
}

pub fn spec_in(home: &Path, project: &str, actor: &str, argv: &[&str]) -> SpawnSpec {
    let env = [
        ("HOME", home.to_str().unwrap()),
        ("PATH", "/usr/bin:/bin"),
        ("TERM", "dumb"),
        ("PS1", "$ "),
    ];
    SpawnSpec {
        id: None,
        project_id: project.to_owned(),
        actor: actor.to_owned(),
        argv: argv.iter().map(OsString::from).collect(),
        env: env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect(),
        cwd: home.to_path_buf(),
        cols: 80,
        rows: 24,
        walltime: None,
        keep_fds: Vec::new(),
        cgroup_procs: None,
        origin: SessionOrigin {
            kind: SessionKind::Command,
            name: None,
            command: argv.iter().map(|a| (*a).to_owned()).collect(),
            cage: CageState::NoSandbox,
            agent: None,
            worktree: None,
        },
    }
}

/// Everything a viewer saw, in order.
#[derive(Debug, Default)]
pub struct Seen {
    pub bytes: Vec<u8>,
    pub gaps: Vec<(u64, u64)>,
    pub exit: Option<(Option<i32>, Option<i32>)>,
    pub screens: Vec<kaged_session::Snapshot>,
    pub sizes: Vec<(u16, u16)>,
}

impl Seen {
    /// Records one event, checking that data offsets follow on from what came before.
    fn absorb(&mut self, start: u64, ev: ViewerEvent) {
        match ev {
            ViewerEvent::Data { offset, bytes } => {
                let gaps: u64 = self.gaps.iter().map(|(f, t)| t - f).sum();
                let expected = start + self.bytes.len() as u64 + gaps;
                assert_eq!(
                    offset, expected,
                    "data must follow the previous byte or gap"
                );
                seen_data(&mut self.bytes, &bytes);
            }
            ViewerEvent::Gap { from, to } => {
                assert!(to > from, "empty gap {from}..{to}");
                self.gaps.push((from, to));
            }
            ViewerEvent::Exit { code, signal } => self.exit = Some((code, signal)),
            ViewerEvent::Screen(snapshot) => {
                let gaps: u64 = self.gaps.iter().map(|(f, t)| t - f).sum();
                assert_eq!(
                    snapshot.offset,
                    start + self.bytes.len() as u64 + gaps,
                    "a screen comes where the stream continues"
                );
                self.screens.push(snapshot);
            }
            ViewerEvent::Size { cols, rows } => self.sizes.push((cols, rows)),
        }
    }
}

fn seen_data(all: &mut Vec<u8>, new: &[u8]) {
    assert!(!new.is_empty(), "empty data event");
    all.extend_from_slice(new);
}

/// Reads until `done` holds for the bytes seen so far, or the stream ends.
pub async fn read_until(viewer: &mut Viewer, done: impl Fn(&[u8]) -> bool) -> Seen {
    let start = viewer.offset();
    let mut seen = Seen::default();
    while !done(&seen.bytes) {
        let next = tokio::time::timeout(PATIENCE, viewer.next()).await;
        let Ok(ev) = next else {
            panic!(
                "timed out; saw so far: {:?}",
                String::from_utf8_lossy(&seen.bytes)
            );
        };
        let Some(ev) = ev else { break };
        seen.absorb(start, ev);
    }
    seen
}

/// Reads until the stream ends (after `Exit`).
pub async fn read_to_end(viewer: &mut Viewer) -> Seen {
    read_until(viewer, |_| false).await
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `seq 1 n` as a terminal shows it (ONLCR turns `\n` into `\r\n`).
pub fn seq_output(n: u32) -> Vec<u8> {
    (1..=n)
        .flat_map(|i| format!("{i}\r\n").into_bytes())
        .collect()
}
