//! Removing a worktree without losing work, deleting its branch, and the sweep of ended runs.
//!
//! The order is what makes it safe: compute the loss, snapshot it, record the snapshot, check
//! the worktree still matches it, and only then clear the files the snapshot holds and let
//! `git worktree remove` (never `--force`) delete the rest, so git's own cleanliness check is
//! the last word.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::git::Git;
use crate::inspect::{Loss, check_gitfile, ignored, list_worktrees, loss, same_path};
use crate::journal::{self, Plan, Record, State};
use crate::snapshot::{self, Snapshot, build_tree, check_out_content, refuse_nested};
use crate::status::Status;
use crate::{Phase, Step, Worktrees};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RemovePlan {
    pub run: String,
    pub repo: PathBuf,
    pub path: PathBuf,
    pub admin_dir: PathBuf,
    pub snapshot: Option<PlannedSnapshot>,
    /// Whether files have to be cleared before `git worktree remove` will accept the worktree.
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlannedSnapshot {
    pub reference: String,
    pub oid: String,
    pub tree: String,
    pub previous: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub run: String,
    /// What would have been lost; all of it is in `snapshot`.
    pub loss: Loss,
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug)]
pub struct SweepOutcome {
    pub run: String,
    pub result: Result<Removal>,
}

impl Worktrees {
    /// Removes the worktree of `run`, first taking a snapshot if anything would be lost. The
    /// branch is kept. Refused ([`Error::IgnoredFiles`]) while it holds files git ignores,
    /// which no snapshot keeps: see [`Worktrees::remove_discarding_ignored`].
    pub fn remove(&self, run: &str) -> Result<Removal> {
        self.remove_with(run, false)
    }

    /// [`Worktrees::remove`], deleting the ignored files too (listed in the loss), as the
    /// operator asked after seeing them.
    pub fn remove_discarding_ignored(&self, run: &str) -> Result<Removal> {
        self.remove_with(run, true)
    }

    fn remove_with(&self, run: &str, discard_ignored: bool) -> Result<Removal> {
        let rec = self.active(run)?;
        let (plan, loss) = plan_removal(&rec, discard_ignored)?;
        let id = journal::begin(&self.db, run, &Plan::Remove(plan.clone()), crate::now())?;
        match self.remove_steps(id, &plan) {
            Ok(()) => {}
            Err(e @ Error::Failpoint { .. }) => return Err(e),
            Err(e) => {
                let step = journal::op_step(&self.db, id)?.unwrap_or_default();
                if let Err(undo) = self.recover_remove(id, &step, &plan, false) {
                    tracing::error!(run, error = %undo, "could not settle a failed removal");
                }
                return Err(e);
            }
        }
        Ok(Removal {
            run: run.to_owned(),
            loss,
            snapshot: plan.snapshot.map(|s| Snapshot {
                reference: s.reference,
                run: run.to_owned(),
                oid: s.oid,
                time: crate::now(),
            }),
        })
    }

    fn remove_steps(&self, id: i64, plan: &RemovePlan) -> Result<()> {
        let repo = Git::at(&plan.repo);
        let journaled = Plan::Remove(plan.clone());
        if let Some(snap) = &plan.snapshot {
            self.step(Step::WriteSnapshot, Phase::Before)?;
            snapshot::write_ref(&repo, &snap.reference, &snap.oid, snap.previous.as_deref())?;
            self.step(Step::WriteSnapshot, Phase::After)?;
            journal::advance(&self.db, id, "snapshotted", &journaled)?;
            if plan.dirty {
                let wt = Git::worktree(&plan.path, &plan.admin_dir);
                if build_tree(&wt, &plan.admin_dir)? != snap.tree {
                    return Err(Error::Changed {
                        path: plan.path.clone(),
                    });
                }
                // Journaled before it starts: from here on recovery finishes the removal.
                journal::advance(&self.db, id, "cleaning", &journaled)?;
                self.step(Step::CleanWorktree, Phase::Before)?;
                clear(&wt)?;
                self.step(Step::CleanWorktree, Phase::After)?;
                journal::advance(&self.db, id, "cleaned", &journaled)?;
            }
        }
        self.step(Step::RemoveWorktree, Phase::Before)?;
        // Someone may have pruned it already; then only the record is left to update.
        if still_listed(&repo, &plan.path)? {
            git_remove(&repo, plan)?;
        }
        self.step(Step::RemoveWorktree, Phase::After)?;
        journal::advance(&self.db, id, "removed", &journaled)?;
        self.step(Step::RecordRemoval, Phase::Before)?;
        self.record_removal(id, plan)
    }

    /// The final transaction: the registry says removed (with its snapshot) and the op is done.
    pub(crate) fn record_removal(&self, id: i64, plan: &RemovePlan) -> Result<()> {
        let tx = self.db.unchecked_transaction()?;
        if let Some(s) = &plan.snapshot {
            journal::set_snapshot(&tx, &plan.run, Some((&s.reference, &s.oid)))?;
        }
        journal::mark_removed(&tx, &plan.run, crate::now())?;
        journal::finish(&tx, id)?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes the branch of a removed worktree. Refuses while commits on it are in neither
    /// `base`, a remote branch, nor the run's snapshot.
    pub fn delete_branch(&self, run: &str) -> Result<()> {
        let rec = self.record(run)?.ok_or_else(|| Error::UnknownRun {
            run: run.to_owned(),
        })?;
        if rec.state == State::Active {
            return Err(Error::BranchInUse {
                branch: rec.branch,
                path: rec.path,
            });
        }
        let repo = Git::at(&rec.repo);
        let branch_ref = format!("refs/heads/{}", rec.branch);
        let Some(tip) = repo.resolve(&branch_ref)? else {
            return Ok(());
        };
        let mut args = vec!["rev-list".to_owned(), tip.clone(), "--not".to_owned()];
        let base = format!("refs/heads/{}", rec.base);
        if repo.resolve(&base)?.is_some() {
            args.push(base);
        }
        args.push("--remotes".to_owned());
        let unmerged = repo.text(&args)?.lines().count();
        let snap = repo.resolve(&snapshot::snapshot_ref(run))?;
        let in_snapshot = match &snap {
            Some(s) => repo.test(&["merge-base", "--is-ancestor", &tip, s])?,
            None => false,
        };
        if unmerged > 0 && !in_snapshot {
            return Err(Error::Unmerged {
                repo: rec.repo,
                branch: rec.branch,
                base: rec.base,
                commits: unmerged,
            });
        }
        repo.run(&[
            "update-ref",
            "-m",
            "kaged: delete branch",
            "-d",
            &branch_ref,
            &tip,
        ])?;
        Ok(())
    }

    /// Removes, through [`Worktrees::remove`], every worktree whose run ended at least
    /// `idle` seconds before `now`. One failure does not stop the others.
    pub fn sweep(&self, idle: i64, now: i64) -> Result<Vec<SweepOutcome>> {
        let due: Vec<Record> = self
            .records()?
            .into_iter()
            .filter(|r| r.state == State::Active && r.ended_at.is_some_and(|t| t <= now - idle))
            .collect();
        Ok(due
            .into_iter()
            .map(|r| SweepOutcome {
                result: self.remove(&r.run),
                run: r.run,
            })
            .collect())
    }
}

/// What removing `rec` would lose and how to keep it. Refused, before any snapshot work,
/// while files git ignores are there and `discard_ignored` is not set.
fn plan_removal(rec: &Record, discard_ignored: bool) -> Result<(RemovePlan, Loss)> {
    let repo = Git::at(&rec.repo);
    let present = rec.path.symlink_metadata().is_ok();
    if !present && !still_listed(&repo, &rec.path)? {
        // Directory and gitdir both gone (pruned by hand): nothing is left to lose or remove.
        return Ok((plan_without_snapshot(rec, false), Loss::default()));
    }
    // A vanished directory has no files to lose, but a detached HEAD's commits live only in
    // the worktree's gitdir, which `git worktree remove` deletes; so its loss is still checked.
    let (wt, status) = if present {
        check_gitfile(rec)?;
        let lock = rec.admin_dir.join("index.lock");
        if lock.symlink_metadata().is_ok() {
            return Err(Error::Locked {
                repo: rec.path.clone(),
                lock,
            });
        }
        let wt = rec.git();
        let status = Status::read(&wt)?;
        (wt, status)
    } else {
        (Git::gitdir(&rec.repo, &rec.admin_dir), Status::default())
    };
    let mut loss = loss(&wt, &rec.base, &status)?;
    if present {
        loss.ignored = ignored(&wt)?;
        if !loss.ignored.is_empty() && !discard_ignored {
            return Err(Error::IgnoredFiles {
                path: rec.path.clone(),
                ignored: loss.ignored,
            });
        }
    }
    let mut plan =
        plan_without_snapshot(rec, !loss.changed.is_empty() || !loss.untracked.is_empty());
    if loss.is_empty() {
        return Ok((plan, loss));
    }
    refuse_nested(rec, &status)?;
    let reference = snapshot::snapshot_ref(&rec.run);
    let previous = repo.resolve(&reference)?;
    let head = wt.text(&["rev-parse", "HEAD"])?;
    let tree = if plan.dirty {
        build_tree(&wt, &rec.admin_dir)?
    } else {
        wt.text(&["rev-parse", "HEAD^{tree}"])?
    };
    let mut parents = vec![head.as_str()];
    parents.extend(previous.as_deref());
    let oid = snapshot::commit(&wt, rec, &tree, &parents)?;
    plan.snapshot = Some(PlannedSnapshot {
        reference,
        oid,
        tree,
        previous,
    });
    Ok((plan, loss))
}

fn plan_without_snapshot(rec: &Record, dirty: bool) -> RemovePlan {
    RemovePlan {
        run: rec.run.clone(),
        repo: rec.repo.clone(),
        path: rec.path.clone(),
        admin_dir: rec.admin_dir.clone(),
        snapshot: None,
        dirty,
    }
}

/// Clears exactly what the snapshot holds: tracked changes back to HEAD, untracked files
/// deleted. Ignored files stay for `git worktree remove`, which deletes them as git always does.
pub(crate) fn clear(wt: &Git) -> Result<()> {
    wt.exact().run(&["reset", "-q", "--hard", "HEAD"])?;
    wt.run(&["clean", "-f", "-d", "-q"])?;
    Ok(())
}

/// `git worktree remove` without `--force`: git refuses a worktree that is not clean.
pub(crate) fn git_remove(repo: &Git, plan: &RemovePlan) -> Result<()> {
    let out = repo.output(&[
        "worktree".as_ref(),
        "remove".as_ref(),
        plan.path.as_os_str(),
    ])?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::RemoveRefused {
        path: plan.path.clone(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Whether git still lists a worktree at the plan's path.
pub(crate) fn still_listed(repo: &Git, path: &Path) -> Result<bool> {
    Ok(list_worktrees(repo)?
        .iter()
        .any(|w| same_path(&w.path, path)))
}

/// Puts the snapshot's files back after a removal that could not finish, so the worktree is
/// intact again.
pub(crate) fn put_back(plan: &RemovePlan) -> Result<()> {
    if let Some(s) = &plan.snapshot {
        check_out_content(&Git::worktree(&plan.path, &plan.admin_dir), &s.oid)?;
    }
    Ok(())
}
