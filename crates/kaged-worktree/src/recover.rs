//! Start-up recovery: every operation left in the journal is finished or rolled back from what
//! the journal recorded and what git shows now, so that afterwards each worktree is either
//! registered and intact, or gone with its snapshot recorded.

use crate::Worktrees;
use crate::create::CreatePlan;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::journal::{self, Plan};
use crate::merge::MergePlan;
use crate::remove::{RemovePlan, clear, git_remove, put_back, still_listed};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    Finished,
    RolledBack,
    /// Recovery could not settle it; the journal entry stays and the operator must look.
    NeedsOperator(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub op: i64,
    pub run: String,
    /// `create`, `remove` or `merge`.
    pub kind: &'static str,
    /// The last step the journal recorded.
    pub step: String,
    pub outcome: Recovered,
}

impl Worktrees {
    /// Settles every operation a crash left half-done. Call once at start-up, before any other
    /// operation; it is safe to call again.
    pub fn recover(&self) -> Result<Vec<Recovery>> {
        let mut report = Vec::new();
        for op in journal::pending(&self.db)? {
            let (kind, result) = match &op.plan {
                Plan::Create(p) => ("create", self.recover_create(op.id, p)),
                Plan::Remove(p) => ("remove", self.recover_remove(op.id, &op.step, p, true)),
                Plan::Merge(p) => ("merge", self.recover_merge(op.id, p)),
            };
            let outcome = result.unwrap_or_else(|e| Recovered::NeedsOperator(e.to_string()));
            tracing::info!(op = op.id, run = %op.run, kind, step = %op.step, ?outcome, "recovered");
            report.push(Recovery {
                op: op.id,
                run: op.run,
                kind,
                step: op.step,
                outcome,
            });
        }
        Ok(report)
    }

    /// A create that did not register is undone. No run was ever handed the worktree (that
    /// happens only after registration), so what is in it is git's checkout of the start
    /// commit or the snapshot's files, which the snapshot ref still holds: forcing its removal
    /// loses nothing.
    pub(crate) fn recover_create(&self, id: i64, plan: &CreatePlan) -> Result<Recovered> {
        let repo = Git::at(&plan.repo);
        if still_listed(&repo, &plan.path)? {
            // Twice: a worktree add cut short is still locked as "initializing".
            repo.run(&[
                "worktree".as_ref(),
                "remove".as_ref(),
                "--force".as_ref(),
                "--force".as_ref(),
                plan.path.as_os_str(),
            ])?;
        } else if plan.path.symlink_metadata().is_ok() {
            std::fs::remove_dir_all(&plan.path).map_err(|source| Error::Io {
                action: "cannot remove the half-created worktree",
                path: plan.path.clone(),
                source,
            })?;
        }
        let branch_ref = format!("refs/heads/{}", plan.branch);
        match repo.resolve(&branch_ref)? {
            None => {}
            Some(tip) if tip == plan.start_oid => {
                repo.run(&["update-ref", "-d", &branch_ref, &plan.start_oid])?;
            }
            Some(_) => {
                return Err(Error::Recovery {
                    run: plan.run.clone(),
                    detail: format!(
                        "branch {:?} moved although its worktree was never handed out; inspect it and delete it by hand",
                        plan.branch
                    ),
                });
            }
        }
        journal::finish(&self.db, id)?;
        Ok(Recovered::RolledBack)
    }

    /// A removal whose clearing had started is finished (the snapshot holds everything); one
    /// that had not is rolled back, and the worktree stays. If git already removed it, only
    /// the record is missing. `retry` is false when the removal failed rather than crashed, so
    /// it is not tried again.
    pub(crate) fn recover_remove(
        &self,
        id: i64,
        step: &str,
        plan: &RemovePlan,
        retry: bool,
    ) -> Result<Recovered> {
        let repo = Git::at(&plan.repo);
        let mut plan = plan.clone();
        let written = match &plan.snapshot {
            Some(s) => repo.resolve(&s.reference)?.as_deref() == Some(s.oid.as_str()),
            None => false,
        };
        if !written {
            plan.snapshot = None;
        }
        if !still_listed(&repo, &plan.path)? {
            self.record_removal(id, &plan)?;
            return Ok(Recovered::Finished);
        }
        let cleared = matches!(step, "cleaning" | "cleaned" | "removed");
        if retry && cleared {
            let wt = Git::worktree(&plan.path, &plan.admin_dir);
            if plan.path.symlink_metadata().is_ok() {
                clear(&wt)?;
            }
            match git_remove(&repo, &plan) {
                Ok(()) => {
                    self.record_removal(id, &plan)?;
                    return Ok(Recovered::Finished);
                }
                Err(e) => {
                    tracing::warn!(run = %plan.run, error = %e, "removal cannot finish; putting the worktree back")
                }
            }
        }
        if cleared {
            put_back(&plan)?;
        }
        let tx = self.db.unchecked_transaction()?;
        if let Some(s) = &plan.snapshot {
            journal::set_snapshot(&tx, &plan.run, Some((&s.reference, &s.oid)))?;
        }
        journal::finish(&tx, id)?;
        tx.commit()?;
        Ok(Recovered::RolledBack)
    }

    /// A merge landed if `base` points at the planned commit; otherwise it did not, and the
    /// journal entry is dropped, unless a git killed mid-merge left the checkout locked.
    pub(crate) fn recover_merge(&self, id: i64, plan: &MergePlan) -> Result<Recovered> {
        let repo = Git::at(&plan.repo);
        let now = repo.resolve(&format!("refs/heads/{}", plan.base))?;
        if now.as_deref() == Some(plan.new.as_str()) {
            journal::finish(&self.db, id)?;
            return Ok(Recovered::Finished);
        }
        let git_dir = crate::git::line_path(&repo.run(&[
            "rev-parse",
            "--path-format=absolute",
            "--git-dir",
        ])?);
        let lock = git_dir.join("index.lock");
        if lock.symlink_metadata().is_ok() {
            return Ok(Recovered::NeedsOperator(format!(
                "the merge into {:?} did not land and {lock:?} is left; if no git is running, delete it and check `git -C {:?} status`",
                plan.base, plan.repo
            )));
        }
        journal::finish(&self.db, id)?;
        Ok(Recovered::RolledBack)
    }
}
