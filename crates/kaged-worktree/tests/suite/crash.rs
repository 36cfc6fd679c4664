//! Crash at every step of create, restore, remove and merge, then recover as a restarted
//! daemon would: each worktree is registered and intact, or gone with its snapshot recorded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use kaged_worktree::{
    CreateRequest, Error, MergeMode, Phase, Recovered, RestoreRequest, State, Step, Worktrees,
};
use pretty_assertions::assert_eq;
use rusqlite::Connection;

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

const KILL9_ENV: &str = "KAGED_WORKTREE_KILL9";
const AT_STEP: &str = "kaged-worktree: stopped at the step";

/// The child half of the kill -9 tests: runs an operation that announces the step and then
/// waits to be killed. It does nothing unless a parent test started it.
#[test]
#[ignore = "run by the kill -9 tests in a child process"]
fn kill9_child() {
    let Ok(spec) = std::env::var(KILL9_ENV) else {
        return;
    };
    let [op, point, repo, dir, db]: [&str; 5] =
        spec.split('\t').collect::<Vec<_>>().try_into().unwrap();
    let point = point.to_owned();
    let mut wt = Worktrees::open(Connection::open(db).unwrap()).unwrap();
    wt.set_failpoint(Some(Box::new(move |s, p| {
        if format!("{s:?}/{p:?}") == point {
            println!("{AT_STEP}");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
        false
    })));
    match op {
        "create" => drop(wt.create(&CreateRequest {
            run: "r1".to_owned(),
            repo: repo.into(),
            base: Some("main".to_owned()),
            branch: "kaged/agent/r1".to_owned(),
            dir: dir.into(),
        })),
        "remove" => drop(wt.remove("r1")),
        "merge" => drop(wt.merge("r1", MergeMode::Auto)),
        other => panic!("unknown op {other}"),
    }
    panic!("{op} finished without reaching its step");
}

/// Runs `op` in a child process, SIGKILLs it at `point`, then recovers as the next daemon.
fn kill9_at(fx: &mut Fixture, op: &str, point: Point) -> Vec<kaged_worktree::Recovery> {
    let spec = [
        op.to_owned(),
        format!("{:?}/{:?}", point.0, point.1),
        fx.repo.display().to_string(),
        fx.dir.display().to_string(),
        fx.db.display().to_string(),
    ]
    .join("\t");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "suite::crash::kill9_child",
            "--ignored",
            "--nocapture",
        ])
        .env(KILL9_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reached = stdout.lines().any(|l| l.unwrap().contains(AT_STEP));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(reached, "{op} never reached {point:?}");
    fx.restart();
    let report = fx.wt.recover().unwrap();
    assert_recovered(&report);
    fx.assert_consistent();
    report
}

#[test]
fn kill_9_in_the_middle_of_create_remove_and_merge_then_recover() {
    let mut fx = Fixture::new();
    let report = kill9_at(&mut fx, "create", (Step::AddWorktree, Phase::After));
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].outcome, Recovered::RolledBack);
    assert_eq!(fx.wt.record("r1").unwrap(), None);
    assert_eq!(fx.branches(), vec!["refs/heads/main"]);

    let (expected, _) = dirty_state();
    dirty_everything(&fx);
    let report = kill9_at(&mut fx, "remove", (Step::CleanWorktree, Phase::After));
    assert_eq!(report[0].outcome, Recovered::Finished);
    assert_eq!(fx.wt.record("r1").unwrap().unwrap().state, State::Removed);
    let restored = fx.wt.restore(&restore_req("r1", "r2", &fx)).unwrap();
    assert_eq!(tree_state(&restored.path), expected);

    let mut fx2 = Fixture::new();
    let rec = fx2.create("r1");
    write(&rec.path.join("agent.txt"), b"agent\n");
    git(&rec.path, &["add", "agent.txt"]);
    git(&rec.path, &["commit", "-qm", "agent"]);
    let tip = fx2.rev("kaged/agent/r1");
    let report = kill9_at(&mut fx2, "merge", (Step::UpdateBase, Phase::After));
    assert_eq!(report[0].outcome, Recovered::Finished);
    assert_eq!(fx2.rev("main"), tip);
    assert_eq!(git(&fx2.repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_create_that_fails_half_way_undoes_its_branch() {
    let mut fx = Fixture::new();
    // The worktree directory is a file, so creating the worktree fails after the branch exists.
    write(&fx.dir, b"not a directory");
    let err = fx.wt.create(&fx.request("r1")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(fx.branches(), vec!["refs/heads/main"]);
    assert_eq!(fx.wt.record("r1").unwrap(), None);
    fx.restart();
    assert_eq!(fx.wt.recover().unwrap(), vec![]);
}

#[test]
fn a_removal_git_refuses_puts_every_file_back() {
    let fx = Fixture::new();
    let (expected, _) = dirty_state();
    dirty_everything(&fx);
    let rec = fx.wt.record("r1").unwrap().unwrap();
    // A locked worktree is one `git worktree remove` without --force refuses.
    git(&fx.repo, &["worktree", "lock", rec.path.to_str().unwrap()]);
    let err = fx.wt.remove("r1").unwrap_err();
    assert!(
        matches!(&err, Error::RemoveRefused { stderr, .. } if stderr.contains("locked")),
        "{err}"
    );
    assert_eq!(tree_state(&rec.path), expected);
    let after = fx.wt.record("r1").unwrap().unwrap();
    assert_eq!(after.state, State::Active);
    assert!(
        after.snapshot.is_some(),
        "the snapshot taken on the way is recorded"
    );
    fx.assert_consistent();
}

#[test]
fn a_merge_cut_short_with_the_checkout_locked_waits_for_the_operator() {
    let mut fx = Fixture::new();
    let rec = fx.create("r1");
    write(&rec.path.join("agent.txt"), b"agent\n");
    git(&rec.path, &["add", "agent.txt"]);
    git(&rec.path, &["commit", "-qm", "agent"]);
    let old = fx.rev("main");
    fx.wt.set_failpoint(Some(Box::new(|s, p| {
        (s, p) == (Step::UpdateBase, Phase::Before)
    })));
    fx.wt.merge("r1", MergeMode::Auto).unwrap_err();
    // As if git itself had been killed mid-merge.
    let lock = fx.repo.join(".git/index.lock");
    write(&lock, b"");
    fx.restart();
    for _ in 0..2 {
        let report = fx.wt.recover().unwrap();
        assert_eq!(report.len(), 1);
        assert!(
            matches!(&report[0].outcome, Recovered::NeedsOperator(m) if m.contains("index.lock")),
            "{report:?}"
        );
    }
    assert!(matches!(
        fx.wt.merge("r1", MergeMode::Auto),
        Err(Error::Busy { .. })
    ));
    std::fs::remove_file(&lock).unwrap();
    let report = fx.wt.recover().unwrap();
    assert_eq!(report[0].outcome, Recovered::RolledBack);
    assert_eq!(fx.rev("main"), old);
    fx.wt.merge("r1", MergeMode::Auto).unwrap();
}
