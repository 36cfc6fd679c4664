//! Two real agent CLIs on one repository at once, each in its own worktree: Claude Code and
//! Codex, installed the way the native installers leave them (a symlink in a bin directory
//! of the operator's that no cage sees), caged with `network: {allow: []}`, talking to the
//! scripted fake provider through their gateways. Each commits a note and leaves an edit; each
//! one's work is on its own branch and in its own worktree only, and the main checkout is
//! untouched.

use std::path::Path;
use std::time::Duration;

use kaged_api::{SessionInfo, SessionState, SettingKind, WorktreeList};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::agents::{ANTHROPIC_KEY, OPENAI_KEY, agent_binary, approve_all, provider_daemon};
use super::worktrees::git_in;
use crate::fixture::llm::{Api, FakeLlm, Script};
use crate::fixture::{eventually, project_dir};

/// The command the scripted model asks each CLI to run: a note naming its worktree,
/// committed on whatever branch the worktree has checked out, then where it ran (the fake
/// provider writes the next step's file there).
const COMMIT_NOTE: &str = "run=$(basename \"$PWD\"); printf '%s\\n' \"$run\" > note.txt && \
     git add note.txt && \
     git -c user.name=agent -c user.email=agent@cage commit -q -m \"note from $run\" && pwd";

const PROJECT: &str = "version: 1\nproject: duo\nprimary:\n  command: [sh, -c, 'exit 0']\n  \
    agents:\n    claude:\n      model: smart\n      command: [claude, -p, Do the scripted task.]\n      \
    tools: [shell, read, write]\n      workspace: worktree\n      \
    cage: {network: {allow: []}, state: persistent, env: [TERM]}\n    codex:\n      \
    model: coder\n      command: [codex, exec, --skip-git-repo-check, Do the scripted task.]\n      \
    tools: [shell, read, write]\n      workspace: worktree\n      \
    cage: {network: {allow: []}, state: persistent, env: [TERM]}\n";

#[test]
fn claude_code_and_codex_at_once_each_work_only_in_their_own_worktree() {
    let (Some(claude), Some(codex)) = (agent_binary("claude"), agent_binary("codex")) else {
        return;
    };
    let repo = project_dir(PROJECT);
    let root = std::fs::canonicalize(repo.path()).unwrap();
    std::fs::write(root.join("README.md"), "hello\n").unwrap();
    git_in(&root, &["init", "-q", "-b", "main"]);
    git_in(&root, &["add", "-A"]);
    git_in(&root, &["commit", "-q", "-m", "initial"]);
    let main_head = git_in(&root, &["rev-parse", "HEAD"]);

    // The operator's own bin directory, outside the project and every system path.
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join(".local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&claude, bin.join("claude")).unwrap();
    std::os::unix::fs::symlink(&codex, bin.join("codex")).unwrap();

    let llm = FakeLlm::start(
        &ANTHROPIC_KEY.concat(),
        &OPENAI_KEY.concat(),
        Script {
            workdir: None,
            shell: COMMIT_NOTE.to_owned(),
            file: "edited-by-agent.txt".into(),
            content: "written by the caged agent\n".into(),
            finish: "All done: the scripted task is finished.".into(),
        },
    );
    let d = provider_daemon(&llm, &home.path().join("ca.pem"), &bin).start();
    let s = d.login();
    let r = d.post(&s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    let start = |agent: &str| {
        let r = d.post(
            &s,
            "/api/v1/projects/duo/sessions",
            &json!({"agent": agent, "cols": 200, "rows": 50}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json_as::<SessionInfo>()
    };
    let runs = [start("primary.claude"), start("primary.codex")];

    // Both run at once; their tool calls are approved as they are held.
    let ended: Vec<SessionInfo> = runs
        .iter()
        .map(|run| {
            eventually(Duration::from_secs(240), || {
                approve_all(&d, &s);
                let v: SessionInfo = d
                    .get_as(&s, &format!("/api/v1/sessions/{}", run.id))
                    .json_as();
                (v.state == SessionState::Exited)
                    .then_some(v.clone())
                    .ok_or_else(|| format!("{v:?}\nseen: {:#?}", llm.seen()))
            })
        })
        .collect();
    let transcript = |id: &str| {
        d.get_as(&s, &format!("/api/v1/sessions/{id}/transcript"))
            .body
    };
    for info in &ended {
        assert_eq!(
            info.exit_code,
            Some(0),
            "{}\nseen: {:#?}\naudit: {}\ndaemon: {}",
            transcript(&info.id),
            llm.seen(),
            d.get_as(&s, "/api/v1/audit?type=egress.&limit=50").body,
            d.stderr()
        );
        // Each CLI was found in the operator's bin directory and bound alone, read-only.
        let agent = info.origin.agent.clone().expect("an adapter record");
        let cli = Path::new(&agent.settings[0].name)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            (agent.settings[0].kind, agent.settings[0].name.as_str()),
            (
                SettingKind::Mount,
                format!("/run/kaged-agent/bin/{cli}").as_str()
            ),
            "{:#?}",
            agent.settings
        );
        let value = agent.settings[0].value.clone().unwrap_or_default();
        assert!(
            value.starts_with(&bin.join(&cli).display().to_string()),
            "{value}"
        );
    }
    // The whole script played once per API, always with the real key added by a gateway.
    let seen = llm.seen();
    assert!(seen.iter().all(|r| r.key_ok), "{seen:#?}");
    for api in [Api::Anthropic, Api::OpenAi] {
        let steps: Vec<&str> = seen
            .iter()
            .filter(|r| r.api == api && ["shell", "edit", "finish"].contains(&r.step))
            .map(|r| r.step)
            .collect();
        assert_eq!(steps, vec!["shell", "edit", "finish"], "{api:?}: {seen:#?}");
    }

    // One worktree and branch per run; each holds its own note, committed on its branch, and
    // its own edit, and nothing of the other's.
    let list: WorktreeList = d.get_as(&s, "/api/v1/projects/duo/worktrees").json_as();
    let mut branches: Vec<&str> = list.runs.iter().map(|r| r.branch.as_str()).collect();
    branches.sort_unstable();
    assert_eq!(
        branches,
        vec!["kaged/primary.claude/1", "kaged/primary.codex/1"]
    );
    let mut notes = Vec::new();
    for info in &ended {
        let run = info.origin.worktree.clone().expect("a worktree run");
        let r = d.get_as(&s, &format!("/api/v1/worktrees/{run}"));
        assert_eq!(r.status, 200, "{}", r.body);
        let rv: kaged_api::WorktreeReview = r.json_as();
        let dir = Path::new(&rv.run.path);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let summaries: Vec<&str> = rv.commits.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(summaries, vec![format!("note from {name}")], "{rv:#?}");
        let files: Vec<(&str, &str)> = rv
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.change.as_str()))
            .collect();
        // Touched: the committed note and the edit not yet committed.
        assert_eq!(
            files,
            vec![("edited-by-agent.txt", "added"), ("note.txt", "added")]
        );
        assert_eq!(
            rv.untracked,
            vec!["edited-by-agent.txt".to_owned()],
            "{rv:#?}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("edited-by-agent.txt")).unwrap(),
            "written by the caged agent\n"
        );
        let note = git_in(dir, &["show", &format!("{}:note.txt", rv.run.branch)]);
        assert_eq!(note, format!("{name}\n"));
        notes.push(note);
    }
    assert_ne!(notes[0], notes[1]);
    // The main checkout saw none of it.
    assert_eq!(git_in(&root, &["rev-parse", "HEAD"]), main_head);
    assert_eq!(git_in(&root, &["status", "--porcelain"]), "");
    for f in ["note.txt", "edited-by-agent.txt"] {
        assert!(!root.join(f).exists(), "{f} is in the main checkout");
    }
    // Neither key reached a transcript.
    for info in &ended {
        let t = transcript(&info.id);
        for key in [ANTHROPIC_KEY.concat(), OPENAI_KEY.concat()] {
            assert!(!t.contains(&key), "a key is in a transcript");
        }
    }
}
