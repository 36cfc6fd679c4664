//! Issue 4: sessions on real PTYs in real bwrap cages, over the real WebSocket protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::fixture::{Session, TestDaemon, daemon, eventually, project_dir, read_until};

const SHELL_PROJECT: &str = "version: 1\nproject: demo\n";

fn load(d: &TestDaemon, s: &Session, root: &std::path::Path) -> Value {
    let r = d.post(s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn start(d: &TestDaemon, s: &Session, project: &str, body: Value) -> Value {
    let r = d.post(s, &format!("/api/v1/projects/{project}/sessions"), &body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn wait_exited(d: &TestDaemon, s: &Session, id: &str) -> Value {
    eventually(Duration::from_secs(20), || {
        let v = d.get_as(s, &format!("/api/v1/sessions/{id}")).json();
        if v["state"] == "exited" {
            Ok(v)
        } else {
            Err(format!("session {id} never exited: {v}"))
        }
    })
}

async fn hello(ws: &mut crate::fixture::Ws, offset: u64) -> Value {
    ws.send(Message::Text(
        json!({"type": "hello", "offset": offset})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected hello, got {other:?}"),
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
    assert_eq!(info["state"], "running");
    assert_eq!(info["origin"]["cage"]["state"], "caged");
    let id = info["id"].as_str().unwrap().to_owned();
    let mut ws = d.ws(&format!("/api/v1/sessions/{id}/pty"), &s).await;
    let h = hello(&mut ws, 0).await;
    assert_eq!(h["type"], "hello");
    ws.send(Message::Binary(b"echo h\"\"i; hostname\r".to_vec().into()))
        .await
        .unwrap();
    read_until(&mut ws, "hi\r\nkaged-cage", Duration::from_secs(15)).await;
    // Resize reaches the child's terminal.
    ws.send(Message::Text(
        json!({"type": "resize", "cols": 123, "rows": 45})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
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
        &json!({"type": "exit", "code": 7, "signal": null})
    );
    let done = wait_exited(&d, &s, &id);
    assert_eq!(
        (done["exit_code"].clone(), done["signal"].clone()),
        (json!(7), Value::Null)
    );
    // Events: started, attached, exited.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .expect("events socket closed early")
            .unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        seen.push(v["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        vec!["session.started", "session.attached", "session.exited"]
    );
    // Audit: started (argv, cage, actor), attached (actor), exited.
    let audit = d
        .get_as(&s, &format!("/api/v1/audit?session_id={id}"))
        .json();
    let types: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for t in ["session.started", "session.attached", "session.exited"] {
        assert!(types.contains(&t), "{types:?}");
    }
    let started = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "session.started")
        .unwrap();
    assert!(started["actor"].is_string());
    assert_eq!(started["data"]["cage"]["caged"], true);
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
    let id = info["id"].as_str().unwrap().to_owned();
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
    assert_eq!(h["offset"], off);
    let (bytes_c, _) = read_until(&mut c, "line-5", Duration::from_secs(10)).await;
    assert_eq!(bytes_c, bytes_a[off as usize..].to_vec());
    // End it: the default DELETE escalation.
    let r = d.delete(&s, &format!("/api/v1/sessions/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let done = wait_exited(&d, &s, &id);
    assert_eq!(done["end_reason"], "terminated");
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
    let id = info["id"].as_str().unwrap();
    // `ready` is printed after the trap is set; a fixed sleep could lose that race on a busy
    // machine and end the task with HUP instead.
    eventually(Duration::from_secs(20), || {
        let v = d.get_as(&s, &format!("/api/v1/sessions/{id}")).json();
        match v["bytes_total"].as_u64() {
            Some(n) if n >= 5 => Ok(()),
            _ => Err(format!("the task never printed `ready`: {v}")),
        }
    });
    assert_eq!(d.delete(&s, &format!("/api/v1/sessions/{id}")).status, 200);
    let done = wait_exited(&d, &s, id);
    assert_eq!(done["signal"], 9, "{done}");
    // Signals reach it too; an exited session is a conflict.
    let r = d.post(
        &s,
        &format!("/api/v1/sessions/{id}/signal"),
        &json!({"signal": "INT"}),
    );
    assert_eq!((r.status, r.error_code()), (409, "conflict".into()));
    let r = d.post(
        &s,
        &format!("/api/v1/sessions/{id}/signal"),
        &json!({"signal": "BOGUS"}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (400, "validation_failed".into())
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
    assert_eq!((r.status, r.error_code()), (429, "rate_limited".into()));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sessions.max_per_project")
    );
}

#[test]
fn bad_session_requests_get_clear_errors() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(SHELL_PROJECT);
    load(&d, &s, proj.path());
    for (body, code) in [
        (json!({"argv": []}), "validation_failed"),
        (json!({"argv": [""]}), "validation_failed"),
        (json!({"argv": ["sh"], "task": "x"}), "validation_failed"),
        (json!({"cols": 0}), "validation_failed"),
        (json!({"agent": "nope"}), "not_found"),
        (json!({"task": "nope"}), "not_found"),
        (json!({"bogus": 1}), "validation_failed"),
        (
            json!({"env": ["KAGED_AUTH_SIDECAR_NONCE"]}),
            "validation_failed",
        ),
        (
            json!({"cage": {"fs": [{"path": "project:/../..", "access": "rw"}]}}),
            "validation_failed",
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
    let id = info["id"].as_str().unwrap().to_owned();
    wait_exited(&d, &s, &id);
    let d = d.restart();
    let s = d.login();
    // The project registry came back too.
    assert_eq!(
        d.get_as(&s, "/api/v1/projects").json()["projects"][0]["id"],
        "demo"
    );
    let list = d.get_as(&s, "/api/v1/projects/demo/sessions").json();
    let past = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(past["state"], "exited");
    assert_eq!(past["exit_code"], 0);
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
    let done = wait_exited(&d, &s, info["id"].as_str().unwrap());
    assert_eq!(done["end_reason"], "walltime", "{done}");
}

/// The escape tests of issue 4, run through the daemon in a default cage.
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
    let id = info["id"].as_str().unwrap().to_owned();
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

#[test]
fn agents_stream_as_runs_and_cage_disabled_is_audited() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(
        "version: 1\nproject: agents\nprimary:\n  command: [sh, -c, \"echo agent-says-hi\"]\n  agents:\n    loose:\n      command: [sh, -c, \"echo uncaged\"]\n      cage: disabled\n",
    );
    let p = load(&d, &s, proj.path());
    let names: Vec<&str> = p["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["primary", "primary.loose"]);
    let info = start(&d, &s, "agents", json!({"agent": "primary"}));
    let id = info["id"].as_str().unwrap().to_owned();
    wait_exited(&d, &s, &id);
    let loose = start(&d, &s, "agents", json!({"agent": "primary.loose"}));
    assert_eq!(loose["origin"]["cage"]["state"], "disabled_by_project");
    wait_exited(&d, &s, loose["id"].as_str().unwrap());
    // The end is audited by the event bridge just after the state turns `exited`: poll.
    let want = [
        "run.started",
        "run.ended",
        "cage.disabled",
        "project.loaded",
    ];
    eventually(Duration::from_secs(10), || {
        let audit = d
            .get_as(&s, "/api/v1/audit?project_id=agents&limit=100")
            .json();
        let types: Vec<String> = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
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
    let id = info["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let mut ws = d.ws(&format!("/api/v1/sessions/{id}/pty"), &s).await;
        hello(&mut ws, 0).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = d.get_as(&s, "/api/v1/audit?type=auth.insecure_mode").json();
    let attaches = rows["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["event"] == "session_attach")
        .count();
    assert_eq!(attaches, 2);
}
