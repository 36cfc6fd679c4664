//! A git worktree per run, end to end: real git, real cages, declared shell-script agents, the
//! real binary. Each run's edits land on its own branch only; a cage cannot plant a hook or an
//! fsmonitor, and kaged's own git never runs one; cleanup snapshots before it removes, and the
//! snapshot restores every byte; merge refuses a dirty main checkout; bad input leaves nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kaged_api::{
    ErrorCode, ProjectView, SessionInfo, SessionList, SessionState, WorktreeList, WorktreeMerged,
    WorktreeRemoved, WorktreeReview, WorktreeRun, WorktreeState,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::fixture::{Session, TestDaemon, daemon, eventually, project_dir};

/// A commit needs an identity, and the operator's own git config must not leak in.
pub(super) fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {dir:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const WRITER: &str = "set -e\nrun=$(basename \"$PWD\")\nprintf '%s\\n' \"$run\" > note.txt\ngit add note.txt\ngit -c user.name=agent -c user.email=agent@cage commit -q -m \"note from $run\"\nsleep 1\n";

const MESSY: &str = "set -e\nprintf 'committed\\n' > committed.txt\ngit add committed.txt\ngit -c user.name=agent -c user.email=agent@cage commit -q -m committed\nprintf 'changed\\n' >> README.md\nprintf 'new\\n' > untracked.txt\nmkdir -p 'deep/a dir'\nprintf '#!/bin/sh\\necho hi\\n' > 'deep/a dir/tool.sh'\nchmod +x 'deep/a dir/tool.sh'\nprintf '\\000\\001\\002binary' > blob.bin\nln -s README.md link\n";

/// Tries, from inside the cage, everything that would make git run code on the host later;
/// exits 1 naming whatever got through.
fn escape_script(marker: &Path) -> String {
    let m = marker.display();
    format!(
        "common=$(git rev-parse --path-format=absolute --git-common-dir)\n\
         admin=$(git rev-parse --path-format=absolute --git-dir)\n\
         bad=0\n\
         if printf '#!/bin/sh\\ntouch {m}\\n' > \"$common/hooks/post-checkout\" 2>/dev/null; then echo PLANTED hook; bad=1; fi\n\
         if git config core.fsmonitor 'touch {m}' 2>/dev/null; then echo PLANTED fsmonitor; bad=1; fi\n\
         if git config core.hooksPath /tmp 2>/dev/null; then echo PLANTED hooksPath; bad=1; fi\n\
         if printf '[core]\\n\\tfsmonitor = touch {m}\\n' > \"$admin/config.worktree\" 2>/dev/null; then echo PLANTED config.worktree; bad=1; fi\n\
         if printf 'gitdir: /tmp/elsewhere\\n' > .git 2>/dev/null; then echo PLANTED gitfile; bad=1; fi\n\
         if printf '/tmp/elsewhere\\n' > \"$admin/commondir\" 2>/dev/null; then echo PLANTED commondir; bad=1; fi\n\
         if printf 'x' > \"$common/info/attributes\" 2>/dev/null; then echo PLANTED info; bad=1; fi\n\
         c=$(git -c user.name=agent -c user.email=agent@cage commit-tree -m planted 'HEAD^{{tree}}') || bad=1\n\
         if git update-ref refs/heads/main \"$c\" 2>/dev/null; then echo MOVED main; bad=1; fi\n\
         if git tag planted 2>/dev/null; then echo PLANTED tag; bad=1; fi\n\
         if git branch other 2>/dev/null; then echo PLANTED branch; bad=1; fi\n\
         if git update-ref refs/heads/escape/earlier \"$c\" 2>/dev/null; then echo MOVED earlier; bad=1; fi\n\
         if git update-ref -d refs/heads/escape/earlier 2>/dev/null; then echo DELETED earlier; bad=1; fi\n\
         printf 'edit\\n' > edit.txt && git add edit.txt && git -c user.name=agent -c user.email=agent@cage commit -q -m edit || bad=1\n\
         exit $bad\n"
    )
}

/// A git repository holding a project whose agents are the scripts above, committed on `main`.
fn repo(marker: &Path) -> tempfile::TempDir {
    let yaml = "version: 1\nproject: wt\nprimary:\n  command: [sh, -c, 'exit 0']\n  agents:\n    writer:\n      command: [sh, writer.sh]\n      workspace: worktree\n    messy:\n      command: [sh, messy.sh]\n      workspace: worktree\n      base: main\n    escape:\n      command: [sh, escape.sh]\n      workspace: worktree\n      branch: \"escape/{agent}-{n}\"\n";
    let dir = project_dir(yaml);
    let root = dir.path();
    std::fs::write(root.join("writer.sh"), WRITER).unwrap();
    std::fs::write(root.join("messy.sh"), MESSY).unwrap();
    std::fs::write(root.join("escape.sh"), escape_script(marker)).unwrap();
    std::fs::write(root.join("README.md"), "hello\n").unwrap();
    git_in(root, &["init", "-q", "-b", "main"]);
    git_in(root, &["add", "-A"]);
    git_in(root, &["commit", "-q", "-m", "initial"]);
    dir
}

fn load(d: &TestDaemon, s: &Session, root: &Path) -> ProjectView {
    let r = d.post(s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

fn start(d: &TestDaemon, s: &Session, body: Value) -> SessionInfo {
    let r = d.post(s, "/api/v1/projects/wt/sessions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

fn wait_exited(d: &TestDaemon, s: &Session, id: &str) -> SessionInfo {
    eventually(Duration::from_secs(30), || {
        let v: SessionInfo = d.get_as(s, &format!("/api/v1/sessions/{id}")).json_as();
        if v.state == SessionState::Exited {
            Ok(v)
        } else {
            Err(format!("session {id} never exited: {v:?}"))
        }
    })
}

fn transcript(d: &TestDaemon, s: &Session, id: &str) -> String {
    d.get_as(s, &format!("/api/v1/sessions/{id}/transcript"))
        .body
        .clone()
}

fn review(d: &TestDaemon, s: &Session, run: &str) -> WorktreeReview {
    let r = d.get_as(s, &format!("/api/v1/worktrees/{run}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

/// Every file under `dir` but `.git`: mode and bytes (a symlink's target for a link).
fn tree(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if rel == ".git" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, (0o120000, target.display().to_string().into_bytes()));
            } else if meta.is_dir() {
                walk(base, &path, out);
            } else {
                let mode = meta.permissions().mode() & 0o111;
                out.insert(rel, (mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn two_runs_at_once_each_commit_only_to_their_own_branch_and_merge_refuses_a_dirty_checkout() {
    let marker_dir = tempfile::tempdir().unwrap();
    let repo = repo(&marker_dir.path().join("marker"));
    let root = repo.path();
    let main_head = git_in(root, &["rev-parse", "HEAD"]);
    let d = daemon().start();
    let s = d.login();
    load(&d, &s, root);
    let a = start(&d, &s, json!({"agent": "primary.writer"}));
    let b = start(&d, &s, json!({"agent": "primary.writer"}));
    let (ra, rb) = (
        a.origin.worktree.clone().unwrap(),
        b.origin.worktree.clone().unwrap(),
    );
    assert_eq!((ra.as_str(), rb.as_str()), (a.id.as_str(), b.id.as_str()));
    for info in [&a, &b] {
        let ended = wait_exited(&d, &s, &info.id);
        assert_eq!(ended.exit_code, Some(0), "{}", transcript(&d, &s, &info.id));
    }
    let list: WorktreeList = d.get_as(&s, "/api/v1/projects/wt/worktrees").json_as();
    let mut branches: Vec<(&str, &str, WorktreeState)> = list
        .runs
        .iter()
        .map(|r| (r.branch.as_str(), r.run.as_str(), r.state))
        .collect();
    branches.sort_by_key(|b| b.0);
    assert_eq!(
        branches,
        vec![
            ("kaged/primary.writer/1", ra.as_str(), WorktreeState::Active),
            ("kaged/primary.writer/2", rb.as_str(), WorktreeState::Active),
        ]
    );
    for run in [&ra, &rb] {
        let rv = review(&d, &s, run);
        assert_eq!(rv.commits.len(), 1, "{rv:?}");
        assert_eq!(rv.commits[0].summary, format!("note from {run}"));
        let files: Vec<(&str, &str)> = rv
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.change.as_str()))
            .collect();
        assert_eq!(files, vec![("note.txt", "added")]);
        assert!(rv.diff.contains(&format!("+{run}")), "{}", rv.diff);
        assert_eq!(
            (rv.uncommitted_diff.as_str(), rv.run.ended_at.is_some()),
            ("", true)
        );
        let note = std::fs::read_to_string(Path::new(&rv.run.path).join("note.txt")).unwrap();
        assert_eq!(note, format!("{run}\n"));
    }
    // The main checkout saw none of it.
    assert_eq!(git_in(root, &["rev-parse", "HEAD"]), main_head);
    assert_eq!(git_in(root, &["status", "--porcelain"]), "");
    assert!(!root.join("note.txt").exists());

    // A dirty main checkout in a path the merge touches: 409 naming it, nothing moved.
    std::fs::write(root.join("note.txt"), "mine\n").unwrap();
    let r = d.post(
        &s,
        &format!("/api/v1/worktrees/{ra}/merge"),
        &json!({"mode": "fast_forward"}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (409, ErrorCode::Conflict),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error"]["details"]["paths"], json!(["note.txt"]));
    assert_eq!(git_in(root, &["rev-parse", "HEAD"]), main_head);
    assert_eq!(
        std::fs::read_to_string(root.join("note.txt")).unwrap(),
        "mine\n"
    );
    std::fs::remove_file(root.join("note.txt")).unwrap();
    let r = d.post(
        &s,
        &format!("/api/v1/worktrees/{ra}/merge"),
        &json!({"mode": "fast_forward"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let merged: WorktreeMerged = r.json_as();
    assert_eq!((merged.base.as_str(), merged.fast_forward), ("main", true));
    assert_eq!(
        std::fs::read_to_string(root.join("note.txt")).unwrap(),
        format!("{ra}\n")
    );
    // The other run added the same file differently: a merge commit conflicts, and says where.
    let r = d.post(
        &s,
        &format!("/api/v1/worktrees/{rb}/merge"),
        &json!({"mode": "merge_commit"}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (409, ErrorCode::Conflict),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error"]["details"]["paths"], json!(["note.txt"]));
    assert_eq!(git_in(root, &["status", "--porcelain"]), "");
    // A worktree made by hand is reported, never adopted or removed.
    let manual = marker_dir.path().join("by hand");
    git_in(
        root,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "by-hand",
            manual.to_str().unwrap(),
        ],
    );
    let unknown = d.get_as(&s, "/api/v1/projects/wt/worktrees/unknown");
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    let unknown: kaged_api::UnknownWorktreeList = unknown.json_as();
    let canonical = std::fs::canonicalize(&manual).unwrap();
    assert_eq!(
        unknown
            .worktrees
            .iter()
            .map(|u| (u.path.as_str(), u.branch.as_deref()))
            .collect::<Vec<_>>(),
        vec![(canonical.to_str().unwrap(), Some("refs/heads/by-hand"))]
    );
    let list: WorktreeList = d.get_as(&s, "/api/v1/projects/wt/worktrees").json_as();
    assert_eq!(list.runs.len(), 2);
}

#[test]
fn a_cage_cannot_plant_hooks_or_an_fsmonitor_and_kaged_runs_none_of_its_own_git() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("marker");
    let repo = repo(&marker);
    let root = repo.path();
    // Hooks and an fsmonitor the operator's own git would run, planted on the host: kaged's
    // git operations must run none of them.
    for hook in [
        "post-checkout",
        "post-merge",
        "pre-commit",
        "post-commit",
        "reference-transaction",
        "pre-merge-commit",
        "post-index-change",
    ] {
        let p = root.join(".git/hooks").join(hook);
        // `exit 0`: inside the cage, where the marker's directory does not exist, a failing
        // pre-commit hook would stop the agent's own commit.
        std::fs::write(
            &p,
            format!("#!/bin/sh\ntouch {}\nexit 0\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    git_in(
        root,
        &[
            "config",
            "core.fsmonitor",
            &format!("touch {}", marker.display()),
        ],
    );
    // An earlier run's branch beside this run's: the cage may commit on its own branch only.
    git_in(root, &["branch", "escape/earlier"]);
    let earlier = git_in(root, &["rev-parse", "escape/earlier"]);
    let d = daemon().start();
    let s = d.login();
    load(&d, &s, root);
    let info = start(&d, &s, json!({"agent": "primary.escape"}));
    let run = info.origin.worktree.clone().unwrap();
    let ended = wait_exited(&d, &s, &info.id);
    assert_eq!(ended.exit_code, Some(0), "{}", transcript(&d, &s, &info.id));
    let rv = review(&d, &s, &run);
    assert_eq!(rv.run.branch, "escape/primary.escape-1");
    assert_eq!(rv.commits.len(), 1);
    assert_eq!(git_in(root, &["rev-parse", "escape/earlier"]), earlier);
    assert_eq!(
        std::fs::read_to_string(root.join(".git/config"))
            .unwrap()
            .matches("fsmonitor")
            .count(),
        1
    );
    let r = d.post(&s, &format!("/api/v1/worktrees/{run}/merge"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}/branch"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!marker.exists(), "a hook or the fsmonitor ran");
}

#[test]
fn cleanup_snapshots_uncommitted_untracked_and_unpushed_work_and_the_snapshot_restores_every_byte()
{
    let marker_dir = tempfile::tempdir().unwrap();
    let repo = repo(&marker_dir.path().join("marker"));
    let d = daemon().start();
    let s = d.login();
    load(&d, &s, repo.path());
    let info = start(&d, &s, json!({"agent": "primary.messy"}));
    let run = info.origin.worktree.clone().unwrap();
    let ended = wait_exited(&d, &s, &info.id);
    assert_eq!(ended.exit_code, Some(0), "{}", transcript(&d, &s, &info.id));
    let before = review(&d, &s, &run);
    let original = tree(Path::new(&before.run.path));
    assert_eq!(before.changed, vec!["README.md"]);
    // A session in the worktree holds off its cleanup.
    let shell = start(
        &d,
        &s,
        json!({"argv": ["sleep", "30"], "workspace": {"kind": "existing", "run": run}}),
    );
    assert_eq!(shell.origin.worktree.as_deref(), Some(run.as_str()));
    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}"));
    assert_eq!(
        (r.status, r.error_code()),
        (409, ErrorCode::Conflict),
        "{}",
        r.body
    );
    assert!(r.error().error.message.contains(&shell.id), "{}", r.body);
    d.delete(&s, &format!("/api/v1/sessions/{}", shell.id));
    wait_exited(&d, &s, &shell.id);

    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let removed: WorktreeRemoved = r.json_as();
    let mut untracked = removed.loss.untracked.clone();
    untracked.sort();
    assert_eq!(
        (
            removed.loss.changed.clone(),
            untracked,
            removed.loss.unpushed.len()
        ),
        (
            vec!["README.md".to_owned()],
            vec![
                "blob.bin".to_owned(),
                "deep/a dir/tool.sh".to_owned(),
                "link".to_owned(),
                "untracked.txt".to_owned()
            ],
            1
        )
    );
    let snapshot = removed.snapshot.unwrap();
    assert_eq!(snapshot.reference, format!("refs/kaged/snapshots/{run}"));
    assert!(!Path::new(&before.run.path).exists());
    // The branch keeps the unpushed commit, and deleting it is refused only if nothing keeps
    // it: the snapshot does.
    let list: WorktreeList = d.get_as(&s, "/api/v1/projects/wt/worktrees").json_as();
    assert_eq!(
        list.snapshots
            .iter()
            .map(|s| s.run.as_str())
            .collect::<Vec<_>>(),
        vec![run.as_str()]
    );

    let r = d.post(&s, &format!("/api/v1/worktrees/{run}/restore"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let restored: WorktreeRun = r.json_as();
    assert_eq!(restored.branch, format!("{}-restored-1", before.run.branch));
    assert_eq!(tree(Path::new(&restored.path)), original);
    assert_eq!(
        git_in(Path::new(&restored.path), &["rev-parse", "HEAD"]).trim(),
        before.head
    );
    // Another run of the agent on the restored worktree sees the same files.
    let again = start(
        &d,
        &s,
        json!({"argv": ["sh", "-c", "test -x 'deep/a dir/tool.sh' && grep -q changed README.md"],
               "workspace": {"kind": "existing", "run": restored.run}}),
    );
    assert_eq!(wait_exited(&d, &s, &again.id).exit_code, Some(0));
}

#[test]
fn bad_input_gets_a_precise_error_and_leaves_nothing_behind() {
    let wt_dir = tempfile::tempdir().unwrap();
    let local = format!("[worktrees]\ndir = \"{}\"\n", wt_dir.path().display());
    let marker_dir = tempfile::tempdir().unwrap();
    let repo = repo(&marker_dir.path().join("marker"));
    let root = repo.path();
    git_in(root, &["branch", "wip/taken"]);
    let d = daemon().local_toml(&local).start();
    let s = d.login();
    load(&d, &s, root);
    let cases = [
        (
            json!({"agent": "primary.writer", "workspace": {"kind": "worktree", "base": "nope"}}),
            400,
            ErrorCode::ValidationFailed,
            "base branch \"nope\" does not exist",
        ),
        (
            json!({"agent": "primary.writer", "workspace": {"kind": "worktree", "branch": "wip/taken"}}),
            409,
            ErrorCode::Conflict,
            "branch \"wip/taken\" already exists",
        ),
        (
            json!({"agent": "primary.writer", "workspace": {"kind": "worktree", "branch": "next-{n}"}}),
            400,
            ErrorCode::ValidationFailed,
            "has no `/`",
        ),
        (
            json!({"agent": "primary.writer", "workspace": {"kind": "worktree", "branch": "x/{who}"}}),
            400,
            ErrorCode::ValidationFailed,
            "unknown placeholder {who}",
        ),
        (
            json!({"workspace": {"kind": "existing", "run": "0123"}}),
            404,
            ErrorCode::NotFound,
            "no worktree run with id \"0123\"",
        ),
        (
            json!({"agent": "primary.writer", "workspace": {"kind": "elsewhere"}}),
            400,
            ErrorCode::ValidationFailed,
            "unknown variant `elsewhere`",
        ),
    ];
    for (body, status, code, part) in cases {
        let r = d.post(&s, "/api/v1/projects/wt/sessions", &body);
        assert_eq!(
            (r.status, r.error_code()),
            (status, code),
            "{body}: {}",
            r.body
        );
        assert!(r.error().error.message.contains(part), "{body}: {}", r.body);
    }
    // A repository with no commits yet.
    let empty = project_dir(
        "version: 1\nproject: empty\nprimary:\n  command: [sh, -c, 'exit 0']\n  workspace: worktree\n",
    );
    git_in(empty.path(), &["init", "-q", "-b", "main"]);
    load_as(&d, &s, empty.path());
    let r = d.post(
        &s,
        "/api/v1/projects/empty/sessions",
        &json!({"agent": "primary"}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (400, ErrorCode::ValidationFailed),
        "{}",
        r.body
    );
    assert!(
        r.error().error.message.contains("has no commits yet"),
        "{}",
        r.body
    );
    // Nothing was left: no branch, no worktree, no session, no directory.
    assert_eq!(
        git_in(root, &["branch", "--format=%(refname:short)"]),
        "main\nwip/taken\n"
    );
    assert_eq!(
        git_in(root, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    assert_eq!(git_in(empty.path(), &["branch", "--list"]), "");
    let sessions: SessionList = d.get_as(&s, "/api/v1/sessions").json_as();
    assert_eq!(sessions.sessions, vec![]);
    let left: Vec<PathBuf> = std::fs::read_dir(wt_dir.path())
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert_eq!(left, Vec::<PathBuf>::new());
    let list: WorktreeList = d.get_as(&s, "/api/v1/projects/wt/worktrees").json_as();
    assert_eq!((list.runs.len(), list.snapshots.len()), (0, 0));
    // Review and cleanup of a run that does not exist.
    for r in [
        d.get_as(&s, "/api/v1/worktrees/nope"),
        d.delete(&s, "/api/v1/worktrees/nope"),
        d.post(
            &s,
            "/api/v1/worktrees/nope/merge",
            &json!({"mode": "sideways"}),
        ),
    ] {
        assert!(matches!(r.status, 400 | 404), "{}", r.body);
        assert!(
            r.body.contains("nope") || r.body.contains("sideways"),
            "{}",
            r.body
        );
    }
}

fn load_as(d: &TestDaemon, s: &Session, root: &Path) {
    let r = d.post(s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A daemon sweeping after `sweep_idle`, and one run of `agent` that has ended well. Bind
/// `_marker` and `_repo` where it is taken apart: they keep the directories alive.
struct Ended {
    _marker: tempfile::TempDir,
    _repo: tempfile::TempDir,
    d: TestDaemon,
    s: Session,
    info: SessionInfo,
    run: String,
}

fn ended_run(sweep_idle: &str, agent: &str) -> Ended {
    let marker = tempfile::tempdir().unwrap();
    let repo = repo(&marker.path().join("marker"));
    let d = daemon()
        .local_toml(&format!("[worktrees]\nsweep_idle = \"{sweep_idle}\"\n"))
        .start();
    let s = d.login();
    load(&d, &s, repo.path());
    let info = start(&d, &s, json!({ "agent": agent }));
    let run = info.origin.worktree.clone().unwrap();
    assert_eq!(wait_exited(&d, &s, &info.id).exit_code, Some(0));
    Ended {
        _marker: marker,
        _repo: repo,
        d,
        s,
        info,
        run,
    }
}

#[test]
fn cleanup_refuses_to_delete_ignored_files_unless_told_and_the_sweep_never_does() {
    let marker_dir = tempfile::tempdir().unwrap();
    let repo = repo(&marker_dir.path().join("marker"));
    let root = repo.path();
    std::fs::write(root.join(".gitignore"), ".env\nbuild/\n").unwrap();
    git_in(root, &["add", ".gitignore"]);
    git_in(root, &["commit", "-q", "-m", "ignore"]);
    let d = daemon()
        .local_toml("[worktrees]\nsweep_idle = \"1s\"\n")
        .start();
    let s = d.login();
    load(&d, &s, root);
    // An agent that leaves a secret and a build behind, both ignored.
    let info = start(
        &d,
        &s,
        json!({"argv": ["sh", "-c", "printf 'TOKEN=x\\n' > .env; mkdir -p build; printf bin > build/app"],
               "workspace": {"kind": "worktree"}}),
    );
    let run = info.origin.worktree.clone().unwrap();
    wait_exited(&d, &s, &info.id);
    let path = PathBuf::from(review(&d, &s, &run).run.path);
    // The sweep is due after a second, but leaves it: it would delete what no snapshot holds.
    eventually(Duration::from_secs(20), || {
        let audit: kaged_api::AuditPage = d
            .get_as(&s, "/api/v1/audit?type=worktree.refused")
            .json_as();
        audit
            .events
            .iter()
            .any(|e| e.data["run"] == json!(run) && e.data["by"] == json!("sweep"))
            .then_some(())
            .ok_or_else(|| format!("no refused sweep yet: {audit:?}"))
    });
    assert!(path.join(".env").exists() && path.join("build/app").exists());
    // A refusal that stands is audited once, not on every tick of the sweep.
    std::thread::sleep(Duration::from_millis(2500));
    let audit: kaged_api::AuditPage = d
        .get_as(&s, "/api/v1/audit?type=worktree.refused")
        .json_as();
    assert_eq!(audit.events.len(), 1, "{audit:?}");
    // A cleanup is refused with the paths, and changes nothing.
    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}"));
    assert_eq!(
        (r.status, r.error_code()),
        (409, ErrorCode::Conflict),
        "{}",
        r.body
    );
    assert_eq!(
        r.json()["error"]["details"]["paths"],
        json!([".env", "build/"])
    );
    assert!(
        r.error().error.message.contains("no snapshot keeps"),
        "{}",
        r.body
    );
    assert_eq!(
        std::fs::read_to_string(path.join(".env")).unwrap(),
        "TOKEN=x\n"
    );
    // Told to, it deletes them and says which.
    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}?discard_ignored=true"));
    assert_eq!(r.status, 200, "{}", r.body);
    let removed: WorktreeRemoved = r.json_as();
    assert_eq!(removed.loss.ignored, vec![".env", "build/"]);
    assert!(!path.exists());
    let r = d.delete(
        &s,
        &format!("/api/v1/worktrees/{run}?discard_ignored=maybe"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn an_agent_cli_that_cannot_run_in_its_cage_is_refused_and_leaves_no_worktree() {
    let repo = project_dir(
        "version: 1\nproject: wt\nprimary:\n  command: [claude, -p, hi]\n  workspace: worktree\n",
    );
    let root = repo.path();
    std::fs::write(root.join("README.md"), "hello\n").unwrap();
    git_in(root, &["init", "-q", "-b", "main"]);
    git_in(root, &["add", "-A"]);
    git_in(root, &["commit", "-q", "-m", "initial"]);
    // `claude` as an npm prefix in the operator's home leaves it: a script no cage can run
    // from one file.
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("npm/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("claude"),
        "#!/usr/bin/env node\nrequire('../lib/cli.js')\n",
    )
    .unwrap();
    std::fs::set_permissions(bin.join("claude"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = daemon()
        .env("PATH", &format!("{}:/usr/bin:/bin", bin.display()))
        .start();
    let s = d.login();
    load(&d, &s, root);
    let r = d.post(
        &s,
        "/api/v1/projects/wt/sessions",
        &json!({"agent": "primary"}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (400, ErrorCode::ValidationFailed),
        "{}",
        r.body
    );
    let message = r.error().error.message;
    assert!(
        message.contains(&bin.join("claude").display().to_string()) && message.contains("script"),
        "{message}"
    );
    // Nothing of the start is left: no run, no worktree, no branch, no session.
    let list: WorktreeList = d.get_as(&s, "/api/v1/projects/wt/worktrees").json_as();
    assert!(
        list.runs.iter().all(|r| r.state == WorktreeState::Removed),
        "{list:?}"
    );
    assert_eq!(
        git_in(root, &["branch", "--format=%(refname:short)"]),
        "main\n"
    );
    assert_eq!(
        git_in(root, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    let sessions: SessionList = d.get_as(&s, "/api/v1/sessions").json_as();
    assert_eq!(sessions.sessions.len(), 0);
}

#[test]
fn a_later_session_in_an_ended_runs_worktree_starts_its_idle_time_again() {
    let Ended {
        d,
        s,
        info,
        run,
        _marker,
        _repo,
    } = ended_run("4s", "primary.writer");
    let first_end = std::time::Instant::now();
    // The operator opens a shell in the run's worktree a moment later, for a few seconds.
    std::thread::sleep(Duration::from_secs(1));
    let shell = start(
        &d,
        &s,
        json!({"argv": ["sleep", "4"], "workspace": {"kind": "existing", "run": run}}),
    );
    wait_exited(&d, &s, &shell.id);
    let state = || {
        let list: WorktreeList = d.get_as(&s, "/api/v1/projects/wt/worktrees").json_as();
        list.runs
            .into_iter()
            .find(|r| r.run == run)
            .map(|r| r.state)
    };
    // Past the run's own end plus the idle time, but not the shell's: still there.
    let due_by_first = Duration::from_secs(4) + Duration::from_secs(3);
    if let Some(wait) = due_by_first.checked_sub(first_end.elapsed()) {
        std::thread::sleep(wait);
    }
    assert_eq!(
        state(),
        Some(WorktreeState::Active),
        "swept from the run's first end"
    );
    eventually(Duration::from_secs(20), || match state() {
        Some(WorktreeState::Removed) => Ok(()),
        other => Err(format!("not swept yet: {other:?}")),
    });
    let audit: kaged_api::AuditPage = d.get_as(&s, "/api/v1/audit?type=worktree.").json_as();
    let ended: Vec<Value> = audit
        .events
        .iter()
        .filter(|e| e.kind == "worktree.ended")
        .map(|e| e.data["session"].clone())
        .rev()
        .collect();
    assert_eq!(ended, vec![json!(info.id), json!(shell.id)]);
}

#[test]
fn an_ended_runs_worktree_is_swept_after_its_idle_time_by_the_snapshot_first_path() {
    let Ended {
        d,
        s,
        run,
        _marker,
        _repo,
        ..
    } = ended_run("1s", "primary.messy");
    let swept = eventually(Duration::from_secs(20), || {
        let list: WorktreeList = d.get_as(&s, "/api/v1/projects/wt/worktrees").json_as();
        match list.runs.into_iter().find(|r| r.run == run) {
            Some(r) if r.state == WorktreeState::Removed => Ok(r),
            other => Err(format!("not swept yet: {other:?}")),
        }
    });
    assert_eq!(
        swept.snapshot,
        Some(format!("refs/kaged/snapshots/{run}")),
        "the sweep removed unsaved work without a snapshot"
    );
    let audit: kaged_api::AuditPage = d.get_as(&s, "/api/v1/audit?type=worktree.").json_as();
    let mut rows: Vec<(String, Value)> =
        audit.events.into_iter().map(|e| (e.kind, e.data)).collect();
    rows.reverse();
    let kinds: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["worktree.created", "worktree.ended", "worktree.removed"]
    );
    assert_eq!(rows[2].1["by"], json!("sweep"));
    assert_eq!(rows[2].1["untracked"].as_array().map(Vec::len), Some(4));
}

#[test]
fn after_kill_9_the_adopted_session_still_holds_its_worktree_and_its_end_starts_the_idle_time() {
    let marker_dir = tempfile::tempdir().unwrap();
    let repo = repo(&marker_dir.path().join("marker"));
    let mut d = daemon().start();
    let s = d.login();
    load(&d, &s, repo.path());
    let info = start(
        &d,
        &s,
        json!({"argv": ["sh", "-c", "echo work > w.txt; sleep 300"],
               "workspace": {"kind": "worktree", "branch": "long/{n}"}}),
    );
    let run = info.origin.worktree.clone().unwrap();
    d.kill9();
    let d = d.start_again(None);
    let s = d.login();
    let adopted: SessionInfo = d
        .get_as(&s, &format!("/api/v1/sessions/{}", info.id))
        .json_as();
    assert!(adopted.adopted_at.is_some(), "{adopted:?}");
    assert_eq!(adopted.origin.worktree.as_deref(), Some(run.as_str()));
    // Still in use after the restart: cleanup waits for the session.
    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}"));
    assert_eq!(
        (r.status, r.error_code()),
        (409, ErrorCode::Conflict),
        "{}",
        r.body
    );
    let rv = review(&d, &s, &run);
    assert_eq!(
        (rv.run.sessions.clone(), rv.run.ended_at),
        (vec![info.id.clone()], None)
    );
    assert_eq!(rv.untracked, vec!["w.txt"]);
    d.delete(&s, &format!("/api/v1/sessions/{}", info.id));
    wait_exited(&d, &s, &info.id);
    let ended = eventually(Duration::from_secs(10), || {
        let rv = review(&d, &s, &run);
        rv.run
            .ended_at
            .ok_or_else(|| format!("not marked ended: {:?}", rv.run))
    });
    assert!(ended > 0);
    let r = d.delete(&s, &format!("/api/v1/worktrees/{run}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let removed: WorktreeRemoved = r.json_as();
    assert_eq!(removed.loss.untracked, vec!["w.txt"]);
    assert!(removed.snapshot.is_some());
}

#[test]
fn a_create_a_crash_stopped_half_way_is_rolled_back_before_serving_and_audited() {
    let marker_dir = tempfile::tempdir().unwrap();
    let repo = repo(&marker_dir.path().join("marker"));
    let root = repo.path();
    let mut d = daemon().start();
    let s = d.login();
    let status: kaged_api::Status = d.get_as(&s, "/api/v1/status").json_as();
    assert!(d.terminate().success(), "{}", d.stderr());
    // The daemon's own journal, stopped after the branch and the worktree exist but before
    // the run is registered: what a kill -9 at that moment leaves.
    let db = rusqlite::Connection::open(&status.paths.database).unwrap();
    let mut wt = kaged_worktree::Worktrees::open(db).unwrap();
    wt.set_failpoint(Some(Box::new(|step, phase| {
        (step, phase)
            == (
                kaged_worktree::Step::Register,
                kaged_worktree::Phase::Before,
            )
    })));
    let dir = marker_dir.path().join("worktrees");
    let err = wt
        .create(&kaged_worktree::CreateRequest {
            run: "crashed".into(),
            repo: root.to_owned(),
            base: None,
            branch: "kaged/crashed/1".into(),
            dir: dir.clone(),
        })
        .unwrap_err();
    assert!(
        matches!(err, kaged_worktree::Error::Failpoint { .. }),
        "{err}"
    );
    drop(wt);
    assert!(dir.join("crashed").exists());

    let d = d.start_again(None);
    let s = d.login();
    let audit: kaged_api::AuditPage = d
        .get_as(&s, "/api/v1/audit?type=worktree.recovered")
        .json_as();
    let rows: Vec<Value> = audit.events.into_iter().map(|e| e.data).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (&rows[0]["run"], &rows[0]["kind"], &rows[0]["outcome"]),
        (&json!("crashed"), &json!("create"), &json!("rolled_back"))
    );
    assert!(!dir.join("crashed").exists());
    assert_eq!(
        git_in(root, &["branch", "--format=%(refname:short)"]),
        "main\n"
    );
    assert_eq!(
        git_in(root, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
}

/// With several operators (the auth sidecar), a run restored from a snapshot belongs to whoever
/// restored it (and admins), as a run a session made belongs to that session's owner.
#[test]
fn with_several_operators_a_restored_run_belongs_to_who_restored_it() {
    use crate::suite::operators::{Op, sidecar};
    let marker_dir = tempfile::tempdir().unwrap();
    let repo = repo(&marker_dir.path().join("marker"));
    let mut d = sidecar(false);
    let (alice, bob, admin) = (
        Op::new(&d, "alice", "dev"),
        Op::new(&d, "bob", "dev"),
        Op::new(&d, "root", "ops"),
    );
    let load = json!({"path": repo.path()}).to_string();
    let r = alice.call(&d, "POST", "/api/v1/projects", Some(&load));
    assert_eq!(r.status, 200, "{}", r.body);
    let body = json!({"agent": "primary.messy"}).to_string();
    let r = alice.call(&d, "POST", "/api/v1/projects/wt/sessions", Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let info: SessionInfo = r.json_as();
    let run = info.origin.worktree.clone().unwrap();
    eventually(Duration::from_secs(30), || {
        let v: SessionInfo = alice
            .call(&d, "GET", &format!("/api/v1/sessions/{}", info.id), None)
            .json_as();
        (v.state == SessionState::Exited)
            .then_some(())
            .ok_or(format!("{v:?}"))
    });
    // Alice's own run: hers to clean up and restore, not bob's.
    let path = format!("/api/v1/worktrees/{run}");
    assert_eq!(bob.call(&d, "GET", &path, None).status, 403);
    let r = alice.call(&d, "DELETE", &path, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = alice.call(&d, "POST", &format!("{path}/restore"), Some("{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let restored: WorktreeRun = r.json_as();
    let restored_path = format!("/api/v1/worktrees/{}", restored.run);
    for (who, want) in [(&bob, 403), (&alice, 200), (&admin, 200)] {
        let r = who.call(&d, "GET", &restored_path, None);
        assert_eq!(r.status, want, "{}: {}", who.user, r.body);
    }
    let r = bob.call(&d, "DELETE", &restored_path, None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("was restored by alice"), "{}", r.body);
    let r = bob.call(
        &d,
        "POST",
        "/api/v1/projects/wt/sessions",
        Some(
            &json!({"argv": ["true"], "workspace": {"kind": "existing", "run": restored.run}})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // The owner is kept in the database: after a restart she still works in it, bob still not.
    assert!(d.terminate().success(), "{}", d.stderr());
    let d = d.start_again(None);
    let (alice, bob) = (Op::new(&d, "alice", "dev"), Op::new(&d, "bob", "dev"));
    assert_eq!(bob.call(&d, "GET", &restored_path, None).status, 403);
    let body = json!({"argv": ["true"], "workspace": {"kind": "existing", "run": restored.run}});
    let r = alice.call(
        &d,
        "POST",
        "/api/v1/projects/wt/sessions",
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
