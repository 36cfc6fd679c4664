//! Bad input gets a precise error, and nothing is left behind.

use std::path::{Path, PathBuf};

use kaged_worktree::{CreateRequest, Error, RestoreRequest};
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, git, write};

/// What a refused create must leave exactly as it was.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    branches: Vec<String>,
    worktrees: Vec<PathBuf>,
    records: usize,
    worktree_dir: bool,
    refs: String,
}

fn footprint(fx: &Fixture) -> Footprint {
    Footprint {
        branches: fx.branches(),
        worktrees: fx.git_worktrees(),
        records: fx.wt.records().unwrap().len(),
        worktree_dir: fx.dir.join("r9").exists(),
        refs: git(&fx.repo, &["for-each-ref"]),
    }
}

/// Runs a create that must fail and checks nothing changed.
fn refused(fx: &Fixture, req: &CreateRequest) -> Error {
    let before = footprint(fx);
    let err = fx.wt.create(req).unwrap_err();
    assert_eq!(
        footprint(fx),
        before,
        "a refused create left something behind: {err}"
    );
    assert_eq!(fx.wt.recover().unwrap(), vec![]);
    err
}

#[test]
fn a_repository_without_commits_is_refused() {
    let fx = Fixture::empty("repo");
    let err = fx.wt.create(&fx.request("r9")).unwrap_err();
    assert!(
        matches!(&err, Error::NoCommits { repo } if repo == &fx.repo),
        "{err}"
    );
    assert!(!fx.dir.exists());
    assert_eq!(fx.wt.records().unwrap(), vec![]);
}

#[test]
fn a_detached_head_is_refused_when_no_base_is_named() {
    let fx = Fixture::new();
    git(&fx.repo, &["switch", "-q", "--detach", "main"]);
    let req = CreateRequest {
        base: None,
        ..fx.request("r9")
    };
    let err = refused(&fx, &req);
    assert!(matches!(err, Error::DetachedHead { .. }), "{err}");
    assert!(err.to_string().contains("name a base branch"), "{err}");
}

#[test]
fn no_base_means_the_branch_checked_out_in_the_main_checkout() {
    let fx = Fixture::new();
    git(&fx.repo, &["switch", "-q", "-c", "feature"]);
    let rec = fx
        .wt
        .create(&CreateRequest {
            base: None,
            ..fx.request("r1")
        })
        .unwrap();
    assert_eq!(rec.base, "feature");
}

#[test]
fn a_missing_base_is_refused() {
    let fx = Fixture::new();
    let req = CreateRequest {
        base: Some("develop".to_owned()),
        ..fx.request("r9")
    };
    let err = refused(&fx, &req);
    assert!(
        matches!(&err, Error::BaseNotFound { base, .. } if base == "develop"),
        "{err}"
    );
}

#[test]
fn an_existing_branch_is_refused() {
    let fx = Fixture::new();
    git(&fx.repo, &["branch", "kaged/agent/r9"]);
    let err = refused(&fx, &fx.request("r9"));
    assert!(
        matches!(&err, Error::BranchExists { branch, .. } if branch == "kaged/agent/r9"),
        "{err}"
    );
}

#[test]
fn an_invalid_branch_name_or_run_id_is_refused() {
    let fx = Fixture::new();
    let req = CreateRequest {
        branch: "kaged/bad..name".to_owned(),
        ..fx.request("r9")
    };
    assert!(matches!(refused(&fx, &req), Error::InvalidBranch { .. }));
    for run in ["../escape", ".hidden", "a/b", "x.lock", ""] {
        let err = refused(&fx, &fx.request(run));
        assert!(matches!(err, Error::InvalidRun { .. }), "{run:?}: {err}");
    }
}

#[test]
fn a_run_that_already_has_a_worktree_is_refused() {
    let fx = Fixture::new();
    fx.create("r9");
    let req = CreateRequest {
        branch: "kaged/other".to_owned(),
        ..fx.request("r9")
    };
    let err = fx.wt.create(&req).unwrap_err();
    assert!(matches!(err, Error::RunExists { .. }), "{err}");
    assert_eq!(fx.branches().len(), 2);
}

#[test]
fn a_repository_with_submodules_is_refused() {
    let fx = Fixture::new();
    let head = fx.rev("HEAD");
    git(
        &fx.repo,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{head},vendor/sub"),
        ],
    );
    git(&fx.repo, &["commit", "-qm", "add a submodule"]);
    let err = refused(&fx, &fx.request("r9"));
    assert!(
        matches!(&err, Error::Submodules { paths, .. } if paths == &[Path::new("vendor/sub")]),
        "{err}"
    );
}

#[test]
fn a_locked_repository_is_refused() {
    let fx = Fixture::new();
    let lock = fx.repo.join(".git/index.lock");
    write(&lock, b"");
    let err = refused(&fx, &fx.request("r9"));
    assert!(
        matches!(&err, Error::Locked { lock: l, .. } if l == &lock),
        "{err}"
    );
    assert!(err.to_string().contains("index.lock"), "{err}");
    assert!(lock.exists(), "another process's lock is never touched");
}

#[test]
fn a_worktree_directory_inside_the_repository_is_refused() {
    let fx = Fixture::new();
    let req = CreateRequest {
        dir: fx.repo.join("worktrees"),
        ..fx.request("r9")
    };
    let err = refused(&fx, &req);
    assert!(matches!(err, Error::InsideRepository { .. }), "{err}");
    assert!(!fx.repo.join("worktrees").exists());
    // Reached through a symlink, too.
    let link = fx.root.join("sneaky");
    std::os::unix::fs::symlink(&fx.repo, &link).unwrap();
    let req = CreateRequest {
        dir: link.join("wt"),
        ..fx.request("r9")
    };
    assert!(matches!(refused(&fx, &req), Error::InsideRepository { .. }));
}

#[test]
fn an_existing_path_and_a_non_repository_are_refused() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.dir.join("r8")).unwrap();
    let err = fx.wt.create(&fx.request("r8")).unwrap_err();
    assert!(matches!(err, Error::PathExists { .. }), "{err}");
    let req = CreateRequest {
        repo: fx.root.clone(),
        ..fx.request("r9")
    };
    let err = refused(&fx, &req);
    assert!(matches!(err, Error::NotARepository { .. }), "{err}");
}

#[test]
fn paths_with_spaces_and_newlines_work_end_to_end() {
    let mut fx = Fixture::named("my repo\nwith a newline");
    fx.dir = fx.root.join("work trees\nhere");
    let rec = fx.create("r1");
    assert_eq!(rec.path, fx.dir.join("r1"));
    write(&rec.path.join("sp ace\nnl.txt"), b"kept\n");
    let removal = fx.wt.remove("r1").unwrap();
    assert!(removal.snapshot.is_some());
    let restored = fx
        .wt
        .restore(&RestoreRequest {
            from_run: "r1".to_owned(),
            run: "r2".to_owned(),
            branch: "kaged/agent/r2".to_owned(),
            dir: fx.dir.clone(),
        })
        .unwrap();
    assert_eq!(
        std::fs::read(restored.path.join("sp ace\nnl.txt")).unwrap(),
        b"kept\n"
    );
    fx.assert_consistent();
}
