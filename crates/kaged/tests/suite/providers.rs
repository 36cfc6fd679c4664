//! Keys that never enter the cage: a caged process reaches its model provider at
//! `$ANTHROPIC_BASE_URL` on the relay with a dummy key; the gateway forwards over TLS and puts
//! the real key in. The provider is a scripted fake on loopback, speaking TLS with a CA this
//! test makes and hands to kaged through the operator's `[egress] extra_ca_file`, never
//! through the project file. It checks the key on every request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kaged_api::{
    AuditPage, EgressConnection, EgressDecision, EgressVia, SessionInfo, SessionState,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::fixture::{daemon, eventually, project_dir};

/// Never written contiguously into anything the cage runs: the script rebuilds it from halves.
const KEY_A: &str = "sk-ant-api03-kagedtest";
const KEY_B: &str = "-REALKEY-7f3a9c2e51d8";

/// What the fake provider saw: the path of each request and whether it carried the real key.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// A TLS server for `localhost` on 127.0.0.1, signed by a fresh test CA (returned as PEM).
fn fake_provider(key: String) -> (u16, String, Seen) {
    let (config, ca_pem) = crate::fixture::llm::tls_config();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let (config, log, key) = (config.clone(), log.clone(), key.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut reader = BufReader::new(&mut tls);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let (mut length, mut presented) = (0usize, None);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or_default();
                    let value = value.trim().to_owned();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.parse().unwrap_or(0),
                        "x-api-key" => presented = Some(value),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let ok = presented.as_deref() == Some(key.as_str());
                log.lock().unwrap().push((path.clone(), ok));
                let (status, reply) = match (ok, path.as_str()) {
                    (false, _) => ("401 Unauthorized", r#"{"error":"invalid x-api-key"}"#),
                    (true, "/v1/error") => (
                        "500 Internal Server Error",
                        r#"{"error":"scripted failure"}"#,
                    ),
                    (true, _) => (
                        "200 OK",
                        r#"{"type":"message","content":[{"type":"text","text":"hello through the gateway"}]}"#,
                    ),
                };
                let _ = write!(
                    tls,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, ca_pem, seen)
}

#[test]
fn a_caged_process_reaches_its_provider_through_the_gateway_and_the_key_is_nowhere_it_must_not_be()
{
    let key = format!("{KEY_A}{KEY_B}");
    let (port, ca_pem, seen) = fake_provider(key.clone());
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let d = daemon()
        .env("ANTHROPIC_API_KEY", &key)
        .local_toml(&format!(
            "[providers.anthropic]\napi_key_env = \"ANTHROPIC_API_KEY\"\nbase_url = \"https://localhost:{port}\"\n\n\
             [egress]\nallow_private = [\"localhost:{port}\"]\nextra_ca_file = \"{}\"\n",
            ca_file.display()
        ))
        .start();
    let s = d.login();
    let proj = project_dir("version: 1\nproject: keys\n");
    // The CA is public; the cage uses it only for the attempt around the route.
    std::fs::write(proj.path().join("ca.pem"), &ca_pem).unwrap();
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let script = format!(
        "K1='{KEY_A}'; K2='{KEY_B}'; K=\"$K1$K2\"; \
         echo base=$ANTHROPIC_BASE_URL; echo dummy=$ANTHROPIC_API_KEY; \
         echo reply=$(curl -sS -H \"x-api-key: $ANTHROPIC_API_KEY\" -H 'content-type: application/json' \
             -d '{{\"model\":\"m\"}}' \"$ANTHROPIC_BASE_URL/v1/messages\"); \
         echo upstream_error=$(curl -sS \"$ANTHROPIC_BASE_URL/v1/error\"); \
         echo unknown=$(curl -sS http://127.0.0.1:3128/p/nope/v1/x); \
         echo around=$(curl -sS --noproxy '' -p -x \"$HTTPS_PROXY\" --cacert {proj}/ca.pem \
             -H \"x-api-key: $ANTHROPIC_API_KEY\" -d '{{}}' https://localhost:{port}/v1/messages); \
         echo env_hits=$(env | grep -cF -- \"$K\"); \
         echo environ_hits=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -cF -- \"$K\"); \
         echo file_hits=$(grep -rlsF -- \"$K\" /home/cage /tmp /run /etc {proj} 2>/dev/null | wc -l); \
         echo END",
        proj = proj.path().display()
    );
    let r = d.post(
        &s,
        "/api/v1/projects/keys/sessions",
        &json!({"argv": ["bash", "--norc", "-c", script],
                "cage": {"network": {"allow": ["localhost"]},
                         // Even listed, the variable carries the dummy, not the daemon's key.
                         "env": ["TERM", "ANTHROPIC_API_KEY"],
                         "fs": [{"path": "project:/", "access": "ro"}]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let info: SessionInfo = r.json_as();
    let id = info.id.clone();
    eventually(Duration::from_secs(60), || {
        let v: SessionInfo = d.get_as(&s, &format!("/api/v1/sessions/{id}")).json_as();
        (v.state == SessionState::Exited)
            .then_some(())
            .ok_or_else(|| format!("{v:?}"))
    });
    let out = d
        .get_as(&s, &format!("/api/v1/sessions/{id}/transcript"))
        .body
        .replace("\r\n", "\n");
    let probe = |name: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}:\n{out}"))
            .to_owned()
    };
    assert!(out.contains("END"), "{out}");
    assert_eq!(probe("base"), "http://127.0.0.1:3128/p/anthropic");
    assert!(probe("dummy").starts_with("kaged-cage-dummy-"), "{out}");
    assert!(
        probe("reply").contains("hello through the gateway"),
        "{out}"
    );
    assert_eq!(probe("upstream_error"), r#"{"error":"scripted failure"}"#);
    assert!(
        probe("unknown").contains("no provider \"nope\" is declared"),
        "{out}"
    );
    // Around the route, the provider sees only the dummy.
    assert_eq!(probe("around"), r#"{"error":"invalid x-api-key"}"#);
    for hits in ["env_hits", "environ_hits", "file_hits"] {
        assert_eq!(probe(hits), "0", "{hits}:\n{out}");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("/v1/messages".to_owned(), true),
            ("/v1/error".to_owned(), true),
            ("/v1/messages".to_owned(), false),
        ]
    );
    // The gateway's records: the provider calls are audited by name, with bytes.
    let page: AuditPage = eventually(Duration::from_secs(10), || {
        let page: AuditPage = d
            .get_as(&s, &format!("/api/v1/audit?type=egress.&session_id={id}"))
            .json_as();
        (page.events.len() >= 3)
            .then_some(page)
            .ok_or_else(|| "fewer than 3 egress rows".to_owned())
    });
    let provider_rows: Vec<EgressConnection> = page
        .events
        .iter()
        .map(|r| serde_json::from_value::<EgressConnection>(r.data.clone()).unwrap())
        .filter(|c| c.via == EgressVia::Provider)
        .collect();
    assert_eq!(provider_rows.len(), 2, "{provider_rows:?}");
    for c in &provider_rows {
        assert_eq!(
            (c.decision, c.rule.as_str(), c.host.as_str(), c.port),
            (
                EgressDecision::Allowed,
                "provider anthropic",
                "localhost",
                port
            )
        );
        assert!(c.bytes_up > 0 && c.bytes_down > 0, "{c:?}");
    }
    // Nowhere on the host side either: audit rows, the daemon's log, the transcript.
    let all = d.get_as(&s, "/api/v1/audit?limit=1000").body;
    assert!(!all.contains(&key), "the key is in the audit log: {all}");
    assert!(!d.stderr().contains(&key), "the key is in the daemon's log");
    assert!(!out.contains(&key), "the key is in the transcript");
}
