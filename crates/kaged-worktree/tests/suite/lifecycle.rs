//! Review, snapshot, removal without loss and restore, branch deletion, sweep and retention.

use std::path::{Path, PathBuf};

use kaged_worktree::{Change, Error, Loss, RestoreRequest, State};
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, chmod, git, tree_state, write};

fn uncommitted_changes(wt: &Path) {
    write(&wt.join("a.txt"), b"one\nTWO\nthree\n");
    chmod(&wt.join("bin/run.sh"), 0o644);
    std::fs::remove_file(wt.join("link")).unwrap();
    std::os::unix::fs::symlink("bin/run.sh", wt.join("link")).unwrap();
}

fn untracked_files(wt: &Path) {
    let every_byte: Vec<u8> = (0..=255).collect();
    write(&wt.join("new dir/with space\nand newline.bin"), &every_byte);
    write(&wt.join("tools/gen.sh"), b"#!/bin/sh\n");
    chmod(&wt.join("tools/gen.sh"), 0o755);
    std::os::unix::fs::symlink("../a.txt", wt.join("new dir/up")).unwrap();
    // Ignored: not part of the snapshot, and `tree_state` leaves it out too.
    write(&wt.join("target/build.o"), b"obj");
}

fn unpushed_commit(wt: &Path) {
    write(&wt.join("c.txt"), b"committed by the agent\n");
    git(wt, &["add", "c.txt"]);
    git(wt, &["commit", "-qm", "agent work"]);
}

/// Removes the worktree, checks it is gone and the branch kept, restores the snapshot into a
/// new run and checks every byte, mode and symlink came back.
fn remove_and_restore(fx: &Fixture, run: &str, expect: fn(&Loss)) {
    let rec = fx.wt.record(run).unwrap().unwrap();
    let before = tree_state(&rec.path);
    let head = git(&rec.path, &["rev-parse", "HEAD"]);
    let branches = fx.branches();

    // Ignored files (`target/`) are in no snapshot: a plain removal refuses and changes
    // nothing; the operator then removes again, discarding them.
    let ignored: Vec<PathBuf> = if rec.path.join("target").exists() {
        vec!["target/".into()]
    } else {
        vec![]
    };
    if !ignored.is_empty() {
        let err = fx.wt.remove(run).unwrap_err();
        assert!(
            matches!(&err, Error::IgnoredFiles { ignored: i, .. } if *i == ignored),
            "{err}"
        );
        assert_eq!(
            tree_state(&rec.path),
            before,
            "a refused removal changes nothing"
        );
        let same = fx.wt.record(run).unwrap().unwrap();
        assert_eq!((same.state, same.snapshot_oid), (State::Active, None));
    }
    let removal = fx.wt.remove_discarding_ignored(run).unwrap();
    assert_eq!(removal.loss.ignored, ignored);
    expect(&removal.loss);
    let snap = removal.snapshot.clone().expect("something would be lost");
    assert_eq!(snap.reference, format!("refs/kaged/snapshots/{run}"));
    assert!(!rec.path.exists());
    assert_eq!(fx.git_worktrees(), vec![fx.repo.clone()]);
    assert_eq!(fx.branches(), branches, "the branch is kept");
    let after = fx.wt.record(run).unwrap().unwrap();
    assert_eq!(after.state, State::Removed);
    assert_eq!(after.snapshot_oid, Some(snap.oid.clone()));

    let restored = fx
        .wt
        .restore(&RestoreRequest {
            from_run: run.to_owned(),
            run: format!("{run}-restored"),
            branch: format!("kaged/agent/{run}-restored"),
            dir: fx.dir.clone(),
        })
        .unwrap();
    assert_eq!(tree_state(&restored.path), before);
    assert_eq!(git(&restored.path, &["rev-parse", "HEAD"]), head);
    fx.assert_consistent();
}

#[test]
fn cleanup_with_uncommitted_changes_restores_every_byte() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    uncommitted_changes(&rec.path);
    remove_and_restore(&fx, "r1", |loss| {
        assert_eq!(
            loss.changed,
            vec![
                Path::new("a.txt"),
                Path::new("bin/run.sh"),
                Path::new("link")
            ]
        );
        assert_eq!(loss.untracked, Vec::<std::path::PathBuf>::new());
        assert_eq!(loss.unpushed, Vec::<String>::new());
    });
}

#[test]
fn cleanup_with_untracked_files_restores_every_byte() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    untracked_files(&rec.path);
    remove_and_restore(&fx, "r1", |loss| {
        assert_eq!(
            loss.untracked,
            vec![
                Path::new("new dir/up"),
                Path::new("new dir/with space\nand newline.bin"),
                Path::new("tools/gen.sh"),
            ]
        );
        assert!(loss.changed.is_empty() && loss.unpushed.is_empty());
    });
}

#[test]
fn cleanup_with_unpushed_commits_restores_every_byte() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    unpushed_commit(&rec.path);
    remove_and_restore(&fx, "r1", |loss| {
        assert_eq!(loss.unpushed.len(), 1);
        assert!(loss.changed.is_empty() && loss.untracked.is_empty());
    });
}

#[test]
fn cleanup_with_all_three_restores_every_byte() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    unpushed_commit(&rec.path);
    uncommitted_changes(&rec.path);
    untracked_files(&rec.path);
    // Staged but not committed, too.
    write(&rec.path.join("staged.txt"), b"staged\n");
    git(&rec.path, &["add", "staged.txt"]);
    remove_and_restore(&fx, "r1", |loss| {
        assert_eq!(loss.unpushed.len(), 1);
        assert_eq!(loss.changed.len(), 4);
        assert_eq!(loss.untracked.len(), 3);
    });
}

#[test]
fn cleanup_of_a_clean_worktree_takes_no_snapshot() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    write(&rec.path.join("target/junk"), b"ignored build output");
    let err = fx.wt.remove("r1").unwrap_err();
    assert!(matches!(err, Error::IgnoredFiles { .. }), "{err}");
    assert!(rec.path.join("target/junk").exists());
    let removal = fx.wt.remove_discarding_ignored("r1").unwrap();
    assert_eq!(
        removal.loss,
        Loss {
            ignored: vec!["target/".into()],
            ..Loss::default()
        }
    );
    assert_eq!(removal.snapshot, None);
    assert!(!rec.path.exists());
    assert_eq!(fx.wt.snapshots(&fx.repo).unwrap(), vec![]);
    fx.assert_consistent();
}

#[test]
fn a_snapshot_leaves_the_worktree_and_its_index_untouched() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    uncommitted_changes(&rec.path);
    untracked_files(&rec.path);
    let status = git(
        &rec.path,
        &["status", "--porcelain=v2", "--untracked-files=all"],
    );
    let before = tree_state(&rec.path);
    let first = fx.wt.snapshot("r1").unwrap();
    let second = fx.wt.snapshot("r1").unwrap();
    assert_eq!(tree_state(&rec.path), before);
    assert_eq!(
        git(
            &rec.path,
            &["status", "--porcelain=v2", "--untracked-files=all"]
        ),
        status
    );
    // The earlier snapshot stays reachable as the second parent of the newer one.
    assert_eq!(fx.rev(&format!("{}^2", second.oid)), first.oid);
    assert_eq!(fx.rev("refs/kaged/snapshots/r1"), second.oid);
}

#[test]
fn review_shows_commits_diffs_and_every_file_touched() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    unpushed_commit(&rec.path);
    write(&rec.path.join("a.txt"), b"one\ntwo\nthree\nfour\n");
    write(&rec.path.join("notes.md"), b"untracked\n");
    let review = fx.wt.review("r1").unwrap();
    assert_eq!(review.commits.len(), 1);
    assert_eq!(review.commits[0].summary, "agent work");
    assert_eq!(review.commits[0].author_name, "Operator");
    assert_eq!(review.merge_base, fx.rev("main"));
    assert!(
        review.diff.contains("+committed by the agent"),
        "{}",
        review.diff
    );
    assert!(!review.diff.contains("four"));
    assert!(review.uncommitted_diff.contains("+four"));
    assert!(
        review.uncommitted_diff.contains("+untracked"),
        "untracked files are in the diff"
    );
    let files: Vec<_> = review
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.change))
        .collect();
    assert_eq!(
        files,
        vec![
            (Path::new("a.txt"), Change::Modified),
            (Path::new("c.txt"), Change::Added),
            (Path::new("notes.md"), Change::Added),
        ]
    );
    assert_eq!(review.status.branch.as_deref(), Some("kaged/agent/r1"));
}

#[test]
fn deleting_a_branch_refuses_unmerged_work_without_a_snapshot() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    unpushed_commit(&rec.path);
    assert!(matches!(
        fx.wt.delete_branch("r1"),
        Err(Error::BranchInUse { .. })
    ));
    fx.wt.remove("r1").unwrap();
    // Retention pruned the snapshot: the branch is now the only holder of the commit.
    let pruned = fx.wt.prune_snapshots(&fx.repo, 0, i64::MAX).unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(fx.wt.record("r1").unwrap().unwrap().snapshot, None);
    let err = fx.wt.delete_branch("r1").unwrap_err();
    assert!(
        matches!(&err, Error::Unmerged { branch, commits: 1, .. } if branch == "kaged/agent/r1"),
        "{err}"
    );
    assert!(
        fx.branches()
            .contains(&"refs/heads/kaged/agent/r1".to_owned())
    );
    // Once merged, the branch may go.
    git(&fx.repo, &["merge", "-q", "--ff-only", "kaged/agent/r1"]);
    fx.wt.delete_branch("r1").unwrap();
    assert_eq!(fx.branches(), vec!["refs/heads/main"]);
}

#[test]
fn deleting_a_branch_whose_work_is_in_a_snapshot_is_allowed() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    unpushed_commit(&rec.path);
    fx.wt.remove("r1").unwrap();
    fx.wt.delete_branch("r1").unwrap();
    assert_eq!(fx.branches(), vec!["refs/heads/main"]);
}

#[test]
fn sweep_removes_only_worktrees_idle_long_enough_through_the_safe_path() {
    let fx = Fixture::new();
    let old = fx.create("old");
    let recent = fx.create("recent");
    let running = fx.create("running");
    let built = fx.create("built");
    untracked_files(&old.path);
    std::fs::remove_dir_all(old.path.join("target")).unwrap();
    write(
        &built.path.join("target/app"),
        b"a build the sweep must not delete",
    );
    fx.wt.mark_ended("old", 100).unwrap();
    fx.wt.mark_ended("recent", 180).unwrap();
    fx.wt.mark_ended("built", 100).unwrap();
    let mut swept = fx.wt.sweep(50, 200).unwrap();
    swept.sort_by(|a, b| a.run.cmp(&b.run));
    let runs: Vec<&str> = swept.iter().map(|s| s.run.as_str()).collect();
    assert_eq!(runs, vec!["built", "old"]);
    let removal = swept[1].result.as_ref().unwrap();
    assert!(
        removal.snapshot.is_some(),
        "the untracked files were snapshotted"
    );
    assert!(!old.path.exists());
    // Ignored files are in no snapshot: the sweep leaves that worktree as it is.
    assert!(
        matches!(&swept[0].result, Err(Error::IgnoredFiles { .. })),
        "{:?}",
        swept[0].result
    );
    assert!(built.path.join("target/app").exists());
    assert!(recent.path.exists() && running.path.exists());
    fx.assert_consistent();
}

#[test]
fn worktrees_kaged_does_not_know_are_reported_and_never_removed() {
    let fx = Fixture::new();
    fx.create("r1");
    let theirs = fx.root.join("operator's own");
    git(
        &fx.repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "mine",
            theirs.to_str().unwrap(),
        ],
    );
    let unknown = fx.wt.unknown_worktrees(&fx.repo).unwrap();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].path, theirs);
    assert_eq!(unknown[0].branch.as_deref(), Some("refs/heads/mine"));
    fx.wt.mark_ended("r1", 0).unwrap();
    fx.wt.sweep(0, 10).unwrap();
    assert!(theirs.join("a.txt").exists());
    assert_eq!(fx.wt.unknown_worktrees(&fx.repo).unwrap(), unknown);
}

#[test]
fn snapshot_retention_prunes_only_old_snapshots() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    untracked_files(&rec.path);
    let snap = fx.wt.snapshot("r1").unwrap();
    let listed = fx.wt.snapshots(&fx.repo).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].oid, snap.oid);
    let now = listed[0].time;
    assert_eq!(
        fx.wt.prune_snapshots(&fx.repo, 3600, now + 60).unwrap(),
        vec![]
    );
    assert_eq!(
        fx.wt.prune_snapshots(&fx.repo, 3600, now + 7200).unwrap(),
        listed
    );
    assert_eq!(fx.wt.snapshots(&fx.repo).unwrap(), vec![]);
}

#[test]
fn a_rewritten_git_file_stops_removal_and_keeps_the_worktree() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    untracked_files(&rec.path);
    write(&rec.path.join(".git"), b"gitdir: /tmp/elsewhere\n");
    let err = fx.wt.remove("r1").unwrap_err();
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
    // A whole repository planted in its place (hooks and all) is refused the same way.
    std::fs::remove_file(rec.path.join(".git")).unwrap();
    git(&rec.path, &["init", "-q"]);
    assert!(matches!(fx.wt.review("r1"), Err(Error::Tampered { .. })));
    assert!(rec.path.join("tools/gen.sh").exists());
    assert_eq!(fx.wt.record("r1").unwrap().unwrap().state, State::Active);
}

#[test]
fn a_nested_repository_is_refused_before_anything_is_removed() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    let nested = rec.path.join("vendor/lib");
    std::fs::create_dir_all(&nested).unwrap();
    git(&nested, &["init", "-q"]);
    write(&nested.join("work.txt"), b"only here\n");
    let err = fx.wt.remove("r1").unwrap_err();
    assert!(
        matches!(&err, Error::NestedRepository { paths, .. } if paths == &[Path::new("vendor/lib/")]),
        "{err}"
    );
    assert!(nested.join("work.txt").exists());
    assert_eq!(fx.wt.snapshots(&fx.repo).unwrap(), vec![]);
    fx.assert_consistent();
}

#[test]
fn a_same_size_edit_right_after_an_index_write_is_in_the_snapshot() {
    let fx = Fixture::new();
    for i in 0..2 {
        let run = format!("r{i}");
        let rec = fx.create(&run);
        // Same size as the committed "one\ntwo\nthree\n", within the second git wrote the
        // index; the snapshot comes a second later, when a copied index would look newer.
        write(&rec.path.join("a.txt"), b"one\nTWO\nthree\n");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let snap = fx.wt.snapshot(&run).unwrap();
        assert_eq!(
            git(&fx.repo, &["show", &format!("{}:a.txt", snap.oid)]),
            "one\nTWO\nthree\n"
        );
    }
}

#[test]
fn a_worktree_whose_directory_vanished_is_forgotten_by_git_and_recorded_removed() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    std::fs::remove_dir_all(&rec.path).unwrap();
    let removal = fx.wt.remove("r1").unwrap();
    assert_eq!(removal.snapshot, None);
    assert_eq!(fx.git_worktrees(), vec![fx.repo.clone()]);
    assert_eq!(fx.wt.record("r1").unwrap().unwrap().state, State::Removed);
    fx.assert_consistent();
}

#[test]
fn next_branch_skips_numbers_taken_by_branches_or_records() {
    let fx = Fixture::new();
    git(&fx.repo, &["branch", "kaged/claude/1"]);
    let (n, name) = fx
        .wt
        .next_branch(&fx.repo, "kaged/{agent}/{n}", "claude")
        .unwrap();
    assert_eq!((n, name.as_str()), (2, "kaged/claude/2"));
    let mut req = fx.request("r1");
    req.branch = name;
    fx.wt.create(&req).unwrap();
    fx.wt.remove("r1").unwrap();
    fx.wt.delete_branch("r1").unwrap();
    let (n, _) = fx
        .wt
        .next_branch(&fx.repo, "kaged/{agent}/{n}", "claude")
        .unwrap();
    assert_eq!(
        n, 3,
        "a deleted branch's number stays taken while its record does"
    );
    let err = fx.wt.next_branch(&fx.repo, "kaged/fixed", "claude");
    assert!(err.is_ok());
    git(&fx.repo, &["branch", "kaged/fixed"]);
    let err = fx
        .wt
        .next_branch(&fx.repo, "kaged/fixed", "claude")
        .unwrap_err();
    assert!(matches!(err, Error::BranchExists { .. }), "{err}");
}

#[test]
fn a_record_names_the_paths_a_cage_must_keep_read_only() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    let common = fx.repo.join(".git");
    assert_eq!(rec.common_dir, common);
    assert_eq!(rec.admin_dir, common.join("worktrees/r1"));
    assert_eq!(
        rec.read_only_paths(),
        vec![
            common.join("config"),
            common.join("hooks"),
            common.join("worktrees/r1/config.worktree"),
            rec.path.join(".git"),
        ]
    );
}

#[test]
fn the_hosts_git_is_new_enough() {
    let version = kaged_worktree::check_version().unwrap();
    assert!(version.starts_with("2."), "{version}");
}

#[test]
fn a_vanished_worktree_with_commits_on_a_detached_head_is_snapshotted() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    unpushed_commit(&rec.path);
    git(&rec.path, &["switch", "-q", "--detach"]);
    write(&rec.path.join("d.txt"), b"detached\n");
    git(&rec.path, &["add", "d.txt"]);
    git(&rec.path, &["commit", "-qm", "on a detached HEAD"]);
    let head = git(&rec.path, &["rev-parse", "HEAD"]).trim().to_owned();
    std::fs::remove_dir_all(&rec.path).unwrap();
    let removal = fx.wt.remove("r1").unwrap();
    assert_eq!(removal.loss.unpushed.len(), 2);
    let snap = removal.snapshot.unwrap();
    assert_eq!(fx.rev(&format!("{}^1", snap.oid)), head);
    fx.assert_consistent();
}

#[test]
fn a_worktree_pruned_by_hand_is_recorded_removed() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    std::fs::remove_dir_all(&rec.path).unwrap();
    git(&fx.repo, &["worktree", "prune"]);
    let removal = fx.wt.remove("r1").unwrap();
    assert_eq!(removal.snapshot, None);
    assert_eq!(fx.wt.record("r1").unwrap().unwrap().state, State::Removed);
    fx.assert_consistent();
}

#[test]
fn removal_waits_for_a_git_still_running_in_the_worktree() {
    let fx = Fixture::new();
    let rec = fx.create("r1");
    untracked_files(&rec.path);
    let lock = rec.admin_dir.join("index.lock");
    write(&lock, b"");
    let err = fx.wt.remove("r1").unwrap_err();
    assert!(
        matches!(&err, Error::Locked { lock: l, .. } if l == &lock),
        "{err}"
    );
    assert!(rec.path.join("tools/gen.sh").exists());
    assert_eq!(fx.wt.snapshots(&fx.repo).unwrap(), vec![]);
    std::fs::remove_file(&lock).unwrap();
    fx.wt.remove_discarding_ignored("r1").unwrap();
}
