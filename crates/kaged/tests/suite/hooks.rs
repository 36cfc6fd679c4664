//! Structured hooks and approvals: a caged agent's CLI reaches the daemon only through its
//! agent socket, which speaks nothing but hook messages and is rate-limited; real Claude Code's
//! PreToolUse hook holds each command until the operator approves or denies it through the
//! API, or the configured default applies.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kaged_api::{
    AgentSignal, AgentStatus, Approval, ApprovalList, AuditPage, CageState, HookDecision, Network,
    SessionInfo, SessionState,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::agents::{agent_binary, approve_all};
use crate::fixture::llm::{FakeLlm, Script};
use crate::fixture::{Session, TestDaemon, daemon, eventually, project_dir};

const ANTHROPIC_KEY: &str = "sk-ant-api03-hookstest-REALKEY-7d1e";

/// A project whose primary agent is real Claude Code in a filtered cage, the fake provider
/// scripted to run `command` and then write a file, and a daemon with `config`.
struct Setup {
    d: TestDaemon,
    s: Session,
    llm: FakeLlm,
    root: PathBuf,
    _project: tempfile::TempDir,
}

fn setup(binary: &Path, command: &str, config: &str) -> Setup {
    let project = project_dir("version: 1\nproject: placeholder\n");
    let root = std::fs::canonicalize(project.path()).unwrap();
    let bin_dir = root.join(".agent-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    if std::fs::hard_link(binary, bin_dir.join("claude")).is_err() {
        std::fs::copy(binary, bin_dir.join("claude")).unwrap();
    }
    std::fs::write(
        root.join(".kaged/project.yaml"),
        "version: 1\nproject: agents\nprimary:\n  model: smart\n  \
         command: [claude, -p, Do the scripted task.]\n  tools: [shell, read, write]\n  \
         cage:\n    network: {allow: []}\n    state: persistent\n    env: [TERM, PATH]\n",
    )
    .unwrap();
    let llm = FakeLlm::start(
        ANTHROPIC_KEY,
        "sk-proj-unused",
        Script {
            workdir: Some(root.clone()),
            shell: command.to_owned(),
            file: "written.txt".into(),
            content: "written by the agent\n".into(),
            finish: "All done.".into(),
        },
    );
    let ca_file = root.join(".agent-bin/ca.pem");
    std::fs::write(&ca_file, &llm.ca_pem).unwrap();
    let port = llm.port;
    let d = daemon()
        .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        .env(
            "PATH",
            &format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
        )
        .config(config, 0o600)
        .local_toml(&format!(
            "[models]\nsmart = \"anthropic:claude-sonnet-4-5\"\n\n\
             [providers.anthropic]\napi_key_env = \"ANTHROPIC_API_KEY\"\nbase_url = \"https://localhost:{port}\"\n\n\
             [egress]\nallow_private = [\"localhost:{port}\"]\nextra_ca_file = \"{}\"\n",
            ca_file.display()
        ))
        .start();
    let s = d.login();
    let r = d.post(&s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    Setup {
        d,
        s,
        llm,
        root,
        _project: project,
    }
}

impl Setup {
    fn start_run(&self) -> String {
        let r = self.d.post(
            &self.s,
            "/api/v1/projects/agents/sessions",
            &json!({"agent": "primary", "cols": 200, "rows": 50}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json_as::<SessionInfo>().id
    }

    fn session(&self, id: &str) -> SessionInfo {
        self.d
            .get_as(&self.s, &format!("/api/v1/sessions/{id}"))
            .json_as()
    }

    /// The held call of run `id` for `tool`.
    fn approval(&self, id: &str, tool: &str) -> Approval {
        eventually(Duration::from_secs(120), || {
            let list: ApprovalList = self.d.get_as(&self.s, "/api/v1/approvals").json_as();
            list.approvals
                .into_iter()
                .find(|a| a.session_id == id && a.tool == tool)
                .ok_or_else(|| format!("no held {tool} call; seen: {:#?}", self.llm.seen()))
        })
    }

    fn answer(&self, approval: &Approval, body: serde_json::Value) {
        let r = self.d.post(
            &self.s,
            &format!("/api/v1/approvals/{}", approval.id),
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Waits for run `id` to end, approving whatever else it asks (`approve_rest`).
    fn wait_end(&self, id: &str, approve_rest: bool) -> SessionInfo {
        eventually(Duration::from_secs(240), || {
            if approve_rest {
                approve_all(&self.d, &self.s);
            }
            let v = self.session(id);
            (v.state == SessionState::Exited)
                .then_some(v.clone())
                .ok_or_else(|| format!("{v:?}"))
        })
    }

    fn audit(&self, id: &str, kind: &str) -> AuditPage {
        self.d
            .get_as(
                &self.s,
                &format!("/api/v1/audit?session_id={id}&type={kind}&limit=100"),
            )
            .json_as()
    }
}

#[test]
fn claude_code_runs_a_command_only_once_approved_and_a_denial_s_note_reaches_the_model() {
    let Some(bin) = agent_binary("claude") else {
        return;
    };
    let command = "echo approved > marker.txt";
    let run = setup(
        &bin,
        command,
        "[sessions]\napproval_timeout_secs = 300\n[push]\ncontact = \"mailto:ops@example.com\"\n",
    );
    let marker = run.root.join("marker.txt");
    // The operator's phone, subscribed to a fake push service.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (service, mut pushes) = rt.block_on(super::agent_state::push_service());
    let phone = super::agent_state::Browser::new();
    let r = run.d.post(
        &run.s,
        "/api/v1/push/subscriptions",
        &json!({"endpoint": format!("{service}/push/phone"), "keys": phone.keys()}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let vapid: kaged_api::PushInfo = run.d.get_as(&run.s, "/api/v1/push").json_as();
    let mut next_push = || {
        let got = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), pushes.recv()).await })
            .expect("a push within a minute")
            .expect("the push service runs");
        phone.open(&got, &vapid.vapid_public_key, &service)
    };

    // Approve: the exact command and the cage's policy are on the card, the run waits, the
    // phone is told (without the command), and the command runs once approved.
    let id = run.start_run();
    let held = run.approval(&id, "Bash");
    let pushed = next_push();
    assert_eq!(
        (pushed.title.as_str(), pushed.body.as_str(), pushed.status),
        (
            "agents: primary is waiting for you",
            "asks to run a tool call: open kaged to approve or deny",
            AgentStatus::Waiting
        )
    );
    assert_eq!(pushed.url, format!("/#/sessions/{id}"));
    let info = run.session(&id);
    assert_eq!(held.command.as_deref(), Some(command));
    assert_eq!(
        (
            held.agent.as_str(),
            held.project_id.as_str(),
            held.owner.as_str()
        ),
        ("primary", "agents", info.actor.as_str())
    );
    assert_eq!(held.cage, info.origin.cage);
    let CageState::Caged { summary } = &held.cage else {
        panic!("not caged: {:?}", held.cage);
    };
    assert!(
        matches!(&summary.network, Network::Filtered(rules) if rules.allow.is_empty()),
        "{:?}",
        summary.network
    );
    assert_eq!(held.cwd.as_deref(), Some(run.root.to_str().unwrap()));
    // The run waits for the operator, with the command as its reason.
    eventually(Duration::from_secs(10), || {
        let state = run.session(&id).agent.ok_or("no agent state")?;
        (state.status == AgentStatus::Waiting
            && state.signal == AgentSignal::Hook
            && state.reason.as_deref() == Some(command))
        .then_some(())
        .ok_or_else(|| format!("{state:?}"))
    });
    assert!(!marker.exists(), "the command ran before it was approved");
    run.answer(&held, json!({"verdict": "approve"}));
    let ended = run.wait_end(&id, true);
    assert_eq!(ended.exit_code, Some(0), "{ended:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "approved\n");
    // working → waiting (the hook) → working → done, and the phone hears of the end.
    assert_eq!(
        ended.agent.as_ref().map(|a| a.status),
        Some(AgentStatus::Done)
    );
    let states: Vec<AgentStatus> = run
        .audit(&id, "agent.state")
        .events
        .iter()
        .rev()
        .filter_map(|e| serde_json::from_value(e.data["status"].clone()).ok())
        .collect();
    let waiting = states.iter().position(|s| *s == AgentStatus::Waiting);
    assert!(
        waiting.is_some_and(|w| states[..w].contains(&AgentStatus::Working)
            && states[w..].contains(&AgentStatus::Working))
            && states.last() == Some(&AgentStatus::Done),
        "{states:?}"
    );
    let mut last = next_push();
    while last.status != AgentStatus::Done {
        last = next_push();
    }
    assert_eq!(last.session_id, id);
    let requested = run.audit(&id, "approval.requested");
    assert!(
        requested
            .events
            .iter()
            .any(|e| e.data["command"] == command && e.actor.as_deref() == Some(&info.actor)),
        "{requested:#?}"
    );
    let answered = run.audit(&id, "approval.answered");
    let row = answered
        .events
        .iter()
        .find(|e| e.data["tool"] == "Bash")
        .expect("the answer is audited");
    assert_eq!(row.actor.as_deref(), Some(info.actor.as_str()));
    assert_eq!(row.data["outcome"]["decision"], "allow");
    assert!(
        row.data["from"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{row:?}"
    );

    // Deny with a note: the command does not run, and the model is told why.
    std::fs::remove_file(&marker).unwrap();
    let id = run.start_run();
    let held = run.approval(&id, "Bash");
    let note = "Not now: use the dry-run target instead.";
    run.answer(&held, json!({"verdict": "deny", "note": note}));
    let ended = run.wait_end(&id, true);
    assert!(!marker.exists(), "a denied command ran");
    assert!(ended.exit_code.is_some(), "{ended:?}");
    let told = run
        .llm
        .seen()
        .iter()
        .any(|r| r.tool_results.iter().any(|t| t.contains(note)));
    assert!(
        told,
        "the note never reached the model: {:#?}",
        run.llm.seen()
    );
    let answered = run.audit(&id, "approval.answered");
    assert!(
        answered
            .events
            .iter()
            .any(|e| e.data["outcome"]["decision"] == "deny" && e.data["outcome"]["note"] == note),
        "{answered:#?}"
    );
}

#[test]
fn an_unanswered_approval_gets_the_configured_default_deny() {
    let Some(bin) = agent_binary("claude") else {
        return;
    };
    let run = setup(
        &bin,
        "echo ran > marker.txt",
        "[sessions]\napproval_timeout_secs = 2\napproval_default = \"deny\"\n",
    );
    let id = run.start_run();
    let ended = run.wait_end(&id, false);
    assert!(ended.exit_code.is_some(), "{ended:?}");
    assert!(
        !run.root.join("marker.txt").exists(),
        "an unanswered command ran"
    );
    let answered = run.audit(&id, "approval.answered");
    let bash = answered
        .events
        .iter()
        .find(|e| e.data["tool"] == "Bash")
        .expect("the default is audited");
    assert_eq!(bash.actor, None);
    assert_eq!(
        bash.data["outcome"]["decision"],
        serde_json::to_value(HookDecision::Deny).unwrap()
    );
    let told = run.llm.seen().iter().any(|r| {
        r.tool_results
            .iter()
            .any(|t| t.contains("nobody answered within 2s"))
    });
    assert!(told, "the model was not told: {:#?}", run.llm.seen());
}

/// One request on a session's agent socket, as the cage would send it; the raw reply.
fn send(socket: &Path, bytes: &[u8]) -> String {
    let mut conn = UnixStream::connect(socket).unwrap();
    conn.write_all(bytes).unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn the_agent_socket_takes_only_hook_messages_and_limits_their_rate() {
    let project = project_dir(
        "version: 1\nproject: hooked\nprimary:\n  command: [sleep, \"60\"]\n  \
         cage:\n    network: none\n",
    );
    let d = daemon().start();
    let s = d.login();
    let r = d.post(&s, "/api/v1/projects", &json!({"path": project.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.post(
        &s,
        "/api/v1/projects/hooked/sessions",
        &json!({"agent": "primary"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json_as::<SessionInfo>().id;
    let socket = d.runtime_dir().join("agent").join(&id).join("hook.sock");
    assert!(socket.exists(), "no agent socket at {}", socket.display());

    // An API request is not a hook message.
    let reply = send(
        &socket,
        b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["reply"], "refused", "{reply}");
    assert!(
        reply["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a hook request"),
        "{reply}"
    );

    // A notification sets the run's state.
    let note = json!({"event": "notification",
                      "payload": {"message": "Claude needs your permission to use Bash"}});
    let reply = send(&socket, note.to_string().as_bytes());
    assert_eq!(reply, r#"{"reply":"noted"}"#);
    eventually(Duration::from_secs(10), || {
        let v: SessionInfo = d.get_as(&s, &format!("/api/v1/sessions/{id}")).json_as();
        let state = v.agent.clone().ok_or("no state")?;
        (state.status == AgentStatus::Waiting
            && state.signal == AgentSignal::Hook
            && state.reason.as_deref() == Some("Claude needs your permission to use Bash"))
        .then_some(())
        .ok_or_else(|| format!("{state:?}"))
    });

    // A flood is refused past the session's budget.
    let replies: Vec<String> = (0..60)
        .map(|_| send(&socket, note.to_string().as_bytes()))
        .collect();
    let limited = replies
        .iter()
        .filter(|r| r.contains("too many hook requests"))
        .count();
    assert!(limited > 0, "no request was rate-limited: {replies:?}");
    let refused = d
        .get_as(
            &s,
            &format!("/api/v1/audit?session_id={id}&type=hook.refused&limit=100"),
        )
        .json_as::<AuditPage>();
    let reasons: Vec<&str> = refused
        .events
        .iter()
        .filter_map(|e| e.data["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("not a hook request"))
            && reasons.iter().any(|r| r.contains("too many hook requests"))
            && reasons.len() < limited + 1,
        "a flood is audited once as it starts: {reasons:?}"
    );
    let r = d.delete(&s, &format!("/api/v1/sessions/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
}
