//! Agent state, the same for every CLI: a shell-script agent that prints, rings the bell,
//! sends OSC 9 and OSC 777 notifications, goes quiet and exits. Its states and reasons arrive
//! in order on the events socket, on the agent-run socket, in the audit log and on `GET`; and
//! each time it needs the operator a Web Push reaches a fake push service, which checks the
//! VAPID JWT and decrypts the aes128gcm payload with the subscription's private keys.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kaged_api::{
    AgentSignal, AgentStatus, AuditPage, DaemonEvent, PushInfo, PushMessage, PushSubscriptionView,
    SessionInfo,
};
use pretty_assertions::assert_eq;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::claims::NoCustomClaims;
use web_push_native::jwt_simple::common::VerificationOptions;
use web_push_native::p256;

use crate::fixture::{TestDaemon, daemon, eventually, next_event, project_dir};

/// Prints, asks with a bell, notifies twice, goes quiet (idle is 1 s here), then ends well; a
/// second agent fails. The sleeps keep each step in its own read of the PTY.
const PROJECT: &str = r#"version: 1
project: agents
primary:
  command: [sh, -c, "printf 'reading the repo\\n'; sleep 0.5; printf 'Proceed? [y/N] \\a'; sleep 0.8; printf 'applying\\n'; sleep 0.3; printf '\\033]9;Tests pass, review?\\007'; sleep 0.8; printf 'more work\\n'; sleep 0.3; printf '\\033]777;notify;agent;Need a decision\\033\\\\'; sleep 0.8; printf 'last words\\n'; sleep 2.5"]
  agents:
    failing:
      command: [sh, -c, "echo broken; exit 3"]
"#;

/// `(status, signal, reason)` of each state the run must go through, in order.
fn expected() -> Vec<(AgentStatus, AgentSignal, Option<String>)> {
    use AgentSignal as G;
    use AgentStatus as S;
    let r = |s: &str| Some(s.to_owned());
    vec![
        (S::Starting, G::Start, None),
        (S::Working, G::Output, None),
        (S::Waiting, G::Bell, r("Proceed? [y/N]")),
        (S::Working, G::Output, None),
        (S::Waiting, G::Osc9, r("Tests pass, review?")),
        (S::Working, G::Output, None),
        (S::Waiting, G::Osc777, r("agent: Need a decision")),
        (S::Working, G::Output, None),
        (S::Waiting, G::Idle, r("last words")),
        (S::Done, G::Exit, r("exited with status 0: last words")),
    ]
}

/// What the fake push service received in one request.
pub(super) struct Received {
    pub(super) path: String,
    authorization: String,
    encoding: String,
    body: Vec<u8>,
}

/// A push service on loopback that accepts every request (201) and hands it to the test.
pub(super) async fn push_service() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed inside the request head");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_owned();
                let header = |name: &str| {
                    head.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_owned())
                        .unwrap_or_default()
                };
                let len: usize = header("content-length").parse().unwrap();
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                sock.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tx.send(Received {
                    path,
                    authorization: header("authorization"),
                    encoding: header("content-encoding"),
                    body: buf[head_end..head_end + len].to_vec(),
                });
            });
        }
    });
    (format!("http://{addr}"), rx)
}

/// The browser's half of a subscription: its key pair and auth secret.
pub(super) struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    pub(super) fn new() -> Self {
        Browser {
            secret: p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng),
            auth: *b"sixteen byte key",
        }
    }

    pub(super) fn keys(&self) -> serde_json::Value {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let public = self.secret.public_key().to_encoded_point(false);
        json!({"p256dh": B64.encode(public.as_bytes()), "auth": B64.encode(self.auth)})
    }

    /// Checks the VAPID JWT (signature with the daemon's public key, `aud`, `exp`, `sub`)
    /// and decrypts the payload.
    pub(super) fn open(&self, got: &Received, vapid_public: &str, origin: &str) -> PushMessage {
        assert_eq!(got.encoding, "aes128gcm");
        let (token, k) = got
            .authorization
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap_or_else(|| panic!("not a VAPID header: {:?}", got.authorization));
        assert_eq!(k, vapid_public, "the header names the daemon's key");
        let key = ES256PublicKey::from_bytes(&B64.decode(vapid_public).unwrap()).unwrap();
        let opts = VerificationOptions {
            allowed_audiences: Some([origin.to_owned()].into_iter().collect()),
            ..Default::default()
        };
        let claims = key
            .verify_token::<NoCustomClaims>(token, Some(opts))
            .expect("signed by the daemon's VAPID key, for this push service");
        assert_eq!(claims.subject.as_deref(), Some("mailto:ops@example.com"));
        let exp = claims.expires_at.unwrap().as_secs();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            now < exp && exp <= now + 24 * 3600,
            "exp within 24 h: {exp}"
        );
        let plain = web_push_native::decrypt(
            got.body.clone(),
            &self.secret,
            &web_push_native::Auth::clone_from_slice(&self.auth),
        )
        .expect("decrypts with the subscription's keys");
        serde_json::from_slice(&plain).unwrap()
    }
}

fn state_of(e: &DaemonEvent, id: &str) -> Option<(AgentStatus, AgentSignal, Option<String>)> {
    match e {
        DaemonEvent::AgentState {
            session_id, state, ..
        } if session_id == id => Some((state.status, state.signal, state.reason.clone())),
        _ => None,
    }
}

/// Run `id`'s states as the events socket sends them, up to its end.
async fn states_until_end(
    events: &mut crate::fixture::Ws,
    id: &str,
) -> Vec<(AgentStatus, AgentSignal, Option<String>)> {
    let mut seen = Vec::new();
    loop {
        let e = next_event(events, Duration::from_secs(30)).await;
        if let Some(st) = state_of(&e, id) {
            seen.push(st);
        }
        if matches!(&e, DaemonEvent::RunEnded { session, .. } if session.id == id) {
            return seen;
        }
    }
}

fn start(d: &TestDaemon, s: &crate::fixture::Session, agent: &str) -> SessionInfo {
    let r = d.post(
        s,
        "/api/v1/projects/agents/sessions",
        &json!({"agent": agent}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_states_reach_events_audit_get_its_own_socket_and_the_phone() {
    let d = daemon()
        .config(
            "[sessions]\nagent_idle_ms = 1000\n[push]\ncontact = \"mailto:ops@example.com\"\n",
            0o600,
        )
        .start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);

    // The phone subscribes.
    let (service, mut pushes) = push_service().await;
    let browser = Browser::new();
    let sub = json!({"endpoint": format!("{service}/push/phone-1"), "keys": browser.keys(),
                     "label": "phone", "expirationTime": null});
    let r = d.post(&s, "/api/v1/push/subscriptions", &sub);
    assert_eq!(r.status, 200, "{}", r.body);
    let view: PushSubscriptionView = r.json_as();
    assert_eq!(
        (view.label.as_deref(), view.service.as_str()),
        (Some("phone"), service.as_str())
    );
    let info: PushInfo = d.get_as(&s, "/api/v1/push").json_as();
    assert_eq!(info.subscriptions, vec![view.clone()]);
    assert!(
        !d.get_as(&s, "/api/v1/push").body.contains("phone-1"),
        "the endpoint stays private"
    );

    let mut events = d.ws("/api/v1/events", &s).await;
    let run = start(&d, &s, "primary");
    let id = run.id.clone();
    let mut agent_ws = d.ws(&format!("/api/v1/sessions/{id}/agent"), &s).await;

    // The events socket: every state, in order, then the run's end.
    let seen = states_until_end(&mut events, &id).await;
    assert_eq!(seen, expected());

    // The run's own socket: the state when it connected, the changes after, then run.ended.
    let mut own = Vec::new();
    loop {
        let e = next_event(&mut agent_ws, Duration::from_secs(10)).await;
        if let Some(st) = state_of(&e, &id) {
            own.push(st);
        }
        if let DaemonEvent::RunEnded { session, agent } = &e {
            assert_eq!(
                (session.id.as_str(), agent.as_str()),
                (id.as_str(), "primary")
            );
            break;
        }
    }
    let all = expected();
    assert!(
        all.ends_with(&own) && !own.is_empty(),
        "{own:?} is not a tail of {all:?}"
    );

    // GET carries the final state.
    let got: SessionInfo = d.get_as(&s, &format!("/api/v1/sessions/{id}")).json_as();
    let state = got.agent.expect("an agent run has a state");
    assert_eq!(
        (state.status, state.exit_code),
        (AgentStatus::Done, Some(0))
    );

    // The audit log has each state, in order (it lists newest first).
    let audit: AuditPage = d
        .get_as(
            &s,
            &format!("/api/v1/audit?session_id={id}&type=agent.state&limit=100"),
        )
        .json_as();
    let logged: Vec<(String, String)> = audit
        .events
        .iter()
        .rev()
        .map(|e| {
            let f = |k: &str| e.data[k].as_str().unwrap_or_default().to_owned();
            (f("status"), f("reason"))
        })
        .collect();
    let want: Vec<(String, String)> = expected()
        .into_iter()
        .map(|(st, _, r)| {
            let st = serde_json::to_value(st)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            (st, r.unwrap_or_default())
        })
        .collect();
    assert_eq!(logged, want);

    // One push each time the operator was wanted: four waits and the end.
    let mut messages = Vec::new();
    for _ in 0..5 {
        let got = tokio::time::timeout(Duration::from_secs(10), pushes.recv())
            .await
            .expect("a push within 10 s")
            .unwrap();
        assert_eq!(got.path, "/push/phone-1");
        messages.push(browser.open(&got, &info.vapid_public_key, &service));
    }
    // One at a time, in the order the states came, so a phone shows the newest last.
    let bodies: Vec<(AgentStatus, String)> = messages
        .iter()
        .map(|m| (m.status, m.body.clone()))
        .collect();
    let want: Vec<(AgentStatus, String)> = expected()
        .into_iter()
        .filter(|(st, _, _)| st.needs_operator())
        .map(|(st, _, r)| (st, r.unwrap_or_default()))
        .collect();
    assert_eq!(bodies, want);
    let first = messages
        .iter()
        .find(|m| m.body == "Proceed? [y/N]")
        .unwrap();
    assert_eq!(
        first,
        &PushMessage {
            title: "agents: primary is waiting for you".into(),
            body: "Proceed? [y/N]".into(),
            url: format!("/#/sessions/{id}"),
            session_id: id.clone(),
            status: AgentStatus::Waiting,
        }
    );
    eventually(Duration::from_secs(10), || {
        let sent: AuditPage = d
            .get_as(&s, &format!("/api/v1/audit?session_id={id}&type=push.sent"))
            .json_as();
        match sent.events.len() {
            5 => Ok(()),
            n => Err(format!("{n} push.sent rows: {:?}", sent.events)),
        }
    });

    // Connecting to an ended run gives its end at once.
    let mut late = d.ws(&format!("/api/v1/sessions/{id}/agent"), &s).await;
    let first = next_event(&mut late, Duration::from_secs(10)).await;
    assert_eq!(
        state_of(&first, &id).map(|(st, _, _)| st),
        Some(AgentStatus::Done)
    );
    assert!(matches!(
        next_event(&mut late, Duration::from_secs(10)).await,
        DaemonEvent::RunEnded { .. }
    ));

    // A failing agent ends in `error` with its status.
    let failing = start(&d, &s, "primary.failing");
    let state = eventually(Duration::from_secs(20), || {
        let got: SessionInfo = d
            .get_as(&s, &format!("/api/v1/sessions/{}", failing.id))
            .json_as();
        match got.agent {
            Some(a) if matches!(a.status, AgentStatus::Done | AgentStatus::Error) => Ok(a),
            other => Err(format!("not ended yet: {other:?}")),
        }
    });
    assert_eq!(
        (state.status, state.exit_code, state.reason.as_deref()),
        (
            AgentStatus::Error,
            Some(3),
            Some("exited with status 3: broken")
        )
    );

    // Revoking: the subscription is gone from the list, and a second revoke is a 404.
    let r = d.delete(&s, &format!("/api/v1/push/subscriptions/{}", view.id));
    assert_eq!(r.status, 200, "{}", r.body);
    let info: PushInfo = d.get_as(&s, "/api/v1/push").json_as();
    assert_eq!(info.subscriptions, vec![]);
    let r = d.delete(&s, &format!("/api/v1/push/subscriptions/{}", view.id));
    assert_eq!(r.status, 404, "{}", r.body);
}

/// A TUI at its prompt that keeps redrawing it (a blinking cursor, a clock that does not
/// move): output every 0.1 s for 4 s, the screen the same. Then a real change, then quiet.
const REDRAWING: &str = r#"version: 1
project: agents
primary:
  command: [sh, -c, "printf 'thinking\\n'; sleep 0.3; i=0; while [ $i -lt 40 ]; do printf '\\r\\033[2K> ready for input'; sleep 0.1; i=$((i+1)); done; printf '\\nchanged screen\\n'; sleep 3"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrawn_unchanged_screen_is_idle_and_only_a_changed_screen_ends_the_wait() {
    let d = daemon()
        .config("[sessions]\nagent_idle_ms = 1000\n", 0o600)
        .start();
    let s = d.login();
    let proj = project_dir(REDRAWING);
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut events = d.ws("/api/v1/events", &s).await;
    let id = start(&d, &s, "primary").id;
    let seen = states_until_end(&mut events, &id).await;
    use AgentSignal as G;
    use AgentStatus as S;
    let r = |s: &str| Some(s.to_owned());
    assert_eq!(
        seen,
        vec![
            (S::Starting, G::Start, None),
            (S::Working, G::Output, None),
            // Output kept coming, but the screen stayed the same for a second.
            (S::Waiting, G::Idle, r("> ready for input")),
            (S::Working, G::Output, None),
            (S::Waiting, G::Idle, r("changed screen")),
            (S::Done, G::Exit, r("exited with status 0: changed screen")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_session_has_no_agent_stream_and_bad_subscriptions_are_refused() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir("version: 1\nproject: plain\n");
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.post(
        &s,
        "/api/v1/projects/plain/sessions",
        &json!({"argv": ["sleep", "5"]}),
    );
    let info: SessionInfo = r.json_as();
    assert_eq!(info.agent, None, "only agent runs have a state");
    let refused = tokio_tungstenite::connect_async(
        d.ws_request(&format!("/api/v1/sessions/{}/agent", info.id), &s),
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 400),
        other => panic!("a shell session has no agent stream: {other:?}"),
    }
    let keys = Browser::new().keys();
    for endpoint in [
        "http://push.example/1",
        "file:///etc/passwd",
        "https://u:p@push.example/",
    ] {
        let r = d.post(
            &s,
            "/api/v1/push/subscriptions",
            &json!({"endpoint": endpoint, "keys": keys}),
        );
        assert_eq!(r.status, 400, "{endpoint}: {}", r.body);
    }
    let r = d.post(
        &s,
        "/api/v1/push/subscriptions",
        &json!({"endpoint": "https://push.example/1", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("p256dh"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_tool_call_pushes_a_short_summary_never_the_command() {
    let d = daemon()
        .config("[push]\ncontact = \"mailto:ops@example.com\"\n", 0o600)
        .start();
    let s = d.login();
    let proj = project_dir("version: 1\nproject: agents\nprimary:\n  command: [sleep, \"60\"]\n");
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let (service, mut pushes) = push_service().await;
    let browser = Browser::new();
    let sub = json!({"endpoint": format!("{service}/push/phone-1"), "keys": browser.keys(),
                     "label": "phone", "expirationTime": null});
    let r = d.post(&s, "/api/v1/push/subscriptions", &sub);
    assert_eq!(r.status, 200, "{}", r.body);
    let info: PushInfo = d.get_as(&s, "/api/v1/push").json_as();
    let run = start(&d, &s, "primary");
    let id = run.id.clone();
    // What the cage's hook helper sends for Claude Code's PreToolUse; it waits for the answer.
    let command = "curl -H 'Authorization: Bearer sk-live-secret' https://example.com/deploy";
    let socket = d.runtime_dir().join("agent").join(&id).join("hook.sock");
    let req = json!({"event": "pre-tool-use", "payload": {"tool_name": "Bash",
                     "tool_input": {"command": command}, "cwd": "/srv"}});
    let asked = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        conn.write_all(req.to_string().as_bytes()).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        reply
    });
    let got = tokio::time::timeout(Duration::from_secs(10), pushes.recv())
        .await
        .expect("a push within 10 s")
        .unwrap();
    let message = browser.open(&got, &info.vapid_public_key, &service);
    assert_eq!(
        message,
        PushMessage {
            title: "agents: primary is waiting for you".into(),
            body: "asks to run a tool call: open kaged to approve or deny".into(),
            url: format!("/#/sessions/{id}"),
            session_id: id.clone(),
            status: AgentStatus::Waiting,
        }
    );
    // The signed-in API has the command; the state's reason too.
    let held: kaged_api::ApprovalList = d.get_as(&s, "/api/v1/approvals").json_as();
    assert_eq!(held.approvals.len(), 1, "{held:?}");
    assert_eq!(held.approvals[0].command.as_deref(), Some(command));
    let r = d.post(
        &s,
        &format!("/api/v1/approvals/{}", held.approvals[0].id),
        &json!({"verdict": "deny"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let reply: serde_json::Value = serde_json::from_str(&asked.await.unwrap()).unwrap();
    assert_eq!(
        reply,
        json!({"reply": "decision", "decision": "deny", "note": null})
    );
    let r = d.delete(&s, &format!("/api/v1/sessions/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
}
