//! Sessions (design §6) on real PTYs in real bwrap cages (design §7), over the real
//! WebSocket protocol.

use std::time::Duration;

use futures_util::SinkExt;
use kaged_api::{
    AuditPage, CageState, ClientControl, DaemonEvent, EndReason, ErrorCode, ErrorEnvelope,
    ProjectList, ProjectView, ServerControl, SessionInfo, SessionList, SessionState,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::fixture::{
    Session, TestDaemon, daemon, eventually, next_control, next_event, project_dir, read_until,
    send_control,
};

const SHELL_PROJECT: &str = "version: 1\nproject: demo\n";

fn load(d: &TestDaemon, s: &Session, root: &std::path::Path) -> ProjectView {
    let r = d.post(s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

fn start(d: &TestDaemon, s: &Session, project: &str, body: Value) -> SessionInfo {
    let r = d.post(s, &format!("/api/v1/projects/{project}/sessions"), &body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

fn wait_exited(d: &TestDaemon, s: &Session, id: &str) -> SessionInfo {
    eventually(Duration::from_secs(20), || {
        let v: SessionInfo = d.get_as(s, &format!("/api/v1/sessions/{id}")).json_as();
        if v.state == SessionState::Exited {
            Ok(v)
        } else {
            Err(format!("session {id} never exited: {v:?}"))
        }
    })
}

/// Sends the viewer's hello and returns the daemon's answer, which comes first.
async fn hello(ws: &mut crate::fixture::Ws, offset: u64) -> ServerControl {
    send_control(
        ws,
        ClientControl::Hello {
            offset: Some(offset),
            client: None,
            screen: None,
        },
    )
    .await;
    next_control(ws).await
}

/// The wire name of an event, to check the order of a mixed stream.
fn event_type(e: &DaemonEvent) -> &'static str {
    match e {
        DaemonEvent::SessionStarted { .. } => "session.started",
        DaemonEvent::SessionExited { .. } => "session.exited",
        DaemonEvent::SessionAttached { .. } => "session.attached",
        DaemonEvent::RunStarted { .. } => "run.started",
        DaemonEvent::RunEnded { .. } => "run.ended",
        DaemonEvent::AgentState { .. } => "agent.state",
        DaemonEvent::Egress { .. } => "egress",
        DaemonEvent::ApprovalRequested { .. } => "approval.requested",
        DaemonEvent::ApprovalAnswered { .. } => "approval.answered",
        DaemonEvent::Gap { .. } => "gap",
        DaemonEvent::Pong => "pong",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caged_shell_echoes_over_the_websocket_and_reports_its_exit() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    let mut events = d.ws("/api/v1/events", &s).await;
    let info = start(
        &d,
        &s,
        "demo",
        json!({"argv": ["bash", "--norc", "--noprofile", "-i"], "cols": 100, "rows": 30}),
    );
    assert_eq!(info.state, SessionState::Running);
    assert!(info.origin.cage.is_caged(), "{:?}", info.origin.cage);
    let id = info.id.clone();
    let mut ws = d.ws(&format!("/api/v1/sessions/{id}/pty"), &s).await;
    let h = hello(&mut ws, 0).await;
    assert_eq!(
        h,
        ServerControl::Hello {
            offset: 0,
            session: id.clone(),
            input_seq: None,
        }
    );
    ws.send(Message::Binary(b"echo h\"\"i; hostname\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, "hi\r\nkaged-cage", Duration::from_secs(15)).await;
    // Resize reaches the child's terminal.
    send_control(
        &mut ws,
        ClientControl::Resize {
            cols: 123,
            rows: 45,
        },
    )
    .await;
    ws.send(Message::Binary(b"stty size\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, "45 123", Duration::from_secs(10)).await;
    ws.send(Message::Binary(b"exit 7\r".to_vec().into()))
        .await
        .unwrap();
    let (_, control) = read_until(&mut ws, "", Duration::from_secs(10)).await;
    assert_eq!(
        control.last().unwrap(),
        &ServerControl::Exit {
            code: Some(7),
            signal: None
        }
    );
    let done = wait_exited(&d, &s, &id);
    assert_eq!((done.exit_code, done.signal), (Some(7), None));
    // Events: started, attached, exited.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(next_event(&mut events, Duration::from_secs(10)).await);
    }
    assert_eq!(
        seen.iter().map(event_type).collect::<Vec<_>>(),
        vec!["session.started", "session.attached", "session.exited"]
    );
    // Audit: started (argv, cage, actor), attached (actor), exited.
    let audit: AuditPage = d
        .get_as(&s, &format!("/api/v1/audit?session_id={id}"))
        .json_as();
    let types: Vec<&str> = audit.events.iter().map(|e| e.kind.as_str()).collect();
    for t in ["session.started", "session.attached", "session.exited"] {
        assert!(types.contains(&t), "{types:?}");
    }
    let started = audit
        .events
        .iter()
        .find(|e| e.kind == "session.started")
        .unwrap();
    assert!(started.actor.is_some());
    // `data` differs per event type, so the API leaves it untyped.
    assert_eq!(started.data["cage"]["caged"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_replays_from_the_requested_offset_and_two_viewers_see_the_same_bytes() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    let info = start(
        &d,
        &s,
        "demo",
        json!({"argv": ["sh", "-c", "for i in 1 2 3 4 5; do echo line-$i; done; sleep 30"]}),
    );
    let id = info.id;
    let path = format!("/api/v1/sessions/{id}/pty");
    let mut a = d.ws(&path, &s).await;
    let mut b = d.ws(&path, &s).await;
    hello(&mut a, 0).await;
    hello(&mut b, 0).await;
    let (bytes_a, _) = read_until(&mut a, "line-5", Duration::from_secs(10)).await;
    let (bytes_b, _) = read_until(&mut b, "line-5", Duration::from_secs(10)).await;
    assert_eq!(bytes_a, bytes_b);
    drop(a);
    // Reattach from the offset of "line-3".
    let text = String::from_utf8_lossy(&bytes_a).into_owned();
    let off = text.find("line-3").unwrap() as u64;
    let mut c = d.ws(&path, &s).await;
    let h = hello(&mut c, off).await;
    assert_eq!(
        h,
        ServerControl::Hello {
            offset: off,
            session: id.clone(),
            input_seq: None,
        }
    );
    let (bytes_c, _) = read_until(&mut c, "line-5", Duration::from_secs(10)).await;
    assert_eq!(bytes_c, bytes_a[off as usize..].to_vec());
    // End it: the default DELETE escalation.
    let r = d.delete(&s, &format!("/api/v1/sessions/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let done = wait_exited(&d, &s, &id);
    assert_eq!(done.end_reason, Some(EndReason::Terminated));
}

#[test]
fn delete_escalates_to_sigkill_for_a_process_that_ignores_hup_and_term() {
    // Uncaged on purpose: in a cage, SIGHUP already ends bwrap and with it the cage.
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(
        "version: 1\nproject: demo\ntasks:\n  stubborn:\n    command: [sh, -c, \"trap '' HUP TERM; echo ready; while :; do sleep 1; done\"]\n    cage: disabled\n",
    );
    load(&d, &s, proj.path());
    let info = start(&d, &s, "demo", json!({"task": "stubborn"}));
    let id = info.id.as_str();
    // `ready` is printed after the trap is set; a fixed sleep could lose that race on a busy
    // machine and end the task with HUP instead.
    eventually(Duration::from_secs(20), || {
        let v: SessionInfo = d.get_as(&s, &format!("/api/v1/sessions/{id}")).json_as();
        if v.bytes_total >= 5 {
            Ok(())
        } else {
            Err(format!("the task never printed `ready`: {v:?}"))
        }
    });
    assert_eq!(d.delete(&s, &format!("/api/v1/sessions/{id}")).status, 200);
    let done = wait_exited(&d, &s, id);
    assert_eq!(done.signal, Some(9), "{done:?}");
    // Signals reach it too; an exited session is a conflict.
    let r = d.post(
        &s,
        &format!("/api/v1/sessions/{id}/signal"),
        &json!({"signal": "INT"}),
    );
    assert_eq!((r.status, r.error_code()), (409, ErrorCode::Conflict));
    let r = d.post(
        &s,
        &format!("/api/v1/sessions/{id}/signal"),
        &json!({"signal": "BOGUS"}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (400, ErrorCode::ValidationFailed)
    );
}

#[test]
fn session_limits_answer_429() {
    let d = daemon()
        .config("[sessions]\nmax_per_project = 1\n", 0o600)
        .start();
    let s = d.login();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    start(&d, &s, "demo", json!({"argv": ["sleep", "30"]}));
    let r = d.post(
        &s,
        "/api/v1/projects/demo/sessions",
        &json!({"argv": ["sleep", "30"]}),
    );
    let ErrorEnvelope { error } = r.error();
    assert_eq!((r.status, error.code), (429, ErrorCode::RateLimited));
    assert!(
        error.message.contains("sessions.max_per_project"),
        "{}",
        error.message
    );
}

#[test]
fn bad_session_requests_get_clear_errors() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    for (body, code) in [
        (json!({"argv": []}), ErrorCode::ValidationFailed),
        (json!({"argv": [""]}), ErrorCode::ValidationFailed),
        (
            json!({"argv": ["sh"], "task": "x"}),
            ErrorCode::ValidationFailed,
        ),
        (json!({"cols": 0}), ErrorCode::ValidationFailed),
        (json!({"agent": "nope"}), ErrorCode::NotFound),
        (json!({"task": "nope"}), ErrorCode::NotFound),
        (json!({"bogus": 1}), ErrorCode::ValidationFailed),
        (
            json!({"env": ["KAGED_AUTH_SIDECAR_NONCE"]}),
            ErrorCode::ValidationFailed,
        ),
        (
            json!({"cage": {"fs": [{"path": "project:/../..", "access": "rw"}]}}),
            ErrorCode::ValidationFailed,
        ),
    ] {
        let r = d.post(&s, "/api/v1/projects/demo/sessions", &body);
        assert_eq!(r.error_code(), code, "{body}: {}", r.body);
    }
    let r = d.post(&s, "/api/v1/projects/nope/sessions", &json!({}));
    assert_eq!(r.status, 404);
}

#[test]
fn past_sessions_and_their_output_survive_a_restart() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    let info = start(
        &d,
        &s,
        "demo",
        json!({"argv": ["sh", "-c", "echo persisted-output-42"]}),
    );
    let id = info.id;
    wait_exited(&d, &s, &id);
    let d = d.restart();
    let s = d.login();
    // The project registry came back too.
    assert_eq!(
        d.get_as(&s, "/api/v1/projects")
            .json_as::<ProjectList>()
            .projects[0]
            .id,
        "demo"
    );
    let list: SessionList = d.get_as(&s, "/api/v1/projects/demo/sessions").json_as();
    let past = list.sessions.iter().find(|x| x.id == id).unwrap();
    assert_eq!(past.state, SessionState::Exited);
    assert_eq!(past.exit_code, Some(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = d.ws(&format!("/api/v1/sessions/{id}/pty"), &s).await;
        hello(&mut ws, 0).await;
        read_until(&mut ws, "persisted-output-42", Duration::from_secs(10)).await;
    });
}

#[test]
fn walltime_kills_the_cage() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    let info = start(
        &d,
        &s,
        "demo",
        json!({"argv": ["sleep", "60"], "cage": {"limits": {"walltime": 1}}}),
    );
    let done = wait_exited(&d, &s, &info.id);
    assert_eq!(done.end_reason, Some(EndReason::Walltime), "{done:?}");
}

/// The escape probes of `kaged-sandbox`'s own tests (design §7), run through the daemon in a
/// default cage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_escapes_a_default_cage() {
    let d = daemon().env("KAGED_INSECURE_REASON", "x").start();
    let s = d.login();
    // The operator's secrets, next to the project.
    let ssh = d.home().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_ed25519"), "PRIVATE-KEY-MATERIAL").unwrap();
    let proj = project_dir(
        "version: 1\nproject: esc\nprimary:\n  command: [sh]\n  cage:\n    fs:\n      - {path: \"project:/\", access: ro}\n",
    );
    std::fs::write(proj.path().join("readme"), "in-project").unwrap();
    load(&d, &s, proj.path());
    let nonce_file = d.runtime_dir().join("auth-cookie");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "OUTSIDE").unwrap();
    let script = format!(
        "probe() {{ if eval \"$2\" >/dev/null 2>&1; then echo \"ESCAPED:$1\"; else echo \"held:$1\"; fi; }}; \
         probe ssh 'cat {ssh}/id_ed25519'; \
         probe nonce 'cat {nonce}'; \
         probe environ 'cat /proc/{pid}/environ'; \
         probe outside 'cat {outside}/secret'; \
         probe write-ro 'echo x > {proj}/new-file'; \
         probe network 'exec 3<>/dev/tcp/127.0.0.1/{port}'; \
         probe state 'ls {state}'; \
         cat {proj}/readme; echo; grep NoNewPrivs /proc/self/status; \
         env | grep -c '^KAGED_' ; echo END",
        ssh = ssh.display(),
        nonce = nonce_file.display(),
        pid = d.pid(),
        outside = outside.path().display(),
        proj = proj.path().display(),
        port = d.addr.port(),
        state = d.home().join(".local/share/kaged").display(),
    );
    let info = start(&d, &s, "esc", json!({"agent": "primary"}));
    let id = info.id;
    let mut ws = d.ws(&format!("/api/v1/sessions/{id}/pty"), &s).await;
    hello(&mut ws, 0).await;
    ws.send(Message::Binary(
        format!("bash --norc -c '{}'\r", script.replace('\'', "'\\''"))
            .into_bytes()
            .into(),
    ))
    .await
    .unwrap();
    let (bytes, _) = read_until(&mut ws, "END\r\n", Duration::from_secs(20)).await;
    let out = String::from_utf8_lossy(&bytes).into_owned();
    let tail = &out[out.rfind("held:ssh").unwrap_or_else(|| panic!("{out}"))..];
    assert!(!tail.contains("ESCAPED"), "{tail}");
    for probe in [
        "ssh", "nonce", "environ", "outside", "write-ro", "network", "state",
    ] {
        assert!(tail.contains(&format!("held:{probe}")), "{probe}: {tail}");
    }
    assert!(tail.contains("in-project"), "{tail}");
    assert!(tail.contains("NoNewPrivs:\t1"), "{tail}");
    assert!(
        tail.contains("\r\n0\r\n"),
        "KAGED_* variables inside the cage: {tail}"
    );
    assert!(!std::path::Path::new(&proj.path().join("new-file")).exists());
}

/// Runs git for the test on the host, never with hooks.
fn host_git(root: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "user.email=op@example.com",
        ])
        .args(["-c", "user.name=operator", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(root)
        .env("HOME", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cage started through the daemon cannot rewrite its project's policy or plant git hooks,
/// yet commits; only the explicit key lifts that, and the lift is audited.
#[test]
fn a_caged_agent_cannot_rewrite_its_policy_or_plant_a_hook_unless_the_audited_key_says_so() {
    let d = daemon().start();
    let s = d.login();
    let yaml = "version: 1\nproject: guarded\nprimary:\n  command: [sh, ./probe.sh]\n  agents:\n    trusted:\n      command: [sh, ./probe.sh]\n      cage:\n        writable_policy_and_git_hooks: true\n";
    let proj = project_dir(yaml);
    std::fs::write(
        proj.path().join("probe.sh"),
        "try() { if (eval \"$2\") 2>/dev/null; then echo \"WROTE:$1\"; else echo \"refused:$1\"; fi; }
         try policy 'echo \"  cage: disabled\" >> .kaged/project.yaml && sed -i \"\\$d\" .kaged/project.yaml'
         try hook 'printf \"#!/bin/sh\\ntrue\\n\" > .git/hooks/post-checkout && rm .git/hooks/post-checkout'
         try config 'git config core.fsmonitor true && git config --unset core.fsmonitor'
         n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n
         git -c user.email=a@example.com -c user.name=agent add n &&
           git -c user.email=a@example.com -c user.name=agent commit -qm \"agent $((n+1))\" && echo COMMITTED
         echo END\n",
    )
    .unwrap();
    host_git(proj.path(), &["init", "-q"]);
    host_git(proj.path(), &["add", "."]);
    host_git(proj.path(), &["commit", "-qm", "start"]);
    load(&d, &s, proj.path());

    let run = |agent: &str| {
        let info = start(&d, &s, "guarded", json!({"agent": agent}));
        wait_exited(&d, &s, &info.id);
        let out = d
            .get_as(&s, &format!("/api/v1/sessions/{}/transcript", info.id))
            .body;
        (info, out)
    };
    let lifted = |i: &SessionInfo| match &i.origin.cage {
        CageState::Caged { summary } => summary.protection_lifted,
        other => panic!("not caged: {other:?}"),
    };
    let (default, out) = run("primary");
    assert!(!lifted(&default), "{:?}", default.origin.cage);
    for what in ["policy", "hook", "config"] {
        assert!(out.contains(&format!("refused:{what}")), "{what}: {out}");
    }
    assert!(out.contains("COMMITTED"), "{out}");
    assert_eq!(
        std::fs::read_to_string(proj.path().join(".kaged/project.yaml")).unwrap(),
        yaml
    );

    let (trusted, out) = run("primary.trusted");
    assert!(lifted(&trusted), "{:?}", trusted.origin.cage);
    for what in ["policy", "hook", "config"] {
        assert!(out.contains(&format!("WROTE:{what}")), "{what}: {out}");
    }
    assert!(out.contains("COMMITTED"), "{out}");
    assert!(host_git(proj.path(), &["log", "--format=%s"]).starts_with("agent 2\nagent 1\n"));
    eventually(Duration::from_secs(10), || {
        let audit: AuditPage = d
            .get_as(&s, &format!("/api/v1/audit?session_id={}", trusted.id))
            .json_as();
        let lifted = audit
            .events
            .iter()
            .find(|e| e.kind == "cage.protection_lifted")
            .ok_or(format!("no cage.protection_lifted row: {:?}", audit.events))?;
        assert_eq!(
            lifted.data["key"], "writable_policy_and_git_hooks",
            "{lifted:?}"
        );
        Ok::<_, String>(())
    });
    let audit: AuditPage = d
        .get_as(&s, &format!("/api/v1/audit?session_id={}", default.id))
        .json_as();
    assert!(
        audit
            .events
            .iter()
            .all(|e| e.kind != "cage.protection_lifted"),
        "{:?}",
        audit.events
    );
}

#[test]
fn agents_stream_as_runs_and_cage_disabled_is_audited() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(
        "version: 1\nproject: agents\nprimary:\n  command: [sh, -c, \"echo agent-says-hi\"]\n  agents:\n    loose:\n      command: [sh, -c, \"echo uncaged\"]\n      cage: disabled\n",
    );
    let p = load(&d, &s, proj.path());
    let names: Vec<&str> = p.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["primary", "primary.loose"]);
    let info = start(&d, &s, "agents", json!({"agent": "primary"}));
    wait_exited(&d, &s, &info.id);
    let loose = start(&d, &s, "agents", json!({"agent": "primary.loose"}));
    assert_eq!(loose.origin.cage, CageState::DisabledByProject);
    wait_exited(&d, &s, &loose.id);
    // The end is audited by the event bridge just after the state turns `exited`: poll.
    let want = [
        "run.started",
        "run.ended",
        "cage.disabled",
        "project.loaded",
    ];
    eventually(Duration::from_secs(10), || {
        let audit: AuditPage = d
            .get_as(&s, "/api/v1/audit?project_id=agents&limit=100")
            .json_as();
        let types: Vec<String> = audit.events.into_iter().map(|e| e.kind).collect();
        let missing: Vec<&str> = want
            .into_iter()
            .filter(|t| !types.iter().any(|x| x == t))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{missing:?} missing from {types:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_mode_audits_every_attach() {
    let d = daemon().arg("--insecure").start();
    let s = d.login_insecure();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    let info = start(&d, &s, "demo", json!({"argv": ["sleep", "10"]}));
    let id = info.id;
    for _ in 0..2 {
        let mut ws = d.ws(&format!("/api/v1/sessions/{id}/pty"), &s).await;
        hello(&mut ws, 0).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows: AuditPage = d
        .get_as(&s, "/api/v1/audit?type=auth.insecure_mode")
        .json_as();
    let attaches = rows
        .events
        .iter()
        .filter(|e| e.data["event"] == "session_attach")
        .count();
    assert_eq!(attaches, 2);
}
