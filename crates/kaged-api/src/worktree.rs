//! A git worktree per agent run: how a project file and a start request ask for one, and the
//! API's view of runs, reviews, snapshots, merges and cleanups. Times are Unix seconds, as the
//! worktree registry keeps them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Where a declared agent or task works: in the project's own checkout, or in a fresh git
/// worktree on its own branch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum Workspace {
    #[default]
    Project,
    Worktree,
}

impl Workspace {
    pub fn is_project(&self) -> bool {
        *self == Workspace::Project
    }
}

/// The branch template when a declaration says `workspace: worktree` without `branch`.
pub const DEFAULT_BRANCH_TEMPLATE: &str = "kaged/{agent}/{n}";
/// The placeholders a branch template may use.
pub const BRANCH_PLACEHOLDERS: [&str; 2] = ["{agent}", "{n}"];

/// Why a branch template is unusable, or `None`: placeholders other than `{agent}` and `{n}`,
/// unbalanced braces, characters git refuses in a branch name whatever is substituted, or no
/// directory of its own (no `/`).
pub fn branch_template_problem(template: &str) -> Option<String> {
    if template.is_empty() {
        return Some("the branch template is empty; use e.g. \"kaged/{agent}/{n}\"".into());
    }
    let mut rest = template;
    let mut literal = String::new();
    while let Some(open) = rest.find(['{', '}']) {
        literal.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Some(format!(
                "a `}}` without its `{{` in branch template {template:?}; placeholders are {}",
                BRANCH_PLACEHOLDERS.join(" and ")
            ));
        }
        let Some(close) = rest[open..].find('}') else {
            return Some(format!(
                "an unclosed `{{` in branch template {template:?}; placeholders are {}",
                BRANCH_PLACEHOLDERS.join(" and ")
            ));
        };
        let placeholder = &rest[open..open + close + 1];
        if !BRANCH_PLACEHOLDERS.contains(&placeholder) {
            return Some(format!(
                "unknown placeholder {placeholder} in branch template {template:?}; only {} \
                 exist",
                BRANCH_PLACEHOLDERS.join(" and ")
            ));
        }
        literal.push('x');
        rest = &rest[open + close + 1..];
    }
    literal.push_str(rest);
    if let Some(why) = ref_name_problem(&literal) {
        return Some(format!("branch template {template:?} {why}"));
    }
    // A run's cage may write the directory its branch lives in (a commit renames a lock file
    // there); beside `main` in refs/heads, that would let it move `main`.
    if !literal.contains('/') {
        return Some(format!(
            "branch template {template:?} has no `/`: a run's branch must live in a directory \
             of its own under refs/heads, never beside `main`, because the run's cage may \
             write that directory; use e.g. \"kaged/{{agent}}/{{n}}\" or \"fix/{{n}}\""
        ));
    }
    None
}

/// `git check-ref-format`'s rules for a branch name, checked without running git.
pub fn ref_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.starts_with('-') {
        return Some("starts with `-`");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Some("has an empty path component (a leading, trailing or doubled `/`)");
    }
    if name.ends_with('.') || name.contains("..") || name.contains("@{") || name == "@" {
        return Some("contains `..`, `@{` or a trailing `.`, which git refuses");
    }
    if name
        .chars()
        .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
    {
        return Some("contains a space, a control character or one of ~ ^ : ? * [ \\");
    }
    if name
        .split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        return Some("has a component starting with `.` or ending in `.lock`");
    }
    None
}

/// `workspace` of `POST /api/v1/projects/{id}/sessions`: overrides what the project file
/// declares for this one start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkspaceChoice {
    /// The project's own checkout.
    Project,
    /// A fresh worktree on a new branch from `base` (default: the declaration's, else the
    /// branch checked out in the project), named by `branch` (a template, default the
    /// declaration's, else `kaged/{agent}/{n}`).
    Worktree {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
    },
    /// The live worktree of an earlier run: a shell beside it, or another run on its branch.
    Existing { run: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeState {
    Active,
    Removed,
}

/// A run's worktree as kaged recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeRun {
    pub run: String,
    pub project_id: String,
    /// The main checkout.
    pub repo: String,
    pub path: String,
    pub branch: String,
    pub base: String,
    /// `base` when the worktree was created.
    pub base_oid: String,
    pub state: WorktreeState,
    /// `refs/kaged/snapshots/<run>`, once a snapshot was taken.
    pub snapshot: Option<String>,
    pub snapshot_oid: Option<String>,
    pub created_at: i64,
    /// When the last session in it ended; the sweep counts idle time from here.
    pub ended_at: Option<i64>,
    pub removed_at: Option<i64>,
    /// Sessions running in it now.
    pub sessions: Vec<String>,
}

/// A snapshot commit: everything a removed worktree held, committed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeSnapshot {
    pub reference: String,
    pub run: String,
    pub oid: String,
    pub time: i64,
}

/// `GET /api/v1/projects/{id}/worktrees`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeList {
    /// Every run kaged made a worktree for in this project's repository, oldest first.
    pub runs: Vec<WorktreeRun>,
    /// The snapshots in the repository, oldest first.
    pub snapshots: Vec<WorktreeSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeCommit {
    pub oid: String,
    pub author_name: String,
    pub author_email: String,
    pub time: i64,
    pub summary: String,
}

/// A path that differs from where the branch left `base`, committed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeFile {
    pub path: String,
    /// `modified`, `added`, `deleted`, `renamed`, `copied`, `type_changed`, `unmerged`.
    pub change: String,
}

/// `GET /api/v1/worktrees/{run}`: what a run did, for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeReview {
    pub run: WorktreeRun,
    pub head: String,
    pub merge_base: String,
    /// Commits on the branch that `base` lacks, newest first.
    pub commits: Vec<WorktreeCommit>,
    /// Patch from the merge base to the branch's head.
    pub diff: String,
    /// Patch from the head to the working tree, untracked files included.
    pub uncommitted_diff: String,
    pub files: Vec<WorktreeFile>,
    /// Tracked paths changed but not committed.
    pub changed: Vec<String>,
    pub untracked: Vec<String>,
}

/// What a cleanup found that removing would have lost; all of it is in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeLoss {
    pub changed: Vec<String>,
    pub untracked: Vec<String>,
    /// Commits in neither `base` nor any remote branch, newest first.
    pub unpushed: Vec<String>,
    /// Files git ignores that the removal deleted, as asked (`discard_ignored`): no snapshot
    /// holds them. An ignored directory is listed once (`target/`).
    pub ignored: Vec<String>,
}

/// The query of `DELETE /api/v1/worktrees/{run}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct RemoveWorktreeParams {
    /// Also delete the files git ignores (`target/`, `.env`), which no snapshot keeps. Without
    /// it a worktree holding any is refused (409, the paths in `details.paths`).
    #[serde(default)]
    pub discard_ignored: bool,
}

/// `DELETE /api/v1/worktrees/{run}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeRemoved {
    pub run: String,
    pub loss: WorktreeLoss,
    /// Taken first whenever `loss` is not empty.
    pub snapshot: Option<WorktreeSnapshot>,
}

/// `POST /api/v1/worktrees/{run}/restore`: the snapshot of `run` into a new run's worktree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct RestoreWorktree {
    /// The new branch; default: `<the run's branch>-restored-<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategy {
    /// Fast-forward when `base` has nothing new, else a merge commit.
    #[default]
    Auto,
    FastForward,
    MergeCommit,
}

/// `POST /api/v1/worktrees/{run}/merge`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct MergeWorktree {
    #[serde(default)]
    pub mode: MergeStrategy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct WorktreeMerged {
    pub run: String,
    pub base: String,
    /// `base` before and after.
    pub old: String,
    pub new: String,
    pub fast_forward: bool,
}

/// `DELETE /api/v1/worktrees/{run}/branch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct BranchDeleted {
    pub run: String,
    pub branch: String,
}

/// A worktree git knows about that kaged did not create; kaged never removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct UnknownWorktree {
    pub path: String,
    pub head: Option<String>,
    pub branch: Option<String>,
    pub locked: bool,
    /// git reports its directory gone.
    pub prunable: bool,
}

/// `GET /api/v1/projects/{id}/worktrees/unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct UnknownWorktreeList {
    pub worktrees: Vec<UnknownWorktree>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn branch_templates_name_their_problem() {
        assert_eq!(branch_template_problem("kaged/{agent}/{n}"), None);
        assert_eq!(branch_template_problem("fix/{agent}-{n}"), None);
        let cases = [
            ("fix-{n}", "has no `/`"),
            ("", "is empty"),
            ("kaged/{user}/{n}", "unknown placeholder {user}"),
            ("kaged/{agent", "an unclosed `{`"),
            ("kaged/agent}", "a `}` without its `{`"),
            ("kaged/{n}.lock", "ending in `.lock`"),
            ("kaged /{n}", "contains a space"),
            ("/kaged/{n}", "empty path component"),
            ("kaged/../{n}", "contains `..`"),
        ];
        for (template, part) in cases {
            let got = branch_template_problem(template).unwrap_or_default();
            assert!(got.contains(part), "{template:?}: {got}");
        }
    }
}
