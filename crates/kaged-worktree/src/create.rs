//! Creating a worktree on a fresh branch, and restoring a snapshot into one.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::git::{Git, line_path, nul_fields};
use crate::journal::{self, Plan, Record, State};
use crate::{Phase, Step, Worktrees};

pub struct CreateRequest {
    /// The run's id: the worktree's directory name and its snapshot ref's last component.
    pub run: String,
    /// The operator's checkout (any directory inside it).
    pub repo: PathBuf,
    /// The branch to start from; `None` takes the branch checked out in `repo`.
    pub base: Option<String>,
    /// The new branch, for example from [`branch_name`].
    pub branch: String,
    /// Where worktrees live (absolute, outside the repository); this one goes to `<dir>/<run>`.
    pub dir: PathBuf,
}

pub struct RestoreRequest {
    /// The run whose snapshot is restored.
    pub from_run: String,
    /// The new run that gets the restored worktree.
    pub run: String,
    pub branch: String,
    pub dir: PathBuf,
}

/// Expands a branch template such as `kaged/{agent}/{n}`.
pub fn branch_name(template: &str, agent: &str, n: u64) -> String {
    template
        .replace("{agent}", agent)
        .replace("{n}", &n.to_string())
}

impl Worktrees {
    /// The first expansion of `template` for `agent`, with `n` counting from 1, that names no
    /// branch in `repo` and no branch of a recorded worktree (a deleted branch's number is not
    /// reused while its record stays).
    pub fn next_branch(&self, repo: &Path, template: &str, agent: &str) -> Result<(u64, String)> {
        let repo = Repo::open(repo)?;
        let out = repo
            .git
            .run(&["for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads"])?;
        let mut taken: HashSet<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_owned)
            .collect();
        taken.extend(self.records()?.into_iter().map(|r| r.branch));
        let mut n = 1;
        loop {
            let name = branch_name(template, agent, n);
            if !taken.contains(&name) {
                return Ok((n, name));
            }
            if !template.contains("{n}") {
                return Err(Error::BranchExists {
                    repo: repo.top,
                    branch: name,
                });
            }
            n += 1;
        }
    }
}

/// What a create (or restore) will do, journaled before the branch exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CreatePlan {
    pub run: String,
    pub repo: PathBuf,
    pub path: PathBuf,
    pub branch: String,
    pub base: String,
    /// What the branch starts at: `base`'s commit, or the snapshot's parent on restore.
    pub start_oid: String,
    pub base_oid: String,
    /// On restore, the snapshot commit whose tree the worktree gets.
    pub restore: Option<String>,
}

impl Worktrees {
    /// Creates branch `branch` from `base` and a worktree for it at `<dir>/<run>`. Refuses bad
    /// input before touching anything.
    pub fn create(&self, req: &CreateRequest) -> Result<Record> {
        let repo = Repo::open(&req.repo)?;
        let base = match &req.base {
            Some(b) => b.clone(),
            None => repo.current_branch()?,
        };
        let base_oid = repo.branch_oid(&base)?;
        repo.refuse_submodules(&base, &base_oid)?;
        let plan = self.validate(&repo, &req.run, &req.branch, &req.dir, base, base_oid)?;
        self.run_create(plan)
    }

    /// Restores a snapshot into a fresh worktree on a new branch: the branch starts at the
    /// commit the snapshot was taken on, and the working tree gets every file of the snapshot,
    /// uncommitted and untracked ones included, as uncommitted changes.
    pub fn restore(&self, req: &RestoreRequest) -> Result<Record> {
        let from = self
            .record(&req.from_run)?
            .ok_or_else(|| Error::UnknownRun {
                run: req.from_run.clone(),
            })?;
        let repo = Repo::open(&from.repo)?;
        let reference = crate::snapshot::snapshot_ref(&req.from_run);
        let snap = repo
            .git
            .resolve(&reference)?
            .ok_or(Error::SnapshotNotFound {
                repo: repo.top.clone(),
                reference,
            })?;
        let parent = repo.git.text(&["rev-parse", &format!("{snap}^1")])?;
        let mut plan = self.validate(
            &repo,
            &req.run,
            &req.branch,
            &req.dir,
            from.base.clone(),
            from.base_oid.clone(),
        )?;
        plan.start_oid = parent;
        plan.restore = Some(snap);
        self.run_create(plan)
    }

    fn validate(
        &self,
        repo: &Repo,
        run: &str,
        branch: &str,
        dir: &Path,
        base: String,
        base_oid: String,
    ) -> Result<CreatePlan> {
        check_run(run)?;
        if self.record(run)?.is_some() || journal::busy(&self.db, run)? {
            return Err(Error::RunExists {
                run: run.to_owned(),
            });
        }
        repo.check_new_branch(branch)?;
        repo.check_unlocked()?;
        let path = dir.join(run);
        journal::text(&path)?;
        if !dir.is_absolute() {
            return Err(Error::UnsupportedPath {
                path: dir.to_owned(),
                why: "is relative; configure an absolute worktree directory",
            });
        }
        if path.symlink_metadata().is_ok() {
            return Err(Error::PathExists { path });
        }
        if resolved(&path)?.starts_with(&repo.top_resolved) {
            return Err(Error::InsideRepository {
                path,
                repo: repo.top.clone(),
            });
        }
        Ok(CreatePlan {
            run: run.to_owned(),
            repo: repo.top.clone(),
            path,
            branch: branch.to_owned(),
            base,
            start_oid: base_oid.clone(),
            base_oid,
            restore: None,
        })
    }

    fn run_create(&self, plan: CreatePlan) -> Result<Record> {
        let journaled = Plan::Create(plan.clone());
        let id = journal::begin(&self.db, &plan.run, &journaled, crate::now())?;
        match self.create_steps(id, &plan) {
            Ok(rec) => Ok(rec),
            Err(e @ Error::Failpoint { .. }) => Err(e),
            Err(e) => {
                // A real failure mid-way: undo exactly what the journal says, as recovery would.
                if let Err(undo) = self.recover_create(id, &plan) {
                    tracing::error!(run = %plan.run, error = %undo, "could not undo a failed create");
                }
                Err(e)
            }
        }
    }

    fn create_steps(&self, id: i64, plan: &CreatePlan) -> Result<Record> {
        let git = Git::at(&plan.repo);
        let journaled = Plan::Create(plan.clone());
        let branch_ref = format!("refs/heads/{}", plan.branch);
        let reflog = format!("kaged: branch for run {}", plan.run);

        self.step(Step::CreateBranch, Phase::Before)?;
        // An empty old value makes this create-only: an existing branch is never moved.
        git.run(&[
            "update-ref",
            "-m",
            &reflog,
            &branch_ref,
            &plan.start_oid,
            "",
        ])?;
        self.step(Step::CreateBranch, Phase::After)?;
        journal::advance(&self.db, id, "branch_created", &journaled)?;

        self.step(Step::AddWorktree, Phase::Before)?;
        if let Some(parent) = plan.path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                action: "cannot create the worktree directory",
                path: parent.to_owned(),
                source,
            })?;
        }
        let mut add = vec![
            "worktree".into(),
            "add".into(),
            "--quiet".into(),
            plan.path.clone().into_os_string(),
        ];
        add.push(plan.branch.clone().into());
        git.run(&add)?;
        self.step(Step::AddWorktree, Phase::After)?;
        journal::advance(&self.db, id, "worktree_added", &journaled)?;

        // Read once, right after git wrote it and before any cage could touch the `.git` file.
        let fresh = Git::at(&plan.path);
        let admin_dir = line_path(&fresh.run(&["rev-parse", "--absolute-git-dir"])?);
        let common_dir =
            line_path(&fresh.run(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?);
        if let Some(snap) = &plan.restore {
            self.step(Step::RestoreContent, Phase::Before)?;
            crate::snapshot::check_out_content(&Git::worktree(&plan.path, &admin_dir), snap)?;
            self.step(Step::RestoreContent, Phase::After)?;
            journal::advance(&self.db, id, "content_restored", &journaled)?;
        }

        self.step(Step::Register, Phase::Before)?;
        let rec = Record {
            run: plan.run.clone(),
            repo: plan.repo.clone(),
            path: plan.path.clone(),
            admin_dir,
            common_dir,
            branch: plan.branch.clone(),
            base: plan.base.clone(),
            base_oid: plan.base_oid.clone(),
            state: State::Active,
            snapshot: None,
            snapshot_oid: None,
            created_at: crate::now(),
            ended_at: None,
            removed_at: None,
        };
        let tx = self.db.unchecked_transaction()?;
        journal::insert(&tx, &rec)?;
        journal::finish(&tx, id)?;
        tx.commit()?;
        Ok(rec)
    }
}

/// The operator's checkout, validated.
pub(crate) struct Repo {
    pub git: Git,
    pub top: PathBuf,
    top_resolved: PathBuf,
    pub common_dir: PathBuf,
}

impl Repo {
    pub(crate) fn open(path: &Path) -> Result<Repo> {
        journal::text(path)?;
        let probe = Git::at(path);
        let out = probe.output(&["rev-parse", "--path-format=absolute", "--show-toplevel"])?;
        if !out.status.success() {
            return Err(Error::NotARepository {
                path: path.to_owned(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let top = line_path(&out.stdout);
        let git = Git::at(&top);
        let common_dir =
            line_path(&git.run(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?);
        if git.run(&["rev-list", "-n1", "--all"])?.is_empty() {
            return Err(Error::NoCommits { repo: top });
        }
        Ok(Repo {
            top_resolved: resolved(&top)?,
            git,
            top,
            common_dir,
        })
    }

    /// The branch checked out in the main checkout.
    pub(crate) fn current_branch(&self) -> Result<String> {
        let out = self
            .git
            .output(&["symbolic-ref", "-q", "--short", "HEAD"])?;
        if !out.status.success() {
            return Err(Error::DetachedHead {
                repo: self.top.clone(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub(crate) fn branch_oid(&self, base: &str) -> Result<String> {
        self.git
            .resolve(&format!("refs/heads/{base}"))?
            .ok_or_else(|| Error::BaseNotFound {
                repo: self.top.clone(),
                base: base.to_owned(),
            })
    }

    fn check_new_branch(&self, branch: &str) -> Result<()> {
        let full = format!("refs/heads/{branch}");
        let out = self.git.output(&["check-ref-format", &full])?;
        if branch.starts_with('-') || !out.status.success() {
            return Err(Error::InvalidBranch {
                branch: branch.to_owned(),
                detail: "git check-ref-format refuses it".to_owned(),
            });
        }
        if self.git.resolve(&full)?.is_some() {
            return Err(Error::BranchExists {
                repo: self.top.clone(),
                branch: branch.to_owned(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_unlocked(&self) -> Result<()> {
        let lock = self.common_dir.join("index.lock");
        if lock.symlink_metadata().is_ok() {
            return Err(Error::Locked {
                repo: self.top.clone(),
                lock,
            });
        }
        Ok(())
    }

    /// A worktree does not get its submodules checked out, and a snapshot cannot capture work
    /// inside one, so repositories with submodules are refused up front.
    fn refuse_submodules(&self, base: &str, base_oid: &str) -> Result<()> {
        let out = self
            .git
            .run(&["ls-tree", "-r", "-z", "--full-tree", base_oid])?;
        let paths: Vec<PathBuf> = nul_fields(&out)
            .filter(|rec| rec.starts_with(b"160000 "))
            .filter_map(|rec| rec.iter().position(|b| *b == b'\t').map(|t| &rec[t + 1..]))
            .map(crate::git::bytes_path)
            .collect();
        if paths.is_empty() {
            return Ok(());
        }
        Err(Error::Submodules {
            repo: self.top.clone(),
            base: base.to_owned(),
            paths,
        })
    }
}

/// Run ids become a directory name and a ref component, so they are kept to a safe alphabet.
fn check_run(run: &str) -> Result<()> {
    let ok = !run.is_empty()
        && run.len() <= 64
        && !run.starts_with(['.', '-'])
        && !run.ends_with(".lock")
        && !run.contains("..")
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRun {
            run: run.to_owned(),
        })
    }
}

/// `path` with its longest existing prefix resolved through symlinks, so a worktree directory
/// reached through a symlink into the repository is still caught.
fn resolved(path: &Path) -> Result<PathBuf> {
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    while existing.symlink_metadata().is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().map_err(|source| Error::Io {
        action: "cannot resolve",
        path: existing.clone(),
        source,
    })?;
    for name in rest.iter().rev() {
        out.push(name);
    }
    // `..` after a missing component cannot be resolved on disk; refuse it rather than guess.
    if out.components().any(|c| c == Component::ParentDir) {
        return Err(Error::UnsupportedPath {
            path: path.to_owned(),
            why: "contains `..`; configure a plain absolute worktree directory",
        });
    }
    Ok(out)
}
