//! Behind one sidecar, operators are separate people (ADR-0007's multi-operator phase): a
//! session belongs to whoever started it. Walks the route table with two identities, so a new
//! route cannot forget the check.

use std::time::Duration;

use kaged_api::{AuditPage, ErrorCode, Me, SessionInfo, SessionList, ShareAccess};
use pretty_assertions::assert_eq;

use crate::fixture::{Response, SYSTEM_PORT, TestDaemon, daemon, eventually, project_dir};

const NONCE: &str = "operators-nonce-0123456789abcdef0123456789";

/// One operator as the sidecar presents them.
pub(crate) struct Op {
    pub(crate) user: &'static str,
    groups: &'static str,
    csrf: String,
}

impl Op {
    pub(crate) fn new(d: &TestDaemon, user: &'static str, groups: &'static str) -> Op {
        let mut op = Op {
            user,
            groups,
            csrf: String::new(),
        };
        let me: Me = op.call(d, "GET", "/api/v1/me", None).json_as();
        op.csrf = me.csrf_token;
        op
    }

    fn headers(&self, d: &TestDaemon) -> Vec<(&'static str, String)> {
        vec![
            ("X-Kaged-Auth-Nonce", NONCE.to_owned()),
            ("X-Kaged-User-Id", self.user.to_owned()),
            ("X-Kaged-User-Groups", self.groups.to_owned()),
            ("Origin", d.origin()),
            ("X-Kaged-CSRF", self.csrf.clone()),
        ]
    }

    pub(crate) fn call(
        &self,
        d: &TestDaemon,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Response {
        let h = self.headers(d);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        d.request(method, path, &h, body)
    }

    /// A real WebSocket as this operator, through the sidecar's headers.
    async fn ws(&self, d: &TestDaemon, path: &str) -> crate::fixture::Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://{}{path}?csrf={}", d.host(), self.csrf);
        let mut req = url.into_client_request().unwrap();
        for (k, v) in self.headers(d) {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.status(), 101);
        ws
    }

    fn upgrade(&self, d: &TestDaemon, path: &str) -> Response {
        let mut h = self.headers(d);
        h.extend([
            ("Connection", "Upgrade".to_owned()),
            ("Upgrade", "websocket".to_owned()),
            ("Sec-WebSocket-Version", "13".to_owned()),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
        ]);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        d.request("GET", path, &h, None)
    }
}

pub(crate) fn sidecar(system: bool) -> TestDaemon {
    let b = daemon()
        .arg("--auth-mode")
        .arg("sidecar")
        .env("KAGED_AUTH_SIDECAR_NONCE", NONCE)
        .env("KAGED_ADMIN_GROUP", "ops");
    if system { b.system_namespace() } else { b }.start()
}

const PROJECT: &str = "version: 1\nproject: shared\n";

/// Loads the shared project as `op`; the directory lives as long as the returned guard.
fn load_shared(d: &TestDaemon, op: &Op) -> tempfile::TempDir {
    let proj = project_dir(PROJECT);
    let body = serde_json::json!({"path": proj.path()}).to_string();
    let r = op.call(d, "POST", "/api/v1/projects", Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    proj
}

/// `op` loads a project whose primary agent runs `command` (a YAML flow list) and starts it;
/// the directory lives as long as the returned guard.
fn agent_run(d: &TestDaemon, op: &Op, command: &str) -> (tempfile::TempDir, SessionInfo) {
    let proj = project_dir(&format!(
        "version: 1\nproject: shared\nprimary:\n  command: {command}\n"
    ));
    let body = serde_json::json!({"path": proj.path()}).to_string();
    let r = op.call(d, "POST", "/api/v1/projects", Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = op.call(
        d,
        "POST",
        "/api/v1/projects/shared/sessions",
        Some(r#"{"agent": "primary"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (proj, r.json_as())
}

fn start(d: &TestDaemon, op: &Op) -> SessionInfo {
    let r = op.call(
        d,
        "POST",
        "/api/v1/projects/shared/sessions",
        Some(r#"{"argv": ["sh", "-c", "echo hello; sleep 300"]}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

/// What a route gives an operator who may not see alice's session.
#[derive(Debug)]
enum Expect {
    /// A route on one session: 403.
    Forbidden,
    /// A list of sessions: alice's is not in it.
    Listed,
    /// The audit log: none of alice's session rows.
    Audit,
    /// The events stream: alice's events never arrive.
    Events,
    /// Nothing about sessions.
    Unrelated,
}

fn classify(method: &str, path: &str) -> Expect {
    match (method, path) {
        (_, p) if p.starts_with("/api/v1/sessions/{id}") => Expect::Forbidden,
        // A run's id is the id of the session that made its worktree, whose owner it follows.
        (_, p) if p.starts_with("/api/v1/worktrees/{id}") => Expect::Forbidden,
        ("GET", "/api/v1/sessions" | "/api/v1/projects/{id}/sessions") => Expect::Listed,
        ("GET", "/api/v1/audit") => Expect::Audit,
        ("GET", "/api/v1/events") => Expect::Events,
        (
            _,
            "/"
            | "/assets/{*path}"
            | "/sw.js"
            | "/manifest.webmanifest"
            | "/launch"
            | "/api/v1/healthz"
            | "/api/v1/readyz"
            | "/api/v1/version"
            | "/api/v1/dsl/schema"
            | "/api/v1/openapi.json"
            | "/api/v1/status"
            | "/api/v1/me"
            | "/api/v1/auth/launch-token"
            | "/api/v1/auth/logout"
            | "/api/v1/auth/revoke"
            | "/api/v1/projects"
            | "/api/v1/projects/{id}"
            | "/api/v1/projects/{id}/worktrees"
            | "/api/v1/projects/{id}/worktrees/unknown",
        ) => Expect::Unrelated,
        ("POST", "/api/v1/projects/{id}/sessions") => Expect::Unrelated,
        // Held tool calls follow their session's owner;
        // `only_the_owner_or_an_admin_sees_and_answers_an_approval` checks them.
        (_, "/api/v1/approvals" | "/api/v1/approvals/{id}") => Expect::Unrelated,
        // Each operator's own devices and key bar; `push_subscriptions_are_each_operators_own`
        // and `a_key_bar_is_each_operators_own_and_bad_keys_are_refused` check them.
        (
            _,
            "/api/v1/push"
            | "/api/v1/push/subscriptions"
            | "/api/v1/push/subscriptions/{id}"
            | "/api/v1/me/keybar",
        ) => Expect::Unrelated,
        (m, p) => panic!(
            "{m} {p} is not classified: decide what another operator may see through it and add it here"
        ),
    }
}

/// A body the route would accept, so what refuses bob is ownership, not his JSON.
fn valid_body(method: &str, path: &str) -> Option<&'static str> {
    match (method, path.rsplit('/').next()) {
        ("GET" | "DELETE", _) => None,
        ("POST", Some("signal")) => Some(r#"{"signal": "CONT"}"#),
        ("POST", Some("resize")) => Some(r#"{"cols": 80, "rows": 24}"#),
        ("POST", Some("input")) => Some(r#"{"data": ""}"#),
        ("POST", Some("shares")) => Some(r#"{"user": "dave@example.com", "access": "read"}"#),
        ("POST", Some("restore")) => Some("{}"),
        ("POST", Some("merge")) => Some(r#"{"mode": "auto"}"#),
        ("PUT", Some("keybar")) => Some(r#"{"keys": ["esc"]}"#),
        (m, _) => panic!("{m} {path}: give this route a valid body here"),
    }
}

#[test]
fn every_route_keeps_one_operators_session_from_another() {
    let d = sidecar(false);
    let alice = Op::new(&d, "alice@example.com", "dev");
    let bob = Op::new(&d, "bob@example.com", "dev");
    let carol = Op::new(&d, "carol@example.com", "ops");
    let _proj = load_shared(&d, &alice);
    let theirs = start(&d, &alice);
    let id = theirs.id.as_str();
    for spec in kaged_http::route_specs() {
        let method = spec.method.as_str();
        let path = spec.path.replace("{id}", id).replace("{*path}", "x.js");
        let path = path.replace(&format!("/projects/{id}"), "/projects/shared");
        match classify(method, spec.path) {
            Expect::Forbidden => {
                let body = valid_body(method, spec.path);
                let r = if spec.websocket {
                    bob.upgrade(&d, &path)
                } else {
                    bob.call(&d, method, &path, body)
                };
                assert_eq!(
                    (r.status, r.error_code()),
                    (403, ErrorCode::Forbidden),
                    "bob on {method} {}: {}",
                    spec.path,
                    r.body
                );
                // The admin is not turned away.
                let r = if spec.websocket {
                    carol.upgrade(&d, &path)
                } else {
                    carol.call(&d, method, &path, body)
                };
                assert_ne!(r.status, 403, "carol on {method} {}: {}", spec.path, r.body);
            }
            Expect::Listed => {
                let list = |op: &Op| -> Vec<String> {
                    let l: SessionList = op.call(&d, "GET", &path, None).json_as();
                    l.sessions.into_iter().map(|s| s.id).collect()
                };
                assert!(!list(&bob).contains(&theirs.id), "bob lists it at {path}");
                assert!(
                    list(&carol).contains(&theirs.id),
                    "carol misses it at {path}"
                );
                assert!(
                    list(&alice).contains(&theirs.id),
                    "alice misses it at {path}"
                );
            }
            Expect::Audit => {
                let rows = |op: &Op| -> usize {
                    let page: AuditPage = op
                        .call(&d, "GET", &format!("{path}?session_id={id}"), None)
                        .json_as();
                    page.events.len()
                };
                assert_eq!(rows(&bob), 0, "bob reads alice's session rows");
                assert!(rows(&carol) > 0 && rows(&alice) > 0);
            }
            Expect::Events => {
                // Bob may subscribe; what his stream carries is the next test's business.
                let r = bob.upgrade(&d, &path);
                assert!(![401, 403].contains(&r.status), "{}: {}", r.status, r.body);
            }
            Expect::Unrelated => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_a_session_reach_only_those_who_may_see_it() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let d = sidecar(false);
    let alice = Op::new(&d, "alice@example.com", "dev");
    let bob = Op::new(&d, "bob@example.com", "dev");
    let _proj = load_shared(&d, &alice);
    let subscribe = |op: &Op| {
        let mut req = format!("ws://{}/api/v1/events", d.host())
            .into_client_request()
            .unwrap();
        for (k, v) in op.headers(&d) {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            req.headers_mut().insert(name, v.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    let (mut bobs, _) = subscribe(&bob).await.unwrap();
    let (mut alices, _) = subscribe(&alice).await.unwrap();
    let hers = start(&d, &alice);
    let mine = start(&d, &bob);
    // Alice sees her own start; Bob's first event is his own, never hers.
    assert_eq!(first_started(&mut alices).await, hers.id);
    assert_eq!(first_started(&mut bobs).await, mine.id);
}

async fn first_started(ws: &mut crate::fixture::Ws) -> String {
    use futures_util::StreamExt;
    let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match serde_json::from_str(m.to_text().unwrap()).unwrap() {
        kaged_api::DaemonEvent::SessionStarted { session } => session.id,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_owner_shares_read_or_write_and_every_share_is_audited() {
    let d = sidecar(false);
    let alice = Op::new(&d, "alice@example.com", "dev");
    let bob = Op::new(&d, "bob@example.com", "dev");
    let _proj = load_shared(&d, &alice);
    let s = start(&d, &alice);
    let at = |p: &str| format!("/api/v1/sessions/{}{p}", s.id);
    let input = Some(r#"{"data": "x"}"#);
    // Bob cannot share it with himself.
    let share = |op: &Op, access: &str| {
        let body = format!(r#"{{"user": "bob@example.com", "access": {access}}}"#);
        op.call(&d, "POST", &at("/shares"), Some(&body))
    };
    assert_eq!(share(&bob, "\"write\"").status, 403);
    let shared: SessionInfo = share(&alice, "\"read\"").json_as();
    assert_eq!(
        shared.shared_with.get("bob@example.com"),
        Some(&ShareAccess::Read)
    );
    assert_eq!(bob.call(&d, "GET", &at(""), None).status, 200);
    eventually(Duration::from_secs(10), || {
        let t = bob.call(&d, "GET", &at("/transcript"), None);
        (t.status == 200 && t.body.contains("hello"))
            .then_some(())
            .ok_or(t.body)
    });
    assert_eq!(bob.call(&d, "POST", &at("/input"), input).status, 403);
    // On the terminal socket a read-only viewer's keystroke is refused out loud.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let mut ws = bob.ws(&d, &at("/pty")).await;
        let hello = kaged_api::ClientControl::Hello {
            offset: None,
            client: Some("bob-tab".into()),
            screen: None,
        };
        crate::fixture::send_control(&mut ws, hello).await;
        let mut frame = 1u64.to_be_bytes().to_vec();
        frame.extend_from_slice(b"rm -rf ~\r");
        ws.send(Message::Binary(frame.into())).await.unwrap();
        // Terminal output (the scrollback) may come first; the answer is a control message.
        loop {
            use futures_util::StreamExt;
            let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .expect("an answer within 20 s")
                .expect("the socket to stay open")
                .unwrap();
            let Message::Text(t) = msg else { continue };
            match serde_json::from_str(&t).unwrap() {
                kaged_api::ServerControl::InputRefused { seq, message } => {
                    assert_eq!(seq, 1);
                    assert!(message.contains("read-only"), "{message}");
                    break;
                }
                kaged_api::ServerControl::Ack { .. } => panic!("a read-only viewer typed"),
                _ => {}
            }
        }
    });
    assert_eq!(share(&alice, "\"write\"").status, 200);
    assert_eq!(bob.call(&d, "POST", &at("/input"), input).status, 200);
    assert_eq!(share(&alice, "null").status, 200);
    assert_eq!(bob.call(&d, "GET", &at(""), None).status, 403);
    let page: AuditPage = alice
        .call(&d, "GET", "/api/v1/audit?type=session.shared", None)
        .json_as();
    let accesses: Vec<String> = page
        .events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.actor.clone().unwrap_or_default(),
                e.data["access"]
            )
        })
        .collect();
    assert_eq!(
        accesses,
        vec![
            "alice@example.com:null",
            "alice@example.com:\"write\"",
            "alice@example.com:\"read\""
        ]
    );
}

#[test]
fn in_system_mode_only_admins_run_anything_uncaged() {
    let _g = SYSTEM_PORT.lock().unwrap_or_else(|p| p.into_inner());
    let d = sidecar(true);
    let bob = Op::new(&d, "bob@example.com", "dev");
    let carol = Op::new(&d, "carol@example.com", "ops");
    let proj = project_dir(
        "version: 1\nproject: loose\nprimary:\n  command: [sh, -c, 'sleep 1']\n  cage: disabled\n",
    );
    let body = serde_json::json!({"path": proj.path()}).to_string();
    let r = bob.call(&d, "POST", "/api/v1/projects", Some(&body));
    assert_eq!(
        (r.status, r.error_code()),
        (403, ErrorCode::Forbidden),
        "{}",
        r.body
    );
    assert!(r.body.contains("uncaged"), "{}", r.body);
    assert_eq!(
        carol
            .call(&d, "POST", "/api/v1/projects", Some(&body))
            .status,
        200
    );
    let agent = Some(r#"{"agent": "primary"}"#);
    let r = bob.call(&d, "POST", "/api/v1/projects/loose/sessions", agent);
    assert_eq!(
        (r.status, r.error_code()),
        (403, ErrorCode::Forbidden),
        "{}",
        r.body
    );
    let r = carol.call(&d, "POST", "/api/v1/projects/loose/sessions", agent);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn push_subscriptions_are_each_operators_own() {
    let d = sidecar(false);
    let alice = Op::new(&d, "alice@example.com", "dev");
    let bob = Op::new(&d, "bob@example.com", "ops");
    // A P-256 point (the generator) and 16 bytes: keys the daemon accepts.
    let body = serde_json::json!({
        "endpoint": "https://push.example/alice-phone",
        "keys": {
            "p256dh": "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
            "auth": "AAAAAAAAAAAAAAAAAAAAAA"
        }
    })
    .to_string();
    let r = alice.call(&d, "POST", "/api/v1/push/subscriptions", Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
    // Not even an admin sees or revokes another operator's devices.
    let listed = bob.call(&d, "GET", "/api/v1/push", None);
    assert_eq!(listed.json()["subscriptions"], serde_json::json!([]));
    let r = bob.call(
        &d,
        "DELETE",
        &format!("/api/v1/push/subscriptions/{id}"),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let mine = alice.call(&d, "GET", "/api/v1/push", None);
    assert_eq!(mine.json()["subscriptions"][0]["id"], id.as_str());
}

#[test]
fn only_the_owner_or_an_admin_sees_and_answers_an_approval() {
    let d = sidecar(false);
    let alice = Op::new(&d, "alice@example.com", "dev");
    let bob = Op::new(&d, "bob@example.com", "dev");
    let carol = Op::new(&d, "carol@example.com", "ops");
    let (_proj, run) = agent_run(&d, &alice, "[sleep, \"300\"]");
    // The cage's helper asks, as Claude Code's PreToolUse hook would; it waits for the answer.
    let socket = d
        .runtime_dir()
        .join("agent")
        .join(&run.id)
        .join("hook.sock");
    let asked = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let req = serde_json::json!({"event": "pre-tool-use", "payload": {
            "tool_name": "Bash", "tool_input": {"command": "make deploy"}, "cwd": "/srv"}});
        conn.write_all(req.to_string().as_bytes()).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        reply
    });
    let listed = |op: &Op| -> Vec<kaged_api::Approval> {
        let l: kaged_api::ApprovalList = op.call(&d, "GET", "/api/v1/approvals", None).json_as();
        l.approvals
    };
    let held = eventually(Duration::from_secs(10), || {
        listed(&alice)
            .into_iter()
            .next()
            .ok_or_else(|| "nothing held yet".to_owned())
    });
    assert_eq!(
        (held.command.as_deref(), held.owner.as_str()),
        (Some("make deploy"), "alice@example.com")
    );
    assert_eq!(listed(&bob), vec![]);
    assert_eq!(listed(&carol), vec![held.clone()]);
    let path = format!("/api/v1/approvals/{}", held.id);
    let approve = Some(r#"{"verdict": "approve", "note": "go ahead"}"#);
    let r = bob.call(&d, "POST", &path, approve);
    assert_eq!(
        (r.status, r.error_code()),
        (403, ErrorCode::Forbidden),
        "{}",
        r.body
    );
    // Shared for writing, bob may type into the session, but still not answer for alice.
    let share = r#"{"user": "bob@example.com", "access": "write"}"#;
    let r = alice.call(
        &d,
        "POST",
        &format!("/api/v1/sessions/{}/shares", run.id),
        Some(share),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(listed(&bob), vec![held.clone()]);
    let r = bob.call(&d, "POST", &path, approve);
    assert_eq!(
        (r.status, r.error_code()),
        (403, ErrorCode::Forbidden),
        "{}",
        r.body
    );
    let r = carol.call(&d, "POST", &path, approve);
    assert_eq!(r.status, 200, "{}", r.body);
    let reply: serde_json::Value = serde_json::from_str(&asked.join().unwrap()).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"reply": "decision", "decision": "allow", "note": "go ahead"})
    );
    // Answered once: a second answer finds nothing.
    let r = alice.call(&d, "POST", &path, approve);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = alice.call(&d, "DELETE", &format!("/api/v1/sessions/{}", run.id), None);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_is_pushed_to_its_owner_and_to_whoever_may_drive_it() {
    let d = sidecar(false);
    let ops = [
        Op::new(&d, "alice@example.com", "dev"),
        Op::new(&d, "bob@example.com", "dev"),
        Op::new(&d, "carol@example.com", "dev"),
        Op::new(&d, "dave@example.com", "dev"),
    ];
    let [alice, bob, carol, _dave] = &ops;
    let (service, mut pushes) = super::agent_state::push_service().await;
    for op in &ops {
        let name = op.user.split('@').next().unwrap_or_default();
        let body = serde_json::json!({"endpoint": format!("{service}/push/{name}"),
                                      "keys": super::agent_state::Browser::new().keys()})
        .to_string();
        let r = op.call(&d, "POST", "/api/v1/push/subscriptions", Some(&body));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let (_proj, run) = agent_run(
        &d,
        alice,
        "[sh, -c, \"sleep 2; printf 'Proceed? \\\\a'; sleep 30\"]",
    );
    // Bob may type into it, Carol only watch, Dave has no share.
    for (who, access) in [(bob, "write"), (carol, "read")] {
        let body = serde_json::json!({"user": who.user, "access": access}).to_string();
        let r = alice.call(
            &d,
            "POST",
            &format!("/api/v1/sessions/{}/shares", run.id),
            Some(&body),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut got = Vec::new();
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_secs(15), pushes.recv()).await {
        got.push(p.path);
        if got.len() == 2 {
            break;
        }
    }
    // Anything more would arrive with the first two; give it a moment.
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_secs(2), pushes.recv()).await {
        got.push(p.path);
    }
    got.sort();
    assert_eq!(got, vec!["/push/alice", "/push/bob"]);
    // Each delivery is audited as its recipient's.
    let page: AuditPage = eventually(Duration::from_secs(5), || {
        let page: AuditPage = alice
            .call(&d, "GET", "/api/v1/audit?type=push.sent", None)
            .json_as();
        (page.events.len() == 2)
            .then_some(page.clone())
            .ok_or_else(|| format!("{page:?}"))
    });
    let mut actors: Vec<String> = page.events.iter().filter_map(|e| e.actor.clone()).collect();
    actors.sort();
    assert_eq!(actors, vec!["alice@example.com", "bob@example.com"]);
}

#[test]
fn a_key_bar_is_each_operators_own_and_bad_keys_are_refused() {
    let d = sidecar(false);
    let alice = Op::new(&d, "alice@example.com", "dev");
    let bob = Op::new(&d, "bob@example.com", "ops");
    let all = serde_json::json!({"keys": ["esc", "tab", "stab", "ctrl", "alt", "left", "up",
        "down", "right", "pgup", "pgdn", "ctrlc", "paste", "copy"]});
    // Never chosen: every key.
    assert_eq!(alice.call(&d, "GET", "/api/v1/me/keybar", None).json(), all);
    // Kept in bar order, each once.
    let r = alice.call(
        &d,
        "PUT",
        "/api/v1/me/keybar",
        Some(r#"{"keys": ["ctrlc", "esc", "ctrl", "esc"]}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mine = serde_json::json!({"keys": ["esc", "ctrl", "ctrlc"]});
    assert_eq!(r.json(), mine);
    assert_eq!(
        alice.call(&d, "GET", "/api/v1/me/keybar", None).json(),
        mine
    );
    // Another operator, an admin too, keeps their own.
    assert_eq!(bob.call(&d, "GET", "/api/v1/me/keybar", None).json(), all);
    for (body, says) in [
        (r#"{"keys": ["esc", "bogus"]}"#, "bogus"),
        (r#"{"keys": "esc"}"#, "keys"),
        (r#"{}"#, "keys"),
        (r#"{"keys": [], "theme": "dark"}"#, "theme"),
    ] {
        let r = alice.call(&d, "PUT", "/api/v1/me/keybar", Some(body));
        assert_eq!(
            (r.status, r.error_code()),
            (400, ErrorCode::ValidationFailed),
            "{body}: {}",
            r.body
        );
        assert!(r.body.contains(says), "{body}: {}", r.body);
    }
    assert_eq!(
        alice.call(&d, "GET", "/api/v1/me/keybar", None).json(),
        mine
    );
    // An empty bar is a choice too.
    let r = alice.call(&d, "PUT", "/api/v1/me/keybar", Some(r#"{"keys": []}"#));
    assert_eq!(r.json(), serde_json::json!({"keys": []}));
}
