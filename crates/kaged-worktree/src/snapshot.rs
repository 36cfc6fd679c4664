//! Snapshots: a commit of everything in a worktree, untracked files included, stored under
//! `refs/kaged/snapshots/<run>`, and its restore.
//!
//! The tree is built through a private index (`GIT_INDEX_FILE` in a temp dir), never the
//! worktree's own, so taking a snapshot changes nothing the agent or operator sees. `git stash
//! create` is not used: it leaves untracked files out.

use std::path::Path;

use crate::Worktrees;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::journal::{self, Record};
use crate::status::Status;

pub const SNAPSHOT_PREFIX: &str = "refs/kaged/snapshots/";

const IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "kaged"),
    ("GIT_AUTHOR_EMAIL", "kaged@localhost"),
    ("GIT_COMMITTER_NAME", "kaged"),
    ("GIT_COMMITTER_EMAIL", "kaged@localhost"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `refs/kaged/snapshots/<run>`.
    pub reference: String,
    pub run: String,
    /// The snapshot commit. Its first parent is the worktree's HEAD when it was taken, its
    /// second (if any) the snapshot it replaced.
    pub oid: String,
    pub time: i64,
}

pub(crate) fn snapshot_ref(run: &str) -> String {
    format!("{SNAPSHOT_PREFIX}{run}")
}

/// The tree of everything in the worktree that is not ignored, exactly as on disk.
pub(crate) fn build_tree(wt: &Git, admin_dir: &Path) -> Result<String> {
    let tmp = tempfile::tempdir().map_err(|source| Error::Io {
        action: "cannot create a temporary index dir in",
        path: std::env::temp_dir(),
        source,
    })?;
    let index = tmp.path().join("index");
    // Starting from a copy of the real index keeps force-added (ignored but staged) files and
    // its stat cache; a worktree without one starts from HEAD.
    let git = wt.exact().with_index(&index);
    match std::fs::copy(admin_dir.join("index"), &index) {
        Ok(_) => distrust_stat_cache(&index)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            git.run(&["read-tree", "HEAD"])?;
        }
        Err(source) => {
            return Err(Error::Io {
                action: "cannot copy the index of",
                path: admin_dir.to_owned(),
                source,
            });
        }
    }
    git.run(&["add", "--all", "--", ":/"])?;
    git.text(&["write-tree"])
}

/// A copied index is newer than any file, so git's racy-entry check would trust stat data it
/// should not: an edit that keeps the size within the second of the last index write would be
/// missed. Dating the copy to 1970 (1 s, as 0 disables the check) makes git compare the
/// contents of every entry instead.
fn distrust_stat_cache(index: &Path) -> Result<()> {
    let io = |source| Error::Io {
        action: "cannot re-date the temporary index",
        path: index.to_owned(),
        source,
    };
    let file = std::fs::File::options()
        .write(true)
        .open(index)
        .map_err(io)?;
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
        .map_err(io)
}

/// Nested repositories show up as an untracked directory; `git add` would record only a
/// gitlink to them and their content would be lost with the worktree.
pub(crate) fn refuse_nested(rec: &Record, status: &Status) -> Result<()> {
    let nested: Vec<_> = status
        .untracked()
        .filter(|path| path.as_os_str().as_encoded_bytes().ends_with(b"/"))
        .cloned()
        .collect();
    if nested.is_empty() {
        return Ok(());
    }
    Err(Error::NestedRepository {
        worktree: rec.path.clone(),
        paths: nested,
    })
}

pub(crate) fn commit(wt: &Git, rec: &Record, tree: &str, parents: &[&str]) -> Result<String> {
    let message = format!(
        "kaged snapshot of run {}\n\nbranch: {}\nworktree: {}\n",
        rec.run,
        rec.branch,
        rec.path.display()
    );
    // Never signed: a signing prompt must not block a cleanup, and the key is the operator's.
    let mut args = vec!["commit-tree", "--no-gpg-sign", tree, "-m", &message];
    for p in parents {
        args.extend(["-p", p]);
    }
    let mut git = wt.clone();
    for (k, v) in IDENTITY {
        git = git.with_env(k, v);
    }
    git.text(&args)
}

/// Points the snapshot ref at `new` only if it still holds `old` (`None`: does not exist).
pub(crate) fn write_ref(repo: &Git, reference: &str, new: &str, old: Option<&str>) -> Result<()> {
    repo.run(&[
        "update-ref",
        "-m",
        "kaged: snapshot",
        reference,
        new,
        old.unwrap_or(""),
    ])?;
    Ok(())
}

/// Makes the working tree hold the snapshot's files while the index stays at HEAD, so what
/// was uncommitted or untracked comes back as exactly that.
pub(crate) fn check_out_content(wt: &Git, snap: &str) -> Result<()> {
    let git = wt.exact();
    git.run(&["read-tree", "-u", "--reset", &format!("{snap}^{{tree}}")])?;
    git.run(&["reset", "-q"])?;
    Ok(())
}

impl Worktrees {
    /// Takes a snapshot of a live worktree now, without removing it. A snapshot already under
    /// the run's ref is kept as the new one's second parent.
    pub fn snapshot(&self, run: &str) -> Result<Snapshot> {
        let rec = self.active(run)?;
        crate::inspect::check_gitfile(&rec)?;
        let wt = rec.git();
        refuse_nested(&rec, &Status::read(&wt)?)?;
        let repo = Git::at(&rec.repo);
        let reference = snapshot_ref(run);
        let previous = repo.resolve(&reference)?;
        let head = wt.text(&["rev-parse", "HEAD"])?;
        let tree = build_tree(&wt, &rec.admin_dir)?;
        let mut parents = vec![head.as_str()];
        parents.extend(previous.as_deref());
        let oid = commit(&wt, &rec, &tree, &parents)?;
        write_ref(&repo, &reference, &oid, previous.as_deref())?;
        journal::set_snapshot(&self.db, run, Some((&reference, &oid)))?;
        Ok(Snapshot {
            reference,
            run: run.to_owned(),
            oid,
            time: crate::now(),
        })
    }

    /// The snapshots in a repository, oldest first.
    pub fn snapshots(&self, repo: &Path) -> Result<Vec<Snapshot>> {
        let git = Git::at(repo);
        let out = git.run(&[
            "for-each-ref",
            "--sort=committerdate",
            "--format=%(refname)%00%(objectname)%00%(committerdate:unix)",
            SNAPSHOT_PREFIX,
        ])?;
        let mut snaps = Vec::new();
        for line in String::from_utf8_lossy(&out).lines() {
            let mut f = line.split('\0');
            if let (Some(reference), Some(oid), Some(time)) = (f.next(), f.next(), f.next()) {
                snaps.push(Snapshot {
                    run: reference.trim_start_matches(SNAPSHOT_PREFIX).to_owned(),
                    reference: reference.to_owned(),
                    oid: oid.to_owned(),
                    time: time.parse().unwrap_or(0),
                });
            }
        }
        Ok(snaps)
    }

    /// Deletes snapshot refs older than `max_age` seconds; returns what was deleted. Their
    /// commits become unreachable and git's own gc collects them later.
    pub fn prune_snapshots(&self, repo: &Path, max_age: i64, now: i64) -> Result<Vec<Snapshot>> {
        let git = Git::at(repo);
        let mut pruned = Vec::new();
        for snap in self.snapshots(repo)? {
            if snap.time > now - max_age || journal::busy(&self.db, &snap.run)? {
                continue;
            }
            // Deleting with the expected value fails if the ref moved since it was listed.
            git.run(&["update-ref", "-d", &snap.reference, &snap.oid])?;
            let recorded = self.record(&snap.run)?.and_then(|r| r.snapshot_oid);
            if recorded.as_deref() == Some(snap.oid.as_str()) {
                journal::set_snapshot(&self.db, &snap.run, None)?;
            }
            pruned.push(snap);
        }
        Ok(pruned)
    }
}
