//! A real repository in a temp dir, a worktree directory beside it, and a `Worktrees` on a
//! database file that can be reopened as a restarted daemon would.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaged_worktree::{CreateRequest, Record, Recovered, State, Worktrees};
use rusqlite::Connection;
use tempfile::TempDir;

pub struct Fixture {
    _tmp: TempDir,
    pub root: PathBuf,
    pub repo: PathBuf,
    pub dir: PathBuf,
    pub db: PathBuf,
    pub wt: Worktrees,
}

impl Fixture {
    /// A repository with a text file, an executable, a symlink and an ignore rule, one commit
    /// on `main`.
    pub fn new() -> Fixture {
        Fixture::named("repo")
    }

    pub fn named(name: &str) -> Fixture {
        let fx = Fixture::empty(name);
        write(&fx.repo.join("a.txt"), b"one\ntwo\nthree\n");
        write(&fx.repo.join("bin/run.sh"), b"#!/bin/sh\necho run\n");
        chmod(&fx.repo.join("bin/run.sh"), 0o755);
        std::os::unix::fs::symlink("a.txt", fx.repo.join("link")).unwrap();
        write(&fx.repo.join(".gitignore"), b"target/\n");
        git(&fx.repo, &["add", "-A"]);
        git(&fx.repo, &["commit", "-qm", "initial"]);
        fx
    }

    /// An initialised repository on `main` with no commits.
    pub fn empty(name: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let repo = root.join(name);
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "user.name", "Operator"]);
        git(&repo, &["config", "user.email", "op@example.invalid"]);
        let db = root.join("kaged.db");
        let wt = Worktrees::open(Connection::open(&db).unwrap()).unwrap();
        Fixture {
            dir: root.join("worktrees"),
            _tmp: tmp,
            root,
            repo,
            db,
            wt,
        }
    }

    pub fn request(&self, run: &str) -> CreateRequest {
        CreateRequest {
            run: run.to_owned(),
            repo: self.repo.clone(),
            base: Some("main".to_owned()),
            branch: format!("kaged/agent/{run}"),
            dir: self.dir.clone(),
        }
    }

    pub fn create(&self, run: &str) -> Record {
        self.wt.create(&self.request(run)).unwrap()
    }

    /// A fresh `Worktrees` on the same database, as after a daemon restart.
    pub fn restart(&mut self) {
        self.wt = Worktrees::open(Connection::open(&self.db).unwrap()).unwrap();
    }

    pub fn branches(&self) -> Vec<String> {
        lines(&git(
            &self.repo,
            &["for-each-ref", "--format=%(refname)", "refs/heads"],
        ))
    }

    /// Paths of every worktree git knows, the main one first.
    pub fn git_worktrees(&self) -> Vec<PathBuf> {
        let out = git_bytes(&self.repo, &["worktree", "list", "--porcelain", "-z"]);
        out.split(|b| *b == 0)
            .filter_map(|f| f.strip_prefix(b"worktree "))
            .map(|p| PathBuf::from(String::from_utf8(p.to_vec()).unwrap()))
            .collect()
    }

    pub fn rev(&self, rev: &str) -> String {
        git(&self.repo, &["rev-parse", rev]).trim().to_owned()
    }

    /// After recovery: no operation pending, every active record intact and listed by git,
    /// every removed one gone with its snapshot ref in place, and no worktree git knows that
    /// kaged does not.
    pub fn assert_consistent(&self) {
        let again = self.wt.recover().unwrap();
        assert_eq!(again, vec![], "a second recovery found work left");
        let listed = self.git_worktrees();
        for rec in self.wt.records().unwrap() {
            match rec.state {
                State::Active => {
                    assert!(listed.contains(&rec.path), "{:?} not listed", rec.path);
                    let gitfile = std::fs::read_to_string(rec.path.join(".git")).unwrap();
                    assert_eq!(
                        gitfile.trim_end(),
                        format!("gitdir: {}", rec.admin_dir.display())
                    );
                    git(&rec.path, &["status", "--porcelain"]);
                }
                State::Removed => {
                    assert!(!listed.contains(&rec.path), "{:?} still listed", rec.path);
                    assert!(!rec.path.exists(), "{:?} still on disk", rec.path);
                    if let (Some(r), Some(oid)) = (&rec.snapshot, &rec.snapshot_oid) {
                        assert_eq!(&self.rev(r), oid);
                    }
                }
            }
        }
        assert_eq!(self.wt.unknown_worktrees(&self.repo).unwrap(), vec![]);
    }
}

pub fn assert_recovered(outcomes: &[kaged_worktree::Recovery]) {
    for o in outcomes {
        assert!(
            !matches!(o.outcome, Recovered::NeedsOperator(_)),
            "recovery needs the operator: {o:?}"
        );
    }
}

/// git as the operator would run it, but with hooks off so a planted hook can only be
/// triggered by kaged.
pub fn git(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git_bytes(dir, args)).unwrap()
}

pub fn git_bytes(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = plain_git(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {dir:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn plain_git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("LC_ALL", "C").arg("-C").arg(dir);
    cmd
}

pub fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_owned).collect()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One file as the snapshot must bring it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { executable: bool, bytes: Vec<u8> },
    Symlink(PathBuf),
}

/// Every file and symlink under `dir`, except `.git` and ignored `target/`.
pub fn tree_state(dir: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().to_owned();
        if rel == Path::new(".git") || rel == Path::new("target") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(rel, Node::Symlink(std::fs::read_link(&path).unwrap()));
        } else if meta.is_dir() {
            walk(root, &path, out);
        } else {
            out.insert(
                rel,
                Node::File {
                    executable: meta.permissions().mode() & 0o111 != 0,
                    bytes: std::fs::read(&path).unwrap(),
                },
            );
        }
    }
}
