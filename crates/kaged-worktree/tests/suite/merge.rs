//! Merging a run's branch into `base` in the main checkout, and the refusals.

use std::path::{Path, PathBuf};

use kaged_worktree::{Error, MergeMode};
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, git, write};

fn agent_commit(fx: &Fixture, run: &str, file: &str, bytes: &[u8]) {
    let rec = fx.wt.record(run).unwrap().unwrap();
    write(&rec.path.join(file), bytes);
    git(&rec.path, &["add", "-A"]);
    git(
        &rec.path,
        &["commit", "-qm", &format!("agent edits {file}")],
    );
}

#[test]
fn merge_fast_forwards_base_in_the_main_checkout() {
    let fx = Fixture::new();
    fx.create("r1");
    agent_commit(&fx, "r1", "a.txt", b"changed by the agent\n");
    let old = fx.rev("main");
    let tip = fx.rev("kaged/agent/r1");
    let out = fx.wt.merge("r1", MergeMode::Auto).unwrap();
    assert!(out.fast_forward);
    assert_eq!((out.old, out.new.clone()), (old, tip.clone()));
    assert_eq!(fx.rev("main"), tip);
    assert_eq!(
        std::fs::read(fx.repo.join("a.txt")).unwrap(),
        b"changed by the agent\n"
    );
    assert_eq!(git(&fx.repo, &["status", "--porcelain"]), "");
    fx.assert_consistent();
}

#[test]
fn merge_makes_a_merge_commit_when_base_moved_on() {
    let fx = Fixture::new();
    fx.create("r1");
    agent_commit(&fx, "r1", "agent.txt", b"agent\n");
    write(&fx.repo.join("operator.txt"), b"operator\n");
    git(&fx.repo, &["add", "operator.txt"]);
    git(&fx.repo, &["commit", "-qm", "operator work"]);
    let old = fx.rev("main");
    let tip = fx.rev("kaged/agent/r1");
    assert!(matches!(
        fx.wt.merge("r1", MergeMode::FastForwardOnly),
        Err(Error::NotFastForward { .. })
    ));
    let out = fx.wt.merge("r1", MergeMode::Auto).unwrap();
    assert!(!out.fast_forward);
    assert_eq!(fx.rev("main"), out.new);
    assert_eq!(fx.rev("main^1"), old);
    assert_eq!(fx.rev("main^2"), tip);
    assert!(fx.repo.join("agent.txt").exists() && fx.repo.join("operator.txt").exists());
    assert_eq!(git(&fx.repo, &["status", "--porcelain"]), "");
    let message = git(&fx.repo, &["log", "-1", "--format=%s%n%an"]);
    assert_eq!(
        message,
        "Merge branch 'kaged/agent/r1' into main\nOperator\n"
    );
}

#[test]
fn merge_commit_mode_never_fast_forwards() {
    let fx = Fixture::new();
    fx.create("r1");
    agent_commit(&fx, "r1", "agent.txt", b"agent\n");
    let out = fx.wt.merge("r1", MergeMode::MergeCommit).unwrap();
    assert!(!out.fast_forward);
    assert_eq!(fx.rev("main^2"), fx.rev("kaged/agent/r1"));
}

#[test]
fn merge_refuses_a_main_checkout_dirty_in_the_affected_paths() {
    let fx = Fixture::new();
    fx.create("r1");
    agent_commit(&fx, "r1", "a.txt", b"agent\n");
    agent_commit(&fx, "r1", "docs/new.md", b"agent\n");
    write(&fx.repo.join("a.txt"), b"operator's unsaved edit\n");
    write(&fx.repo.join("docs/new.md"), b"operator's untracked file\n");
    write(&fx.repo.join("unrelated.txt"), b"fine\n");
    let old = fx.rev("main");
    let err = fx.wt.merge("r1", MergeMode::Auto).unwrap_err();
    match &err {
        Error::DirtyCheckout { repo, paths } => {
            assert_eq!(repo, &fx.repo);
            assert_eq!(
                paths,
                &[PathBuf::from("a.txt"), PathBuf::from("docs/new.md")]
            );
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("\"a.txt\""), "{err}");
    assert_eq!(fx.rev("main"), old);
    assert_eq!(
        std::fs::read(fx.repo.join("a.txt")).unwrap(),
        b"operator's unsaved edit\n"
    );
    fx.assert_consistent();
}

#[test]
fn merge_keeps_unrelated_local_changes_in_the_main_checkout() {
    let fx = Fixture::new();
    fx.create("r1");
    agent_commit(&fx, "r1", "agent.txt", b"agent\n");
    write(&fx.repo.join("a.txt"), b"operator's unsaved edit\n");
    fx.wt.merge("r1", MergeMode::Auto).unwrap();
    assert_eq!(
        std::fs::read(fx.repo.join("a.txt")).unwrap(),
        b"operator's unsaved edit\n"
    );
    assert!(fx.repo.join("agent.txt").exists());
}

#[test]
fn merge_refuses_when_base_is_not_checked_out_and_says_what_to_do() {
    let fx = Fixture::new();
    fx.create("r1");
    agent_commit(&fx, "r1", "agent.txt", b"agent\n");
    git(&fx.repo, &["switch", "-q", "-c", "elsewhere"]);
    let err = fx.wt.merge("r1", MergeMode::Auto).unwrap_err();
    assert!(
        matches!(&err, Error::BaseNotCheckedOut { base, head, .. } if base == "main" && head == "elsewhere"),
        "{err}"
    );
    assert!(err.to_string().contains("switch main"), "{err}");
    git(&fx.repo, &["switch", "-q", "--detach", "main"]);
    let err = fx.wt.merge("r1", MergeMode::Auto).unwrap_err();
    assert!(matches!(&err, Error::BaseNotCheckedOut { head, .. } if head == "detached"));
}

#[test]
fn merge_conflicts_are_found_before_the_checkout_changes() {
    let fx = Fixture::new();
    fx.create("r1");
    agent_commit(&fx, "r1", "a.txt", b"agent's line\n");
    write(&fx.repo.join("a.txt"), b"operator's line\n");
    git(&fx.repo, &["commit", "-qam", "operator edits a.txt"]);
    let old = fx.rev("main");
    let err = fx.wt.merge("r1", MergeMode::Auto).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { paths, .. } if paths == &[Path::new("a.txt")]),
        "{err}"
    );
    assert_eq!(fx.rev("main"), old);
    assert_eq!(git(&fx.repo, &["status", "--porcelain"]), "");
}

#[test]
fn merging_a_branch_with_nothing_new_is_refused() {
    let fx = Fixture::new();
    fx.create("r1");
    let err = fx.wt.merge("r1", MergeMode::Auto).unwrap_err();
    assert!(matches!(err, Error::NothingToMerge { .. }), "{err}");
}
