//! Crash at every step of create, restore, remove and merge, then recover as a restarted
//! daemon would: each worktree is registered and intact, or gone with its snapshot recorded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kaged_worktree::{Error, MergeMode, Phase, RestoreRequest, State, Step};
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, Node, assert_recovered, git, tree_state, write};

type Point = (Step, Phase);

/// Runs `op` once to learn its steps, then for each step and phase: a fresh fixture, the op
/// stopped there, a restart, recovery, the consistency check and `check`.
fn crash_at_every_step(
    setup: impl Fn(&Fixture),
    op: impl Fn(&Fixture) -> Result<(), Error>,
    check: impl Fn(&Fixture, Point),
) -> Vec<Point> {
    let mut fx = Fixture::new();
    setup(&fx);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    fx.wt.set_failpoint(Some(Box::new(move |s, p| {
        log.lock().unwrap().push((s, p));
        false
    })));
    op(&fx).unwrap();
    let points = seen.lock().unwrap().clone();
    for point in &points {
        let point = *point;
        let mut fx = Fixture::new();
        setup(&fx);
        fx.wt
            .set_failpoint(Some(Box::new(move |s, p| (s, p) == point)));
        let err = op(&fx).unwrap_err();
        assert!(
            matches!(err, Error::Failpoint { step, phase } if (step, phase) == point),
            "{point:?}: {err}"
        );
        fx.restart();
        let report = fx.wt.recover().unwrap();
        assert_recovered(&report);
        fx.assert_consistent();
        check(&fx, point);
    }
    points
}

fn restore_req(from: &str, run: &str, fx: &Fixture) -> RestoreRequest {
    RestoreRequest {
        from_run: from.to_owned(),
        run: run.to_owned(),
        branch: format!("kaged/agent/{run}"),
        dir: fx.dir.clone(),
    }
}

fn dirty_everything(fx: &Fixture) {
    let rec = fx.create("r1");
    write(&rec.path.join("c.txt"), b"committed\n");
    git(&rec.path, &["add", "c.txt"]);
    git(&rec.path, &["commit", "-qm", "agent work"]);
    write(&rec.path.join("a.txt"), b"uncommitted\n");
    write(&rec.path.join("new/untracked.sh"), b"#!/bin/sh\n");
    super::fixture::chmod(&rec.path.join("new/untracked.sh"), 0o755);
    std::os::unix::fs::symlink("a.txt", rec.path.join("new/link")).unwrap();
}

/// The worktree content `dirty_everything` leaves, built the same way in a scratch fixture.
fn dirty_state() -> (BTreeMap<PathBuf, Node>, String) {
    let fx = Fixture::new();
    dirty_everything(&fx);
    let rec = fx.wt.record("r1").unwrap().unwrap();
    (
        tree_state(&rec.path),
        git(&rec.path, &["rev-parse", "HEAD^{tree}"]),
    )
}

#[test]
fn a_crash_at_any_step_of_create_rolls_it_back() {
    let points = crash_at_every_step(
        |_| {},
        |fx| fx.wt.create(&fx.request("r1")).map(drop),
        |fx, point| {
            assert_eq!(fx.wt.record("r1").unwrap(), None, "{point:?}");
            assert_eq!(fx.branches(), vec!["refs/heads/main"], "{point:?}");
            assert!(!fx.dir.join("r1").exists(), "{point:?}");
            // Nothing in the way of trying again.
            fx.create("r1");
        },
    );
    assert_eq!(points.len(), 5, "{points:?}");
}

#[test]
fn a_crash_at_any_step_of_restore_rolls_it_back_and_keeps_the_snapshot() {
    let (expected, _) = dirty_state();
    let setup = |fx: &Fixture| {
        dirty_everything(fx);
        fx.wt.remove("r1").unwrap();
    };
    let points = crash_at_every_step(
        setup,
        |fx| fx.wt.restore(&restore_req("r1", "r2", fx)).map(drop),
        |fx, point| {
            assert_eq!(fx.wt.record("r2").unwrap(), None, "{point:?}");
            assert!(
                !fx.branches()
                    .contains(&"refs/heads/kaged/agent/r2".to_owned())
            );
            let again = fx.wt.restore(&restore_req("r1", "r2", fx)).unwrap();
            assert_eq!(tree_state(&again.path), expected, "{point:?}");
        },
    );
    assert!(
        points.contains(&(Step::RestoreContent, Phase::After)),
        "{points:?}"
    );
}

#[test]
fn a_crash_at_any_step_of_removal_loses_nothing() {
    let (expected, _) = dirty_state();
    let points = crash_at_every_step(
        dirty_everything,
        |fx| fx.wt.remove("r1").map(drop),
        |fx, point| {
            let rec = fx.wt.record("r1").unwrap().unwrap();
            match rec.state {
                State::Active => {
                    assert_eq!(
                        tree_state(&rec.path),
                        expected,
                        "{point:?}: worktree changed"
                    );
                    fx.wt.remove("r1").unwrap();
                }
                State::Removed => assert!(rec.snapshot.is_some(), "{point:?}"),
            }
            let restored = fx.wt.restore(&restore_req("r1", "r2", fx)).unwrap();
            assert_eq!(
                tree_state(&restored.path),
                expected,
                "{point:?}: bytes lost"
            );
        },
    );
    assert_eq!(points.len(), 7, "{points:?}");
}

#[test]
fn a_crash_at_any_step_of_removing_a_clean_worktree_leaves_it_whole_or_gone() {
    crash_at_every_step(
        |fx| {
            fx.create("r1");
        },
        |fx| fx.wt.remove("r1").map(drop),
        |fx, point| {
            let rec = fx.wt.record("r1").unwrap().unwrap();
            assert_eq!(rec.snapshot, None, "{point:?}");
            if rec.state == State::Active {
                assert_eq!(git(&rec.path, &["status", "--porcelain"]), "", "{point:?}");
            }
        },
    );
}

fn merge_crash(operator_commit: bool) {
    let setup = move |fx: &Fixture| {
        let rec = fx.create("r1");
        write(&rec.path.join("agent.txt"), b"agent\n");
        git(&rec.path, &["add", "agent.txt"]);
        git(&rec.path, &["commit", "-qm", "agent"]);
        if operator_commit {
            write(&fx.repo.join("operator.txt"), b"operator\n");
            git(&fx.repo, &["add", "operator.txt"]);
            git(&fx.repo, &["commit", "-qm", "operator"]);
        }
    };
    let points = crash_at_every_step(
        setup,
        |fx| fx.wt.merge("r1", MergeMode::Auto).map(drop),
        |fx, point| {
            assert_eq!(git(&fx.repo, &["status", "--porcelain"]), "", "{point:?}");
            let merged = fx.repo.join("agent.txt").exists();
            let landed = git(&fx.repo, &["branch", "--contains", "kaged/agent/r1"]);
            assert_eq!(
                merged,
                landed.contains("main"),
                "{point:?}: checkout and ref disagree"
            );
            if !merged {
                fx.wt.merge("r1", MergeMode::Auto).unwrap();
            }
            assert!(fx.repo.join("agent.txt").exists());
        },
    );
    assert_eq!(points.len(), 3, "{points:?}");
}

#[test]
fn a_crash_at_any_step_of_a_fast_forward_merge_leaves_base_old_or_new() {
    merge_crash(false);
}

#[test]
fn a_crash_at_any_step_of_a_merge_commit_leaves_base_old_or_new() {
    merge_crash(true);
}
