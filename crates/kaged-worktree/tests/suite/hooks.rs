//! A hook or fsmonitor planted in the repository never runs during kaged's git operations.

use std::path::Path;

use kaged_worktree::{MergeMode, RestoreRequest};

use super::fixture::{Fixture, chmod, git, plain_git, write};

/// Plants every hook the operations could trigger, and an fsmonitor, each touching a marker.
fn plant(fx: &Fixture, marker: &Path) {
    let script = format!("#!/bin/sh\necho \"$0\" >> '{}'\n", marker.display());
    for hook in [
        "post-checkout",
        "pre-commit",
        "post-commit",
        "post-merge",
        "pre-merge-commit",
        "reference-transaction",
        "post-index-change",
    ] {
        let path = fx.repo.join(".git/hooks").join(hook);
        write(&path, script.as_bytes());
        chmod(&path, 0o755);
    }
    let fsmonitor = fx.root.join("fsmonitor.sh");
    write(&fsmonitor, script.as_bytes());
    chmod(&fsmonitor, 0o755);
    git(
        &fx.repo,
        &["config", "core.fsmonitor", fsmonitor.to_str().unwrap()],
    );
}

#[test]
fn planted_hooks_and_fsmonitor_never_run_in_any_kaged_operation() {
    let fx = Fixture::new();
    let marker = fx.root.join("marker");
    plant(&fx, &marker);

    let rec = fx.create("r1");
    write(&rec.path.join("agent.txt"), b"agent\n");
    git(&rec.path, &["add", "agent.txt"]);
    git(&rec.path, &["commit", "-qm", "agent"]);
    write(&rec.path.join("scratch.txt"), b"untracked\n");
    fx.wt.review("r1").unwrap();
    fx.wt.would_lose("r1").unwrap();
    fx.wt.snapshot("r1").unwrap();
    fx.wt.merge("r1", MergeMode::MergeCommit).unwrap();
    fx.wt.remove("r1").unwrap();
    fx.wt
        .restore(&RestoreRequest {
            from_run: "r1".to_owned(),
            run: "r2".to_owned(),
            branch: "kaged/agent/r2".to_owned(),
            dir: fx.dir.clone(),
        })
        .unwrap();
    fx.wt.remove("r2").unwrap();
    fx.wt.delete_branch("r2").unwrap();
    fx.wt.unknown_worktrees(&fx.repo).unwrap();
    fx.wt.recover().unwrap();
    assert!(
        !marker.exists(),
        "a planted hook ran: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );

    // The planted hooks are real: plain git runs them.
    let out = plain_git(&fx.repo)
        .args(["checkout", "-q", "-b", "proof"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        marker.exists(),
        "the planted post-checkout hook should run under plain git"
    );
}
