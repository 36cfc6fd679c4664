//! `worktree` owns a git worktree per agent run: creating it on its own branch, reviewing it,
//! merging it into `base`, and removing it without ever losing a byte (a snapshot commit under
//! `refs/kaged/snapshots/<run>` is taken first whenever removal would lose anything).
//!
//! Every multi-step operation is journaled in SQLite before its first side effect, and
//! [`Worktrees::recover`] finishes or rolls each one back at start-up from what the journal
//! says, never from a guess. This crate never decides *when* to clean up or merge, nor what a
//! cage may see; the daemon does, and calls in here.
//!
//! All calls block (they run git); call them from a blocking task. [`Worktrees`] is `Send` but
//! not `Sync`: the daemon keeps one behind a mutex, which also serialises git operations on a
//! repository.
//!
//! The daemon's side, in order: [`check_version`] and [`Worktrees::open`] then
//! [`Worktrees::recover`] at start-up; [`Worktrees::next_branch`] and [`Worktrees::create`]
//! before a run starts, granting the cage [`Record::path`] read-write and
//! [`Record::read_only_paths`] read-only; [`Worktrees::mark_ended`] when it ends;
//! [`Worktrees::sweep`] and [`Worktrees::prune_snapshots`] on a timer.

mod create;
mod error;
mod git;
mod inspect;
mod journal;
mod merge;
mod recover;
mod remove;
mod snapshot;
mod status;

use rusqlite::Connection;

pub use create::{CreateRequest, RestoreRequest, branch_name};
pub use error::{Error, Result};
pub use git::check_version;
pub use inspect::{Commit, FileChange, Loss, Review, UnknownWorktree};
pub use journal::{Record, State, migrate};
pub use merge::{MergeMode, MergeOutcome};
pub use recover::{Recovered, Recovery};
pub use remove::{Removal, SweepOutcome};
pub use snapshot::{SNAPSHOT_PREFIX, Snapshot};
pub use status::{Change, Entry, Status};

/// A point in an operation where a crash test can stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    CreateBranch,
    AddWorktree,
    RestoreContent,
    Register,
    WriteSnapshot,
    CleanWorktree,
    RemoveWorktree,
    RecordRemoval,
    UpdateBase,
    RecordMerge,
}

/// Whether a failpoint fires just before a step's side effect or just after it, before the
/// journal has recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Before,
    After,
}

/// Returns `true` to stop the operation there, as a crash would.
#[cfg(feature = "failpoints")]
pub type Failpoint = Box<dyn Fn(Step, Phase) -> bool + Send>;

/// The worktree manager: the registry and journal on one connection to the daemon's database.
pub struct Worktrees {
    db: Connection,
    #[cfg(feature = "failpoints")]
    failpoint: Option<Failpoint>,
}

impl Worktrees {
    /// Takes a connection to the daemon's database and creates this crate's tables if needed.
    /// Call [`Worktrees::recover`] next, before any other operation.
    pub fn open(db: Connection) -> Result<Worktrees> {
        journal::migrate(&db)?;
        Ok(Worktrees {
            db,
            #[cfg(feature = "failpoints")]
            failpoint: None,
        })
    }

    #[cfg(feature = "failpoints")]
    pub fn set_failpoint(&mut self, failpoint: Option<Failpoint>) {
        self.failpoint = failpoint;
    }

    #[cfg(feature = "failpoints")]
    fn step(&self, step: Step, phase: Phase) -> Result<()> {
        match &self.failpoint {
            Some(f) if f(step, phase) => Err(Error::Failpoint { step, phase }),
            _ => Ok(()),
        }
    }

    #[cfg(not(feature = "failpoints"))]
    fn step(&self, _step: Step, _phase: Phase) -> Result<()> {
        Ok(())
    }

    pub fn record(&self, run: &str) -> Result<Option<Record>> {
        journal::get(&self.db, run)
    }

    /// Every worktree kaged created, removed ones included (their snapshots stay listed).
    pub fn records(&self) -> Result<Vec<Record>> {
        journal::all(&self.db)
    }

    /// Records who owns `run`, for a run no session of the caller's made (a restore). The
    /// crate attaches no meaning to it; the caller's access rules do.
    pub fn set_owner(&self, run: &str, owner: &str) -> Result<()> {
        journal::set_owner(&self.db, run, owner)
    }

    /// Every owner recorded with [`Worktrees::set_owner`], as `(run, owner)`.
    pub fn owners(&self) -> Result<Vec<(String, String)>> {
        journal::owners(&self.db)
    }

    /// Records that the last session using this worktree ended (the run's own, or a later
    /// shell or run in it), which starts its idle time for [`Worktrees::sweep`] again.
    /// Returns `false` when it was already marked at `at` or later.
    pub fn mark_ended(&self, run: &str, at: i64) -> Result<bool> {
        journal::mark_ended(&self.db, run, at)
    }

    fn active(&self, run: &str) -> Result<Record> {
        let rec = self.record(run)?.ok_or_else(|| Error::UnknownRun {
            run: run.to_owned(),
        })?;
        if journal::busy(&self.db, run)? {
            return Err(Error::Busy {
                run: run.to_owned(),
            });
        }
        match rec.state {
            State::Active => Ok(rec),
            State::Removed => Err(Error::NotActive {
                run: run.to_owned(),
            }),
        }
    }
}

/// Now, in the Unix seconds the registry stores.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
