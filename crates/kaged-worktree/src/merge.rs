//! Merging a run's branch into `base` in the operator's main checkout.
//!
//! The merge commit (when there is one) is built with `git merge-tree --write-tree` and
//! `commit-tree`, which touch neither the checkout nor any ref, so conflicts are found before
//! anything changes. The only step that changes the checkout is a `git merge --ff-only` to that
//! commit: git's own fast-forward, which moves `base` and updates the files together.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::create::Repo;
use crate::error::{Error, Result};
use crate::git::{Git, bytes_path, nul_fields};
use crate::journal::{self, Plan};
use crate::status::{Entry, Status};
use crate::{Phase, Step, Worktrees};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// Fast-forward when `base` has nothing new, a merge commit otherwise.
    Auto,
    FastForwardOnly,
    /// A merge commit even when a fast-forward is possible.
    MergeCommit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    pub run: String,
    pub base: String,
    /// `base` before and after.
    pub old: String,
    pub new: String,
    pub fast_forward: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MergePlan {
    pub run: String,
    pub repo: PathBuf,
    pub base: String,
    pub old: String,
    pub new: String,
    pub fast_forward: bool,
}

impl Worktrees {
    /// Merges the branch of `run` (its commits; uncommitted work in the worktree stays there)
    /// into `base`, which must be checked out in the main checkout.
    pub fn merge(&self, run: &str, mode: MergeMode) -> Result<MergeOutcome> {
        let rec = self.record(run)?.ok_or_else(|| Error::UnknownRun {
            run: run.to_owned(),
        })?;
        if journal::busy(&self.db, run)? {
            return Err(Error::Busy {
                run: run.to_owned(),
            });
        }
        let repo = Repo::open(&rec.repo)?;
        check_checkout(&repo, &rec.base)?;
        let old = repo.branch_oid(&rec.base)?;
        let tip = repo
            .git
            .resolve(&format!("refs/heads/{}", rec.branch))?
            .ok_or_else(|| Error::BranchNotFound {
                repo: repo.top.clone(),
                branch: rec.branch.clone(),
            })?;
        let git = &repo.git;
        if git.test(&["merge-base", "--is-ancestor", &tip, &old])? {
            return Err(Error::NothingToMerge {
                repo: repo.top.clone(),
                base: rec.base.clone(),
                branch: rec.branch.clone(),
            });
        }
        let ff_possible = git.test(&["merge-base", "--is-ancestor", &old, &tip])?;
        let fast_forward = match mode {
            MergeMode::Auto => ff_possible,
            MergeMode::FastForwardOnly if ff_possible => true,
            MergeMode::FastForwardOnly => {
                return Err(Error::NotFastForward {
                    repo: repo.top.clone(),
                    base: rec.base.clone(),
                    branch: rec.branch.clone(),
                });
            }
            MergeMode::MergeCommit => false,
        };
        let new = if fast_forward {
            tip.clone()
        } else {
            merge_commit(&repo, &rec.base, &rec.branch, &old, &tip)?
        };
        refuse_dirty(&repo, &old, &new)?;
        let plan = MergePlan {
            run: run.to_owned(),
            repo: repo.top.clone(),
            base: rec.base.clone(),
            old,
            new,
            fast_forward,
        };
        self.run_merge(plan)
    }

    fn run_merge(&self, plan: MergePlan) -> Result<MergeOutcome> {
        let id = journal::begin(
            &self.db,
            &plan.run,
            &Plan::Merge(plan.clone()),
            crate::now(),
        )?;
        let result = (|| {
            self.step(Step::UpdateBase, Phase::Before)?;
            let git = Git::at(&plan.repo);
            git.run(&["merge", "--ff-only", "--quiet", "--no-stat", &plan.new])?;
            self.step(Step::UpdateBase, Phase::After)?;
            journal::advance(&self.db, id, "base_updated", &Plan::Merge(plan.clone()))?;
            self.step(Step::RecordMerge, Phase::Before)?;
            journal::finish(&self.db, id)
        })();
        match result {
            Ok(()) => Ok(MergeOutcome {
                run: plan.run,
                base: plan.base,
                old: plan.old,
                new: plan.new,
                fast_forward: plan.fast_forward,
            }),
            Err(e @ Error::Failpoint { .. }) => Err(e),
            Err(e) => {
                if let Err(undo) = self.recover_merge(id, &plan) {
                    tracing::error!(run = %plan.run, error = %undo, "could not settle a failed merge");
                }
                Err(e)
            }
        }
    }
}

fn check_checkout(repo: &Repo, base: &str) -> Result<()> {
    repo.check_unlocked()?;
    let head = match repo.current_branch() {
        Ok(b) => b,
        Err(Error::DetachedHead { .. }) => "detached".to_owned(),
        Err(e) => return Err(e),
    };
    if head != base {
        return Err(Error::BaseNotCheckedOut {
            repo: repo.top.clone(),
            base: base.to_owned(),
            head,
        });
    }
    let git_dir = crate::git::line_path(&repo.git.run(&[
        "rev-parse",
        "--path-format=absolute",
        "--git-dir",
    ])?);
    let busy = [
        "MERGE_HEAD",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
        "rebase-merge",
        "rebase-apply",
    ];
    if busy
        .iter()
        .any(|f| git_dir.join(f).symlink_metadata().is_ok())
    {
        return Err(Error::OperationInProgress {
            repo: repo.top.clone(),
        });
    }
    Ok(())
}

/// Builds the merge commit without touching the checkout; a conflict names its paths.
fn merge_commit(repo: &Repo, base: &str, branch: &str, old: &str, tip: &str) -> Result<String> {
    let git = &repo.git;
    let args = ["merge-tree", "--write-tree", "-z", "--name-only", old, tip];
    let out = git.output(&args)?;
    let mut fields = nul_fields(&out.stdout);
    let tree = fields
        .next()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default();
    match out.status.code() {
        Some(0) => {}
        Some(1) => {
            // After the tree: the conflicted paths, then an empty field and the messages.
            let section = out.stdout.get(tree.len() + 1..).unwrap_or_default();
            let names = section.split(|b| *b == 0).take_while(|f| !f.is_empty());
            let mut paths: Vec<PathBuf> = names.map(bytes_path).collect();
            paths.dedup();
            return Err(Error::Conflict {
                repo: repo.top.clone(),
                base: base.to_owned(),
                branch: branch.to_owned(),
                paths,
            });
        }
        _ => return Err(git.failure(&args, &out)),
    }
    let message = format!("Merge branch '{branch}' into {base}");
    let mut committer = git.clone();
    // The operator's own identity when git has one; kaged's otherwise.
    if !git
        .output(&["var", "GIT_COMMITTER_IDENT"])?
        .status
        .success()
    {
        for (k, v) in [
            ("GIT_AUTHOR_NAME", "kaged"),
            ("GIT_AUTHOR_EMAIL", "kaged@localhost"),
            ("GIT_COMMITTER_NAME", "kaged"),
            ("GIT_COMMITTER_EMAIL", "kaged@localhost"),
        ] {
            committer = committer.with_env(k, v);
        }
    }
    committer.text(&["commit-tree", &tree, "-p", old, "-p", tip, "-m", &message])
}

/// Refuses when the main checkout has local changes (or untracked files) in a path the merge
/// changes, or in a directory above or below one.
fn refuse_dirty(repo: &Repo, old: &str, new: &str) -> Result<()> {
    let out = repo.git.run(&[
        "diff",
        "--no-ext-diff",
        "--name-only",
        "-z",
        "--no-renames",
        old,
        new,
    ])?;
    let affected: Vec<PathBuf> = nul_fields(&out).map(bytes_path).collect();
    let status = Status::read(&repo.git)?;
    let mut dirty: Vec<PathBuf> = status
        .entries
        .iter()
        .filter(|e| !matches!(e, Entry::Ignored { .. }))
        .map(|e| e.path().clone())
        .filter(|p| affected.iter().any(|a| overlaps(a, p)))
        .collect();
    if dirty.is_empty() {
        return Ok(());
    }
    dirty.sort();
    Err(Error::DirtyCheckout {
        repo: repo.top.clone(),
        paths: dirty,
    })
}

fn overlaps(affected: &Path, dirty: &Path) -> bool {
    // An untracked directory is reported with a trailing `/`.
    let bytes = dirty.as_os_str().as_encoded_bytes();
    let dirty = bytes_path(bytes.strip_suffix(b"/").unwrap_or(bytes));
    affected.starts_with(&dirty) || dirty.starts_with(affected)
}
