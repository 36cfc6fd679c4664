//! Every refusal names the repository, branch, ref or path it is about and says what to do.
//! Paths print with `{:?}` so a space or newline in them stays visible.

use std::path::PathBuf;

use crate::{Phase, Step};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run git: {source}; install git {need} or newer and put it on PATH")]
    GitMissing {
        need: &'static str,
        source: std::io::Error,
    },
    #[error("git {found} is too old; kaged's worktrees need git {need} or newer")]
    GitTooOld { found: String, need: &'static str },
    #[error("`git {args}` failed in {dir:?} (exit {code}): {stderr}")]
    Git {
        dir: PathBuf,
        args: String,
        code: i32,
        stderr: String,
    },
    #[error("{path:?} is not a git working tree ({detail}); point the project at a non-bare clone")]
    NotARepository { path: PathBuf, detail: String },
    #[error("{path:?} {why}")]
    UnsupportedPath { path: PathBuf, why: &'static str },
    #[error("repository {repo:?} has no commits yet; commit something to branch from first")]
    NoCommits { repo: PathBuf },
    #[error(
        "repository {repo:?} has a detached HEAD, so there is no branch to use as base; name a base branch or `git -C {repo:?} switch <branch>`"
    )]
    DetachedHead { repo: PathBuf },
    #[error(
        "base branch {base:?} does not exist in {repo:?}; name an existing branch (`git -C {repo:?} branch --list`)"
    )]
    BaseNotFound { repo: PathBuf, base: String },
    #[error("{branch:?} is not a valid branch name ({detail}); change the branch template")]
    InvalidBranch { branch: String, detail: String },
    #[error(
        "branch {branch:?} already exists in {repo:?}; pick another run number or delete the branch"
    )]
    BranchExists { repo: PathBuf, branch: String },
    #[error(
        "run id {run:?} is not usable in a path and a ref; use letters, digits, '.', '_' and '-' (at most 64, not starting with '.' or '-')"
    )]
    InvalidRun { run: String },
    #[error("run {run:?} already has a worktree record; use a new run id")]
    RunExists { run: String },
    #[error(
        "an operation on run {run:?} did not finish; restart kaged so recovery completes or undoes it"
    )]
    Busy { run: String },
    #[error("no worktree is recorded for run {run:?}")]
    UnknownRun { run: String },
    #[error("the worktree of run {run:?} was already removed; restore its snapshot to work on it")]
    NotActive { run: String },
    #[error(
        "base {base:?} of {repo:?} contains submodules ({}), which kaged worktrees do not support; run the agent in the project root instead",
        list(paths)
    )]
    Submodules {
        repo: PathBuf,
        base: String,
        paths: Vec<PathBuf>,
    },
    #[error(
        "repository {repo:?} is locked by another git process ({lock:?} exists); wait for it to finish, or delete the lock file if no git is running"
    )]
    Locked { repo: PathBuf, lock: PathBuf },
    #[error("{path:?} already exists; worktrees are only created at fresh paths")]
    PathExists { path: PathBuf },
    #[error(
        "worktree path {path:?} is inside the working tree of {repo:?}; configure a worktree directory outside the repository"
    )]
    InsideRepository { path: PathBuf, repo: PathBuf },
    #[error(
        "worktree {worktree:?} holds nested git repositories ({}) a snapshot cannot capture; move them out or commit them, then retry",
        list(paths)
    )]
    NestedRepository {
        worktree: PathBuf,
        paths: Vec<PathBuf>,
    },
    #[error(
        "the .git file of worktree {path:?} no longer points at {expected:?}; something in the cage rewrote it, inspect it by hand before kaged touches the worktree again"
    )]
    Tampered { path: PathBuf, expected: PathBuf },
    #[error(
        "branch {branch:?} in {repo:?} has {commits} commit(s) not in {base:?} or any remote branch and no snapshot holds them; merge it, push it, or remove its worktree first (which snapshots)"
    )]
    Unmerged {
        repo: PathBuf,
        branch: String,
        base: String,
        commits: usize,
    },
    #[error("branch {branch:?} no longer exists in {repo:?}; there is nothing left to merge")]
    BranchNotFound { repo: PathBuf, branch: String },
    #[error(
        "branch {branch:?} is still checked out in worktree {path:?}; remove the worktree first"
    )]
    BranchInUse { branch: String, path: PathBuf },
    #[error(
        "base {base:?} is not checked out in the main checkout {repo:?} (HEAD is {head}); `git -C {repo:?} switch {base}` there, then merge again"
    )]
    BaseNotCheckedOut {
        repo: PathBuf,
        base: String,
        head: String,
    },
    #[error(
        "the main checkout {repo:?} is in the middle of a merge, rebase or cherry-pick; finish or abort it, then merge again"
    )]
    OperationInProgress { repo: PathBuf },
    #[error(
        "the main checkout {repo:?} has local changes in paths the merge would touch ({}); commit or stash them, then merge again",
        list(paths)
    )]
    DirtyCheckout { repo: PathBuf, paths: Vec<PathBuf> },
    #[error(
        "merging {branch:?} into {base:?} in {repo:?} conflicts in {}; rebase the branch onto {base:?} in its worktree, then merge again",
        list(paths)
    )]
    Conflict {
        repo: PathBuf,
        base: String,
        branch: String,
        paths: Vec<PathBuf>,
    },
    #[error(
        "{base:?} in {repo:?} has commits {branch:?} lacks, so a fast-forward is impossible; merge with a merge commit or rebase the branch"
    )]
    NotFastForward {
        repo: PathBuf,
        base: String,
        branch: String,
    },
    #[error("{branch:?} has nothing that {base:?} in {repo:?} lacks; there is nothing to merge")]
    NothingToMerge {
        repo: PathBuf,
        base: String,
        branch: String,
    },
    #[error("snapshot {reference} does not exist in {repo:?}; list snapshots to pick another")]
    SnapshotNotFound { repo: PathBuf, reference: String },
    #[error(
        "worktree {path:?} changed while kaged took its snapshot; is its run still going? remove it again once it has ended"
    )]
    Changed { path: PathBuf },
    #[error(
        "git refused to remove worktree {path:?}: {stderr}; it is kept, with its branch, inspect it by hand"
    )]
    RemoveRefused { path: PathBuf, stderr: String },
    #[error(
        "worktree {path:?} holds files git ignores ({}), which no snapshot keeps and removing \
         would delete; copy what you need, then remove it again saying to discard them",
        list_paths(ignored)
    )]
    IgnoredFiles {
        path: PathBuf,
        ignored: Vec<PathBuf>,
    },
    #[error("recovery of run {run:?}: {detail}")]
    Recovery { run: String, detail: String },
    #[error("{action} {path:?}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("worktree journal: {0}; check the state dir's database")]
    Db(#[from] rusqlite::Error),
    #[error(
        "worktree journal schema version {found} is newer than this kaged knows ({known}); upgrade kaged"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("journal entry {id} is unreadable ({detail}); inspect the worktree_ops table")]
    Journal { id: i64, detail: String },
    #[error("stopped {phase:?} {step:?} by a test failpoint")]
    Failpoint { step: Step, phase: Phase },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn list(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 10;
    let mut s = paths
        .iter()
        .take(SHOWN)
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        s.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    s
}

/// At most a few paths, for a message; the error's field has them all.
fn list_paths(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 5;
    let mut out: Vec<String> = paths
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    if paths.len() > SHOWN {
        out.push(format!("and {} more", paths.len() - SHOWN));
    }
    out.join(", ")
}
