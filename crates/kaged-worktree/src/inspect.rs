//! Read-only views of a worktree: the review (commits, diffs, files touched), what removing it
//! would lose, and worktrees git knows that kaged does not.

use std::path::{Path, PathBuf};

use crate::Worktrees;
use crate::error::{Error, Result};
use crate::git::{Git, bytes_path, nul_fields};
use crate::journal::{Record, State};
use crate::snapshot::build_tree;
use crate::status::{Change, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub oid: String,
    pub author_name: String,
    pub author_email: String,
    pub time: i64,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: PathBuf,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub record: Record,
    pub head: String,
    /// Where the branch left `base` (the merge base with `base`'s current tip).
    pub merge_base: String,
    /// Commits on HEAD not in `base`, newest first.
    pub commits: Vec<Commit>,
    /// Patch from the merge base to HEAD.
    pub diff: String,
    /// Patch from HEAD to the working tree, untracked files included.
    pub uncommitted_diff: String,
    /// Every path that differs from the merge base, committed or not.
    pub files: Vec<FileChange>,
    pub status: Status,
}

/// What removing a worktree right now would lose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loss {
    /// Tracked paths changed (staged or not) against HEAD.
    pub changed: Vec<PathBuf>,
    pub untracked: Vec<PathBuf>,
    /// Commits on HEAD reachable from neither `base` nor any remote branch, newest first.
    pub unpushed: Vec<String>,
    /// Files and directories git ignores (`target/`, `.env`): no snapshot holds them, and
    /// `git worktree remove` deletes them, so a removal discards them only when told to.
    pub ignored: Vec<PathBuf>,
}

impl Loss {
    /// Nothing a snapshot would have to keep (ignored files are never snapshotted).
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.untracked.is_empty() && self.unpushed.is_empty()
    }
}

/// What git ignores in a worktree, an ignored directory once (`target/`), not its files.
pub(crate) fn ignored(wt: &Git) -> Result<Vec<PathBuf>> {
    let out = wt.run(&[
        "ls-files",
        "-z",
        "--others",
        "--ignored",
        "--exclude-standard",
        "--directory",
    ])?;
    Ok(crate::git::nul_fields(&out)
        .map(crate::git::bytes_path)
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWorktree {
    pub path: PathBuf,
    pub head: Option<String>,
    /// The full ref (`refs/heads/…`), `None` when detached.
    pub branch: Option<String>,
    pub locked: bool,
    /// git reports its directory gone.
    pub prunable: bool,
}

const DIFF: &[&str] = &[
    "diff",
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
    "--binary",
];

impl Worktrees {
    pub fn review(&self, run: &str) -> Result<Review> {
        let rec = self.active(run)?;
        check_gitfile(&rec)?;
        let wt = rec.git();
        let status = Status::read(&wt)?;
        let head = wt.text(&["rev-parse", "HEAD"])?;
        let base_tip = Git::at(&rec.repo)
            .resolve(&format!("refs/heads/{}", rec.base))?
            .unwrap_or_else(|| rec.base_oid.clone());
        let merge_base = wt.text(&["merge-base", &head, &base_tip])?;
        let tree = build_tree(&wt, &rec.admin_dir)?;
        Ok(Review {
            commits: commits(&wt, &format!("{merge_base}..{head}"))?,
            diff: diff(&wt, &merge_base, &head)?,
            uncommitted_diff: diff(&wt, &head, &tree)?,
            files: files(&wt, &merge_base, &tree)?,
            record: rec,
            head,
            merge_base,
            status,
        })
    }

    /// What removing the worktree would lose: the check [`Worktrees::remove`] makes first.
    pub fn would_lose(&self, run: &str) -> Result<Loss> {
        let rec = self.active(run)?;
        check_gitfile(&rec)?;
        let wt = rec.git();
        loss(&wt, &rec.base, &Status::read(&wt)?)
    }

    /// Worktrees of `repo` that git knows and kaged has no live record of. They are reported,
    /// never removed: they may be the operator's own.
    pub fn unknown_worktrees(&self, repo: &Path) -> Result<Vec<UnknownWorktree>> {
        let known: Vec<PathBuf> = self
            .records()?
            .into_iter()
            .filter(|r| r.state == State::Active)
            .map(|r| r.path)
            .collect();
        Ok(list_worktrees(&Git::at(repo))?
            .into_iter()
            .skip(1) // the main worktree
            .filter(|w| !known.iter().any(|k| same_path(k, &w.path)))
            .collect())
    }
}

/// `wt` is git for the worktree, or for its gitdir alone when the directory is gone.
pub(crate) fn loss(wt: &Git, base: &str, status: &Status) -> Result<Loss> {
    let mut rev_list = vec!["rev-list".to_owned(), "HEAD".to_owned(), "--not".to_owned()];
    let base = format!("refs/heads/{base}");
    if wt.resolve(&base)?.is_some() {
        rev_list.push(base);
    }
    rev_list.push("--remotes".to_owned());
    let out = wt.text(&rev_list)?;
    Ok(Loss {
        changed: status.changed().cloned().collect(),
        untracked: status.untracked().cloned().collect(),
        unpushed: out.lines().map(str::to_owned).collect(),
        ignored: Vec::new(),
    })
}

/// The worktree's `.git` file is writable in the cage. kaged never follows it, but a changed
/// one means someone tried to point git elsewhere, and the operator should look first.
pub(crate) fn check_gitfile(rec: &Record) -> Result<()> {
    let gitfile = rec.path.join(".git");
    let expected = format!("gitdir: {}", rec.admin_dir.display());
    // Missing, replaced by a directory, or pointing elsewhere: all the same to kaged.
    match std::fs::read(&gitfile) {
        Ok(content) if content.strip_suffix(b"\n").unwrap_or(&content) == expected.as_bytes() => {
            Ok(())
        }
        Ok(_) | Err(_) => Err(Error::Tampered {
            path: rec.path.clone(),
            expected: rec.admin_dir.clone(),
        }),
    }
}

fn commits(git: &Git, range: &str) -> Result<Vec<Commit>> {
    let out = git.run(&["log", "-z", "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%s", range])?;
    Ok(nul_fields(&out)
        .filter_map(|rec| {
            let text = String::from_utf8_lossy(rec);
            let f: Vec<&str> = text.trim_start_matches('\n').split('\x1f').collect();
            match f.as_slice() {
                [oid, name, email, time, summary] => Some(Commit {
                    oid: (*oid).to_owned(),
                    author_name: (*name).to_owned(),
                    author_email: (*email).to_owned(),
                    time: time.parse().unwrap_or(0),
                    summary: (*summary).to_owned(),
                }),
                _ => None,
            }
        })
        .collect())
}

fn diff(git: &Git, from: &str, to: &str) -> Result<String> {
    let mut args = DIFF.to_vec();
    args.extend([from, to]);
    Ok(String::from_utf8_lossy(&git.run(&args)?).into_owned())
}

fn files(git: &Git, from: &str, to: &str) -> Result<Vec<FileChange>> {
    let mut args = DIFF.to_vec();
    args.extend(["--name-status", "-z", "--no-renames", from, to]);
    let out = git.run(&args)?;
    let mut fields = nul_fields(&out);
    let mut files = Vec::new();
    while let (Some(code), Some(path)) = (fields.next(), fields.next()) {
        let change = match code.first() {
            Some(b'A') => Change::Added,
            Some(b'D') => Change::Deleted,
            Some(b'T') => Change::TypeChanged,
            _ => Change::Modified,
        };
        files.push(FileChange {
            path: bytes_path(path),
            change,
        });
    }
    Ok(files)
}

pub(crate) fn list_worktrees(git: &Git) -> Result<Vec<UnknownWorktree>> {
    let out = git.run(&["worktree", "list", "--porcelain", "-z"])?;
    let mut list = Vec::new();
    let mut current: Option<UnknownWorktree> = None;
    for field in out.split(|b| *b == 0) {
        if field.is_empty() {
            list.extend(current.take());
            continue;
        }
        if let Some(path) = field.strip_prefix(b"worktree ") {
            list.extend(current.take());
            current = Some(UnknownWorktree {
                path: bytes_path(path),
                head: None,
                branch: None,
                locked: false,
                prunable: false,
            });
        } else if let Some(w) = current.as_mut() {
            let text = String::from_utf8_lossy(field);
            if let Some(h) = text.strip_prefix("HEAD ") {
                w.head = Some(h.to_owned());
            } else if let Some(b) = text.strip_prefix("branch ") {
                w.branch = Some(b.to_owned());
            } else if text == "locked" || text.starts_with("locked ") {
                w.locked = true;
            } else if text == "prunable" || text.starts_with("prunable ") {
                w.prunable = true;
            }
        }
    }
    list.extend(current);
    Ok(list)
}

pub(crate) fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}
