//! Worktrees: the workspace a session starts in, and reviewing, merging, cleaning up and
//! restoring a run's worktree. Every operation writes a `worktree.*` audit row, a refusal
//! included (`worktree.refused`, with what was refused and why).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kaged_api::worktree::{DEFAULT_BRANCH_TEMPLATE, branch_template_problem, ref_name_problem};
use kaged_api::{
    BranchDeleted, Identity, MergeStrategy, MergeWorktree, RestoreWorktree, StartSession,
    UnknownWorktree, UnknownWorktreeList, Workspace, WorkspaceChoice, WorktreeCommit, WorktreeFile,
    WorktreeList, WorktreeLoss, WorktreeMerged, WorktreeRemoved, WorktreeReview, WorktreeRun,
};
use kaged_store::EventType;
use kaged_worktree::{Change, CreateRequest, MergeMode, Record, RestoreRequest, State};
use serde_json::json;

use crate::Daemon;
use crate::error::{OpError, OpResult};
use crate::owners::Need;
use crate::projects::LoadedProject;
use crate::worktrees::{Hub, linked_git, op_error, removal_json, snapshot_view};

/// Where a session will work, decided before its plan consumes the request.
pub(crate) enum WorkspacePlan {
    /// A new worktree on a branch named by `template` from `base`.
    Fresh {
        base: Option<String>,
        template: String,
        /// What `{agent}` expands to: the agent's or task's name, or `shell`.
        agent: String,
    },
    /// The live worktree of an earlier run.
    Existing(String),
}

/// A worktree a session is about to start in.
pub(crate) struct Place {
    pub run: String,
    pub fresh: bool,
    /// The project as the cage sees it: rooted in the worktree, with its git dirs.
    pub project: LoadedProject,
}

fn paths(ps: &[PathBuf]) -> Vec<String> {
    ps.iter().map(|p| p.display().to_string()).collect()
}

/// What the request asks for, else what the agent or task declares.
pub(crate) fn workspace_plan(
    project: &LoadedProject,
    req: &StartSession,
) -> OpResult<Option<WorkspacePlan>> {
    let declared = if let Some(agent) = &req.agent {
        project
            .project
            .agents()
            .into_iter()
            .find(|(n, _)| n == agent)
            .map(|(_, s)| (s.workspace, s.base.clone(), s.branch.clone()))
    } else if let Some(task) = &req.task {
        project
            .project
            .tasks
            .get(task)
            .map(|t| (t.workspace, t.base.clone(), t.branch.clone()))
    } else {
        None
    };
    // An unknown agent or task is reported by the plan, with its own message.
    let (kind, base, branch) = declared.unwrap_or((Workspace::Project, None, None));
    let agent = req
        .agent
        .clone()
        .or_else(|| req.task.clone())
        .unwrap_or_else(|| "shell".to_owned());
    let (base, branch) = match &req.workspace {
        None if kind == Workspace::Project => return Ok(None),
        None => (base, branch),
        Some(WorkspaceChoice::Project) => return Ok(None),
        Some(WorkspaceChoice::Existing { run }) => {
            return Ok(Some(WorkspacePlan::Existing(run.clone())));
        }
        Some(WorkspaceChoice::Worktree { base: b, branch: t }) => {
            (b.clone().or(base), t.clone().or(branch))
        }
    };
    if let Some(why) = base.as_deref().and_then(ref_name_problem) {
        return Err(OpError::Invalid(format!(
            "workspace base {:?} is not a branch name git accepts: it {why}",
            base.unwrap_or_default()
        )));
    }
    let template = branch.unwrap_or_else(|| DEFAULT_BRANCH_TEMPLATE.to_owned());
    if let Some(why) = branch_template_problem(&template) {
        return Err(OpError::Invalid(format!("workspace branch: {why}")));
    }
    Ok(Some(WorkspacePlan::Fresh {
        base,
        template,
        agent,
    }))
}

impl Daemon {
    /// Creates the worktree (or finds the live one) a session starts in; audited either way.
    pub(crate) async fn enter_worktree(
        &self,
        who: &Identity,
        project: &LoadedProject,
        plan: WorkspacePlan,
        session: &str,
    ) -> OpResult<Place> {
        let hub = self.worktree_hub()?;
        let (rec, fresh) = match plan {
            WorkspacePlan::Fresh {
                base,
                template,
                agent,
            } => {
                let (root, dir, run) = (project.root.clone(), hub.dir.clone(), session.to_owned());
                let created = hub
                    .call(move |w| {
                        let (_, branch) = w.next_branch(&root, &template, &agent)?;
                        w.create(&CreateRequest {
                            run,
                            repo: root,
                            base,
                            branch,
                            dir,
                        })
                    })
                    .await;
                let data = |r: &Record| {
                    json!({"run": r.run, "path": r.path, "branch": r.branch, "base": r.base,
                           "base_oid": r.base_oid, "session": session})
                };
                let rec = self
                    .audited(who, &project.id, "create", session, created, |r| {
                        (EventType::WorktreeCreated, data(r))
                    })
                    .await?;
                (rec, true)
            }
            WorkspacePlan::Existing(run) => {
                self.may_touch_run(who, &run, Need::Drive)?;
                let rec = self.live_record(&hub, &run).await?;
                if !project.root.starts_with(&rec.repo) {
                    return Err(OpError::Invalid(format!(
                        "run {run} worked in {}, which is not project {}'s repository",
                        rec.repo.display(),
                        project.id
                    )));
                }
                (rec, false)
            }
        };
        let rel = project
            .root
            .strip_prefix(&rec.repo)
            .unwrap_or(Path::new(""));
        let git = match linked_git(&rec) {
            Ok(git) => git,
            Err(e) => {
                if fresh {
                    self.abandon_worktree(who, &project.id, &rec.run).await;
                }
                return Err(e);
            }
        };
        Ok(Place {
            run: rec.run.clone(),
            fresh,
            project: LoadedProject {
                root: rec.path.join(rel),
                linked_git: Some(git),
                ..project.clone()
            },
        })
    }

    /// Undoes a fresh worktree whose session never started: it holds nothing yet.
    pub(crate) async fn abandon_worktree(&self, who: &Identity, project: &str, run: &str) {
        let Ok(hub) = self.worktree_hub() else { return };
        let r = run.to_owned();
        let undone = hub
            .call(move |w| {
                w.remove_discarding_ignored(&r)
                    .and_then(|_| w.delete_branch(&r))
            })
            .await;
        let data = json!({"run": run, "by": "failed start", "undone": undone.is_ok(),
                          "error": undone.as_ref().err().map(ToString::to_string)});
        self.audit_worktree(
            EventType::WorktreeRemoved,
            Some(&who.user_id),
            Some(project),
            data,
        )
        .await;
    }

    async fn live_record(&self, hub: &Hub, run: &str) -> OpResult<Record> {
        let r = run.to_owned();
        let rec = hub
            .call(move |w| w.record(&r))
            .await?
            .ok_or_else(|| OpError::not_found("worktree run", run))?;
        match rec.state {
            State::Active => Ok(rec),
            State::Removed => Err(op_error(kaged_worktree::Error::NotActive {
                run: run.to_owned(),
            })),
        }
    }

    /// Writes the outcome's audit row: `kind` with its data, or `worktree.refused`.
    async fn audited<T>(
        &self,
        who: &Identity,
        project: &str,
        op: &str,
        run: &str,
        result: OpResult<T>,
        row: impl FnOnce(&T) -> (EventType, serde_json::Value),
    ) -> OpResult<T> {
        let (kind, data) = match &result {
            Ok(v) => row(v),
            Err(e) => (
                EventType::WorktreeRefused,
                json!({"op": op, "run": run, "code": e.code(), "message": e.to_string()}),
            ),
        };
        self.audit_worktree(kind, Some(&who.user_id), Some(project), data)
            .await;
        result
    }

    /// A run belongs to whoever started the session that made its worktree (the run's id is
    /// that session's); a restored run to whoever restored it. A run with neither on record
    /// is only an admin's (with one operator, that operator is the admin): that fails closed.
    fn may_touch_run(&self, who: &Identity, run: &str, need: Need) -> OpResult<()> {
        let owners = &self.inner.owners;
        match self.find(who, run, need) {
            Ok(_) => Ok(()),
            Err(OpError::NotFound { .. }) => {
                let owner = self.worktree_hub().ok().and_then(|h| h.owner_of(run));
                let allowed = match &owner {
                    Some(owner) => owners.allows(who, owner, run, need),
                    None => owners.is_admin(who),
                };
                if allowed {
                    return Ok(());
                }
                Err(OpError::Forbidden(match owner {
                    Some(owner) => format!(
                        "run {run} was restored by {owner}; {} may not act on it. Ask {owner} \
                         or an admin",
                        who.user_id
                    ),
                    None => format!(
                        "no session of run {run} records an owner (or there is no such run); \
                         only an admin may act on it. Ask an admin"
                    ),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// The run's record and the loaded project whose repository it is in, once `who` may
    /// do what `need` says with it.
    async fn run_of(
        &self,
        who: &Identity,
        run: &str,
        need: Need,
    ) -> OpResult<(Arc<Hub>, Record, String)> {
        self.may_touch_run(who, run, need)?;
        let hub = self.worktree_hub()?;
        let r = run.to_owned();
        let rec = hub
            .call(move |w| w.record(&r))
            .await?
            .ok_or_else(|| OpError::not_found("worktree run", run))?;
        let project = self
            .inner
            .projects
            .list()
            .into_iter()
            .find(|p| p.root.starts_with(&rec.repo))
            .map(|p| p.id)
            .ok_or_else(|| {
                OpError::Conflict(format!(
                    "no loaded project is in {}, the repository of run {run}; load it first",
                    rec.repo.display()
                ))
            })?;
        Ok((hub, rec, project))
    }

    /// Every run with a worktree in the project's repository, and its snapshots.
    pub async fn worktrees(&self, who: &Identity, project_id: &str) -> OpResult<WorktreeList> {
        let project = self
            .inner
            .projects
            .get(project_id)
            .ok_or_else(|| OpError::not_found("project", project_id))?;
        let hub = self.worktree_hub()?;
        let Some(repo) = repo_top(&project.root).await else {
            return Ok(WorktreeList {
                runs: Vec::new(),
                snapshots: Vec::new(),
            });
        };
        let top = repo.clone();
        let (records, snapshots) = hub
            .call(move |w| Ok((w.records()?, w.snapshots(&top)?)))
            .await?;
        Ok(WorktreeList {
            runs: records
                .iter()
                .filter(|r| r.repo == repo && self.may_touch_run(who, &r.run, Need::See).is_ok())
                .map(|r| hub.view(r, project_id))
                .collect(),
            snapshots: snapshots.into_iter().map(snapshot_view).collect(),
        })
    }

    /// Worktrees git lists for the project's repository that kaged did not make.
    pub async fn unknown_worktrees(&self, project_id: &str) -> OpResult<UnknownWorktreeList> {
        let project = self
            .inner
            .projects
            .get(project_id)
            .ok_or_else(|| OpError::not_found("project", project_id))?;
        let hub = self.worktree_hub()?;
        let repo = repo_top(&project.root).await.ok_or_else(|| {
            OpError::Invalid(format!(
                "project {project_id} ({}) is not in a git repository",
                project.root.display()
            ))
        })?;
        let found = hub.call(move |w| w.unknown_worktrees(&repo)).await?;
        Ok(UnknownWorktreeList {
            worktrees: found
                .into_iter()
                .map(|u| UnknownWorktree {
                    path: u.path.display().to_string(),
                    head: u.head,
                    branch: u.branch,
                    locked: u.locked,
                    prunable: u.prunable,
                })
                .collect(),
        })
    }

    pub async fn worktree_review(&self, who: &Identity, run: &str) -> OpResult<WorktreeReview> {
        let (hub, _, project) = self.run_of(who, run, Need::See).await?;
        let r = run.to_owned();
        let review = hub.call(move |w| w.review(&r)).await?;
        Ok(WorktreeReview {
            run: hub.view(&review.record, &project),
            head: review.head,
            merge_base: review.merge_base,
            commits: review
                .commits
                .into_iter()
                .map(|c| WorktreeCommit {
                    oid: c.oid,
                    author_name: c.author_name,
                    author_email: c.author_email,
                    time: c.time,
                    summary: c.summary,
                })
                .collect(),
            diff: review.diff,
            uncommitted_diff: review.uncommitted_diff,
            files: review
                .files
                .iter()
                .map(|f| WorktreeFile {
                    path: f.path.display().to_string(),
                    change: change_name(f.change).to_owned(),
                })
                .collect(),
            changed: review
                .status
                .changed()
                .map(|p| p.display().to_string())
                .collect(),
            untracked: review
                .status
                .untracked()
                .map(|p| p.display().to_string())
                .collect(),
        })
    }

    /// Removes the worktree, snapshotting first whatever removing would lose. Refused while a
    /// session works in it.
    pub async fn remove_worktree(
        &self,
        who: &Identity,
        run: &str,
        discard_ignored: bool,
    ) -> OpResult<WorktreeRemoved> {
        let (hub, _, project) = self.run_of(who, run, Need::Drive).await?;
        let sessions = self.live_sessions_in(&hub, run);
        let result = if sessions.is_empty() {
            let r = run.to_owned();
            hub.call(move |w| {
                if discard_ignored {
                    w.remove_discarding_ignored(&r)
                } else {
                    w.remove(&r)
                }
            })
            .await
        } else {
            Err(OpError::Conflict(format!(
                "session(s) {} still run in the worktree of run {run}; end them first",
                sessions.join(", ")
            )))
        };
        let removal = self
            .audited(who, &project, "remove", run, result, |r| {
                (EventType::WorktreeRemoved, removal_json(r, &who.user_id))
            })
            .await?;
        Ok(WorktreeRemoved {
            run: removal.run,
            loss: WorktreeLoss {
                changed: paths(&removal.loss.changed),
                untracked: paths(&removal.loss.untracked),
                unpushed: removal.loss.unpushed,
                ignored: paths(&removal.loss.ignored),
            },
            snapshot: removal.snapshot.map(snapshot_view),
        })
    }

    /// Restores the run's snapshot into a new run's worktree on a new branch.
    pub async fn restore_worktree(
        &self,
        who: &Identity,
        run: &str,
        req: RestoreWorktree,
    ) -> OpResult<WorktreeRun> {
        let (hub, rec, project) = self.run_of(who, run, Need::Drive).await?;
        if let Some(why) = req.branch.as_deref().and_then(ref_name_problem) {
            return Err(OpError::Invalid(format!(
                "branch {:?} is not a branch name git accepts: it {why}",
                req.branch.unwrap_or_default()
            )));
        }
        let new_run = kaged_session::new_session_id()?;
        let (from, to, dir) = (run.to_owned(), new_run.clone(), hub.dir.clone());
        let template = format!("{}-restored-{{n}}", rec.branch);
        let restored = hub
            .call(move |w| {
                let branch = match req.branch {
                    Some(b) => b,
                    None => w.next_branch(&rec.repo, &template, "")?.1,
                };
                w.restore(&RestoreRequest {
                    from_run: from,
                    run: to,
                    branch,
                    dir,
                })
            })
            .await;
        let rec = self
            .audited(who, &project, "restore", run, restored, |r| {
                let data = json!({"from_run": run, "run": r.run, "path": r.path,
                                  "branch": r.branch, "snapshot": r.snapshot});
                (EventType::WorktreeRestored, data)
            })
            .await?;
        hub.set_owner(&rec.run, &who.user_id).await?;
        Ok(hub.view(&rec, &project))
    }

    pub async fn merge_worktree(
        &self,
        who: &Identity,
        run: &str,
        req: MergeWorktree,
    ) -> OpResult<WorktreeMerged> {
        let (hub, _, project) = self.run_of(who, run, Need::Drive).await?;
        let mode = match req.mode {
            MergeStrategy::Auto => MergeMode::Auto,
            MergeStrategy::FastForward => MergeMode::FastForwardOnly,
            MergeStrategy::MergeCommit => MergeMode::MergeCommit,
        };
        let r = run.to_owned();
        let merged = hub.call(move |w| w.merge(&r, mode)).await;
        let m = self
            .audited(who, &project, "merge", run, merged, |m| {
                let data = json!({"run": m.run, "base": m.base, "old": m.old, "new": m.new,
                                  "fast_forward": m.fast_forward, "mode": req.mode});
                (EventType::WorktreeMerged, data)
            })
            .await?;
        Ok(WorktreeMerged {
            run: m.run,
            base: m.base,
            old: m.old,
            new: m.new,
            fast_forward: m.fast_forward,
        })
    }

    /// Deletes a removed run's branch; refused while it holds work nothing else keeps.
    pub async fn delete_worktree_branch(
        &self,
        who: &Identity,
        run: &str,
    ) -> OpResult<BranchDeleted> {
        let (hub, rec, project) = self.run_of(who, run, Need::Drive).await?;
        let r = run.to_owned();
        let deleted = hub.call(move |w| w.delete_branch(&r)).await;
        self.audited(who, &project, "delete_branch", run, deleted, |()| {
            let data = json!({"run": run, "branch": rec.branch});
            (EventType::WorktreeBranchDeleted, data)
        })
        .await?;
        Ok(BranchDeleted {
            run: run.to_owned(),
            branch: rec.branch,
        })
    }
}

fn change_name(c: Change) -> &'static str {
    match c {
        Change::Unmodified => "unmodified",
        Change::Modified => "modified",
        Change::TypeChanged => "type_changed",
        Change::Added => "added",
        Change::Deleted => "deleted",
        Change::Renamed => "renamed",
        Change::Copied => "copied",
        Change::Unmerged => "unmerged",
    }
}

/// The top level of the git checkout holding `root`, or `None` outside git. Runs no hook:
/// `rev-parse` runs none, and the fsmonitor is off.
async fn repo_top(root: &Path) -> Option<PathBuf> {
    let out = tokio::process::Command::new("git")
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-C",
        ])
        .arg(root)
        .args(["rev-parse", "--show-toplevel"])
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(text.trim_end_matches('\n')))
}
