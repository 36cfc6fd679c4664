//! The daemon's side of a git worktree per run: one [`Worktrees`] manager behind a mutex (which
//! also serialises git operations), opened and recovered at start-up, the sessions each live
//! worktree has, and the timer that sweeps idle worktrees and prunes old snapshots. It decides
//! *when* git work happens and what a cage of a worktree may write; `kaged-worktree` does it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kaged_api::{WorktreeRun, WorktreeSnapshot, WorktreeState};
use kaged_sandbox::LinkedGit;
use kaged_store::{AuditEvent, EventType};
use kaged_worktree::{Error as WtError, Record, Recovered, State, Worktrees};
use serde_json::json;

use crate::Daemon;
use crate::error::{OpError, OpResult};

/// How long a worktree operation waits for another git process's index or ref lock before
/// SQLite gives up on the journal (git's own locks fail fast and are reported).
const DB_BUSY: Duration = Duration::from_secs(10);
/// The sweep never runs more often than this, nor less often than hourly.
const MIN_TICK: Duration = Duration::from_secs(1);
const MAX_TICK: Duration = Duration::from_secs(3600);

/// What the daemon knows about worktrees: the manager, or why there is none (no usable git).
pub(crate) enum WorktreeSupport {
    Ready(Arc<Hub>),
    Unavailable(String),
}

pub(crate) struct Hub {
    manager: Arc<Mutex<Worktrees>>,
    /// Where new worktrees go: `[worktrees] dir`, else `<state>/worktrees`.
    pub(crate) dir: PathBuf,
    retention: Option<u64>,
    idle: Option<u64>,
    /// Run → the sessions working in its worktree now. A worktree in use is never swept or
    /// removed.
    in_use: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Run → owner, for runs no session made (restores); read on every access check, so kept
    /// here as well as in the database.
    owners: Mutex<HashMap<String, String>>,
    /// Run → why the sweep last left it, so a refusal that stands is audited once, not on
    /// every tick.
    sweep_refused: Mutex<HashMap<String, String>>,
}

impl WorktreeSupport {
    /// Checks git, opens the manager on its own connection to the daemon's database and
    /// settles what a crash left half-done, before anything is served. Returns what recovery
    /// did, for the audit log.
    pub(crate) fn open(
        db: &Path,
        state_dir: &Path,
        local: &kaged_dsl::LocalWorktrees,
    ) -> (WorktreeSupport, Vec<kaged_worktree::Recovery>) {
        let version = match kaged_worktree::check_version() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("worktrees are unavailable: {e}");
                return (WorktreeSupport::Unavailable(e.to_string()), Vec::new());
            }
        };
        let opened = rusqlite::Connection::open(db)
            .and_then(|c| c.busy_timeout(DB_BUSY).map(|()| c))
            .map_err(WtError::from)
            .and_then(Worktrees::open)
            .and_then(|w| w.recover().map(|r| (w, r)))
            .and_then(|(w, r)| w.owners().map(|o| (w, r, o)));
        match opened {
            Ok((manager, recovered, owners)) => {
                let dir = local
                    .dir
                    .clone()
                    .unwrap_or_else(|| state_dir.join("worktrees"));
                tracing::info!(
                    "worktrees: git {version}, under {}, {} operation(s) recovered",
                    dir.display(),
                    recovered.len()
                );
                let hub = Hub {
                    manager: Arc::new(Mutex::new(manager)),
                    dir,
                    retention: local.snapshot_retention(),
                    idle: local.sweep_idle(),
                    in_use: Mutex::new(HashMap::new()),
                    owners: Mutex::new(owners.into_iter().collect()),
                    sweep_refused: Mutex::new(HashMap::new()),
                };
                (WorktreeSupport::Ready(Arc::new(hub)), recovered)
            }
            Err(e) => {
                tracing::error!("worktrees are unavailable: {e}");
                (WorktreeSupport::Unavailable(e.to_string()), Vec::new())
            }
        }
    }
}

impl Hub {
    /// Runs `f` on the manager in a blocking task, one operation at a time.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Worktrees) -> Result<T, WtError> + Send + 'static,
    ) -> OpResult<T> {
        let manager = self.manager.clone();
        tokio::task::spawn_blocking(move || {
            let m = manager.lock().unwrap_or_else(|p| p.into_inner());
            f(&m)
        })
        .await
        .map_err(|e| OpError::internal("a worktree operation panicked", e))?
        .map_err(op_error)
    }

    pub(crate) fn sessions_of(&self, run: &str) -> Vec<String> {
        self.lock_use()
            .get(run)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn enter(&self, run: &str, session: &str) {
        self.lock_use()
            .entry(run.to_owned())
            .or_default()
            .insert(session.to_owned());
    }

    /// Returns whether that was the last session in the worktree.
    fn leave(&self, run: &str, session: &str) -> bool {
        let mut in_use = self.lock_use();
        let Some(sessions) = in_use.get_mut(run) else {
            return true;
        };
        sessions.remove(session);
        let last = sessions.is_empty();
        if last {
            in_use.remove(run);
        }
        last
    }

    /// The recorded owner of a run no session made.
    pub(crate) fn owner_of(&self, run: &str) -> Option<String> {
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.get(run).cloned()
    }

    /// Records `owner` as the owner of `run`, on disk and here.
    pub(crate) async fn set_owner(&self, run: &str, owner: &str) -> OpResult<()> {
        let (r, o) = (run.to_owned(), owner.to_owned());
        self.call(move |w| w.set_owner(&r, &o)).await?;
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.insert(run.to_owned(), owner.to_owned());
        Ok(())
    }

    fn lock_use(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn view(&self, rec: &Record, project_id: &str) -> WorktreeRun {
        WorktreeRun {
            run: rec.run.clone(),
            project_id: project_id.to_owned(),
            repo: rec.repo.display().to_string(),
            path: rec.path.display().to_string(),
            branch: rec.branch.clone(),
            base: rec.base.clone(),
            base_oid: rec.base_oid.clone(),
            state: match rec.state {
                State::Active => WorktreeState::Active,
                State::Removed => WorktreeState::Removed,
            },
            snapshot: rec.snapshot.clone(),
            snapshot_oid: rec.snapshot_oid.clone(),
            created_at: rec.created_at,
            ended_at: rec.ended_at,
            removed_at: rec.removed_at,
            sessions: self.sessions_of(&rec.run),
        }
    }
}

pub(crate) fn snapshot_view(s: kaged_worktree::Snapshot) -> WorktreeSnapshot {
    WorktreeSnapshot {
        reference: s.reference,
        run: s.run,
        oid: s.oid,
        time: s.time,
    }
}

/// What the cage of a worktree session may do with the repository's git dirs: write objects
/// and refs (so the agent can commit) and its own worktree's HEAD and index; never the
/// config, hooks or `info/` git runs on the host, the worktree's own config and its pointers
/// back to the repository, nor kaged's snapshot refs, which hold other runs' work.
pub(crate) fn linked_git(rec: &Record) -> OpResult<LinkedGit> {
    let outside = |p: &Path| {
        OpError::Conflict(format!(
            "{} is not inside the repository's git dir {}; the worktree of run {} was moved \
             by hand, inspect it before starting a session in it",
            p.display(),
            rec.common_dir.display(),
            rec.run
        ))
    };
    let admin = rec
        .admin_dir
        .strip_prefix(&rec.common_dir)
        .map_err(|_| outside(&rec.admin_dir))?
        .to_owned();
    // Refs are read-only but for the directory of the run's own branch: a commit replaces
    // `refs/heads/<branch>` through a lock file beside it. The base branch, tags and other
    // runs' branches elsewhere stay as they are; branch templates always have a `/`, so that
    // directory is never refs/heads itself. What else is in it (earlier runs of the same
    // agent, with the default `kaged/{agent}/{n}`) is bound read-only over itself below.
    let branch_dir = Path::new("refs/heads")
        .join(&rec.branch)
        .parent()
        .map_or_else(|| PathBuf::from("refs/heads"), Path::to_owned);
    for dir in [Path::new("logs"), Path::new("refs/kaged"), &branch_dir] {
        let path = rec.common_dir.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(|e| OpError::internal("cannot prepare the git dir for a worktree cage", e))?;
    }
    let mut read_only: Vec<(PathBuf, bool)> = rec
        .read_only_paths()
        .iter()
        .filter_map(|p| p.strip_prefix(&rec.common_dir).ok())
        .map(|p| (p.to_owned(), p == Path::new("hooks")))
        .collect();
    let own = Path::new("refs/heads").join(&rec.branch);
    let siblings = std::fs::read_dir(rec.common_dir.join(&branch_dir))
        .map_err(|e| OpError::internal("cannot list the run's branch directory", e))?;
    for entry in siblings.flatten() {
        let rel = branch_dir.join(entry.file_name());
        if rel != own && !entry.file_name().to_string_lossy().ends_with(".lock") {
            let dir = entry.file_type().is_ok_and(|t| t.is_dir());
            read_only.push((rel, dir));
        }
    }
    read_only.extend([
        (PathBuf::from("info"), true),
        (PathBuf::from("refs/kaged"), true),
        (admin.join("commondir"), false),
        (admin.join("gitdir"), false),
    ]);
    Ok(LinkedGit {
        common_dir: rec.common_dir.clone(),
        writable: vec!["objects".into(), branch_dir, "logs".into(), admin],
        read_only,
    })
}

/// The deny list for a cage rooted at `root`, a worktree that may sit in a denied directory
/// (the state dir, by default): each denied ancestor of `root` is replaced by its entries off
/// the way to `root`, level by level, so its siblings stay hidden wherever they would show.
pub(crate) fn deny_around(deny: &[PathBuf], root: &Path) -> Vec<PathBuf> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let root = canonical(root);
    let mut out = Vec::new();
    for d in deny {
        let mut dir = canonical(d);
        let Ok(rest) = root.strip_prefix(&dir).map(Path::to_owned) else {
            out.push(d.clone());
            continue;
        };
        for step in rest.components() {
            let next = dir.join(step);
            let entries = std::fs::read_dir(&dir).into_iter().flatten().flatten();
            out.extend(entries.map(|e| e.path()).filter(|e| *e != next));
            dir = next;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The worktree library's refusals, with the error code of design §5 each deserves.
pub(crate) fn op_error(e: WtError) -> OpError {
    let paths = |ps: &[PathBuf]| ps.iter().map(|p| p.display().to_string()).collect();
    match e {
        WtError::GitMissing { .. } | WtError::GitTooOld { .. } => {
            OpError::Unavailable(e.to_string())
        }
        WtError::NotARepository { .. }
        | WtError::UnsupportedPath { .. }
        | WtError::NoCommits { .. }
        | WtError::DetachedHead { .. }
        | WtError::BaseNotFound { .. }
        | WtError::InvalidBranch { .. }
        | WtError::InvalidRun { .. }
        | WtError::Submodules { .. }
        | WtError::InsideRepository { .. }
        | WtError::PathExists { .. }
        | WtError::NestedRepository { .. } => OpError::Invalid(e.to_string()),
        WtError::DirtyCheckout { paths: ref ps, .. }
        | WtError::Conflict { paths: ref ps, .. }
        | WtError::IgnoredFiles {
            ignored: ref ps, ..
        } => OpError::ConflictPaths {
            paths: paths(ps),
            message: e.to_string(),
        },
        WtError::BranchExists { .. }
        | WtError::RunExists { .. }
        | WtError::Busy { .. }
        | WtError::NotActive { .. }
        | WtError::Locked { .. }
        | WtError::Tampered { .. }
        | WtError::Unmerged { .. }
        | WtError::BranchNotFound { .. }
        | WtError::BranchInUse { .. }
        | WtError::BaseNotCheckedOut { .. }
        | WtError::OperationInProgress { .. }
        | WtError::NotFastForward { .. }
        | WtError::NothingToMerge { .. }
        | WtError::Changed { .. }
        | WtError::RemoveRefused { .. } => OpError::Conflict(e.to_string()),
        WtError::UnknownRun { run } => OpError::not_found("worktree run", &run),
        WtError::SnapshotNotFound { reference, .. } => OpError::not_found("snapshot", &reference),
        WtError::Git { .. }
        | WtError::Recovery { .. }
        | WtError::Io { .. }
        | WtError::Db(_)
        | WtError::SchemaTooNew { .. }
        | WtError::Journal { .. }
        | WtError::Failpoint { .. } => OpError::internal("worktree operation failed", e),
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Daemon {
    pub(crate) fn worktree_hub(&self) -> OpResult<Arc<Hub>> {
        match &self.inner.worktrees {
            WorktreeSupport::Ready(hub) => Ok(hub.clone()),
            WorktreeSupport::Unavailable(why) => Err(OpError::Unavailable(format!(
                "git worktrees are unavailable on this host: {why}"
            ))),
        }
    }

    /// The sessions still running in a run's worktree. One that just exited may still be
    /// listed until its watcher has run, so the session manager has the last word.
    pub(crate) fn live_sessions_in(&self, hub: &Hub, run: &str) -> Vec<String> {
        hub.sessions_of(run)
            .into_iter()
            .filter(|id| {
                self.inner
                    .sessions
                    .get(id)
                    .is_some_and(|s| s.state() != kaged_api::SessionState::Exited)
            })
            .collect()
    }

    pub(crate) async fn audit_worktree(
        &self,
        kind: EventType,
        actor: Option<&str>,
        project: Option<&str>,
        data: serde_json::Value,
    ) {
        let mut row = AuditEvent::new(kind, actor, data);
        if let Some(p) = project {
            row = row.project(p);
        }
        self.inner.audit.record(row).await;
    }

    /// Audits what start-up recovery finished or rolled back; an operation it could not
    /// settle is logged loudly too, since its run stays busy until the operator looks.
    pub(crate) async fn audit_recovery(&self, recovered: Vec<kaged_worktree::Recovery>) {
        for r in recovered {
            let outcome = match &r.outcome {
                Recovered::Finished => "finished".to_owned(),
                Recovered::RolledBack => "rolled_back".to_owned(),
                Recovered::NeedsOperator(why) => {
                    tracing::error!(run = %r.run, "worktree recovery needs the operator: {why}");
                    format!("needs_operator: {why}")
                }
            };
            tracing::info!(run = %r.run, op = r.kind, step = %r.step, %outcome, "worktree recovery");
            let data = json!({"op": r.op, "run": r.run, "kind": r.kind, "step": r.step,
                              "outcome": outcome});
            self.audit_worktree(EventType::WorktreeRecovered, None, None, data)
                .await;
        }
    }

    /// A session in a worktree ended: once none is left, the worktree's idle time starts.
    pub(crate) async fn worktree_session_ended(&self, info: &kaged_api::SessionInfo) {
        let (Some(run), WorktreeSupport::Ready(hub)) =
            (&info.origin.worktree, &self.inner.worktrees)
        else {
            return;
        };
        if !hub.leave(run, &info.id) {
            return;
        }
        let at = now();
        let r = run.clone();
        match hub.call(move |w| w.mark_ended(&r, at)).await {
            Ok(true) => {
                let data = json!({"run": run, "session": info.id, "ended_at": at});
                self.audit_worktree(
                    EventType::WorktreeEnded,
                    Some(&info.actor),
                    Some(&info.project_id),
                    data,
                )
                .await;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(run = %run, "cannot record that the worktree's run ended: {e}")
            }
        }
    }

    /// Sweeps idle worktrees and prunes old snapshots on a timer, until shutdown.
    pub(crate) fn spawn_worktree_timer(&self) {
        let WorktreeSupport::Ready(hub) = &self.inner.worktrees else {
            return;
        };
        let shortest = [hub.idle, hub.retention].into_iter().flatten().min();
        let Some(shortest) = shortest else {
            return;
        };
        let tick = Duration::from_secs(shortest / 4).clamp(MIN_TICK, MAX_TICK);
        let daemon = self.clone();
        let stop = self.inner.stop.clone();
        self.inner.tasks.spawn(async move {
            let mut timer = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = timer.tick() => daemon.worktree_housekeeping().await,
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    async fn worktree_housekeeping(&self) {
        let Ok(hub) = self.worktree_hub() else { return };
        let records = match hub.call(|w| w.records()).await {
            Ok(r) => r,
            Err(e) => return tracing::warn!("worktree sweep: {e}"),
        };
        let now = now();
        if let Some(idle) = hub.idle {
            let due = records.iter().filter(|r| {
                r.state == State::Active
                    && r.ended_at.is_some_and(|t| t <= now - idle as i64)
                    && self.live_sessions_in(&hub, &r.run).is_empty()
            });
            for rec in due {
                // The same safe path as a cleanup through the API: snapshot first.
                let run = rec.run.clone();
                let result = hub.call(move |w| w.remove(&run)).await;
                let (kind, data) = match &result {
                    Ok(removal) => (EventType::WorktreeRemoved, removal_json(removal, "sweep")),
                    Err(e) => {
                        let why = e.to_string();
                        let mut refused =
                            hub.sweep_refused.lock().unwrap_or_else(|p| p.into_inner());
                        if refused.get(&rec.run) == Some(&why) {
                            continue;
                        }
                        refused.insert(rec.run.clone(), why.clone());
                        let data = json!({"run": rec.run, "by": "sweep", "refused": why});
                        (EventType::WorktreeRefused, data)
                    }
                };
                self.audit_worktree(kind, None, None, data).await;
            }
        }
        let Some(retention) = hub.retention else {
            return;
        };
        let repos: BTreeSet<PathBuf> = records.into_iter().map(|r| r.repo).collect();
        for repo in repos {
            let r = repo.clone();
            let pruned = hub
                .call(move |w| w.prune_snapshots(&r, retention as i64, now))
                .await;
            match pruned {
                Ok(pruned) if pruned.is_empty() => {}
                Ok(pruned) => {
                    let snaps: Vec<_> = pruned.into_iter().map(snapshot_view).collect();
                    let data = json!({"repo": repo, "pruned": snaps,
                                      "retention_seconds": retention});
                    self.audit_worktree(EventType::WorktreeSnapshotsPruned, None, None, data)
                        .await;
                }
                Err(e) => tracing::warn!(repo = %repo.display(), "snapshot pruning: {e}"),
            }
        }
    }
}

pub(crate) fn removal_json(r: &kaged_worktree::Removal, by: &str) -> serde_json::Value {
    let list =
        |ps: &[PathBuf]| -> Vec<String> { ps.iter().map(|p| p.display().to_string()).collect() };
    json!({
        "run": r.run,
        "by": by,
        "changed": list(&r.loss.changed),
        "untracked": list(&r.loss.untracked),
        "unpushed": r.loss.unpushed,
        "ignored_discarded": list(&r.loss.ignored),
        "snapshot": r.snapshot.as_ref().map(|s| json!({"reference": s.reference, "oid": s.oid})),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_denied_ancestor_of_the_worktree_is_replaced_by_its_other_entries() {
        let state = tempfile::tempdir().unwrap();
        let s = std::fs::canonicalize(state.path()).unwrap();
        for dir in ["worktrees/run1", "worktrees/run2", "sessions"] {
            std::fs::create_dir_all(s.join(dir)).unwrap();
        }
        std::fs::write(s.join("kaged.db"), "").unwrap();
        let other = PathBuf::from("/run/user/1000/kaged");
        let got = deny_around(&[s.clone(), other.clone()], &s.join("worktrees/run1"));
        let mut want = vec![
            s.join("kaged.db"),
            s.join("sessions"),
            s.join("worktrees/run2"),
            other,
        ];
        want.sort();
        assert_eq!(got, want);
    }
}
