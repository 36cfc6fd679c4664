//! The egress gateway (design §7), from inside real cages started through the real daemon:
//! a filtered-network cage reaches what its policy names and nothing else.
//!
//! There is no internet here, so the "allowed public host" is a test upstream on the host's
//! loopback, made reachable the one way a private address can be: the operator's
//! `[egress] allow_private` in local.toml. Everything else on loopback stays refused, which is
//! what the escape probes check.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use kaged_api::{
    AuditPage, DaemonEvent, EgressConnection, EgressDecision, EgressVia, SessionInfo, SessionState,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::fixture::{Session, TestDaemon, daemon, eventually, next_event, project_dir};

const PROJECT: &str = "version: 1\nproject: egress\n";

/// A plain-HTTP upstream on the host's loopback answering every request with `body`, and
/// the number of requests it served.
pub(crate) fn upstream(
    body: &'static str,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, served)
}

fn start(d: &TestDaemon, s: &Session, body: Value) -> SessionInfo {
    let r = d.post(s, "/api/v1/projects/egress/sessions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

/// Runs `script` in a cage with `network` and returns what it printed once it exited.
fn run_caged(d: &TestDaemon, s: &Session, network: Value, script: &str) -> (SessionInfo, String) {
    let info = start(
        d,
        s,
        json!({"argv": ["bash", "--norc", "-c", script],
               "cage": {"network": network, "fs": [{"path": "project:/", "access": "ro"}]}}),
    );
    let id = info.id.clone();
    eventually(Duration::from_secs(60), || {
        let v: SessionInfo = d.get_as(s, &format!("/api/v1/sessions/{id}")).json_as();
        if v.state == SessionState::Exited {
            Ok(())
        } else {
            Err(format!("session {id} never exited: {v:?}"))
        }
    });
    let out = d
        .get_as(s, &format!("/api/v1/sessions/{id}/transcript"))
        .body;
    (info, out.replace("\r\n", "\n"))
}

fn egress_rows(d: &TestDaemon, s: &Session, session: &str) -> Vec<(String, EgressConnection)> {
    let page: AuditPage = d
        .get_as(
            s,
            &format!("/api/v1/audit?type=egress.&session_id={session}&limit=1000"),
        )
        .json_as();
    page.events
        .into_iter()
        .map(|r| {
            let c: EgressConnection = serde_json::from_value(r.data.clone()).unwrap();
            (r.kind, c)
        })
        .collect()
}

/// The value printed after `name=` on its own line.
fn probe<'a>(out: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=");
    out.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {name} in the cage's output:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_is_reached_through_the_gateway_over_connect_and_plain_http_audited_and_streamed()
 {
    let (up, served) = upstream("hello from upstream");
    let d = daemon()
        .local_toml(&format!("[egress]\nallow_private = [\"127.0.0.1:{up}\"]\n"))
        .start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut events = d.ws("/api/v1/events", &s).await;
    // NO_PROXY names 127.0.0.1 (the cage's own loopback), so the test upstream is asked for
    // through the proxy explicitly; `-p` tunnels through CONNECT.
    let script = format!(
        "env | grep -i _proxy= | sort; \
         echo plain=$(curl -sS --noproxy '' -x \"$HTTP_PROXY\" http://127.0.0.1:{up}/hi); \
         echo tunnel=$(curl -sS --noproxy '' -p -x \"$HTTPS_PROXY\" http://127.0.0.1:{up}/hi); \
         echo END"
    );
    let network = json!({"allow": [format!("127.0.0.1:{up}")]});
    let (info, out) = run_caged(&d, &s, network, &script);
    assert!(out.contains("END"), "{out}");
    for line in [
        "HTTP_PROXY=http://127.0.0.1:3128",
        "HTTPS_PROXY=http://127.0.0.1:3128",
        "ALL_PROXY=http://127.0.0.1:3128",
        "NO_PROXY=localhost,127.0.0.1",
        "http_proxy=http://127.0.0.1:3128",
        "https_proxy=http://127.0.0.1:3128",
        "all_proxy=http://127.0.0.1:3128",
        "no_proxy=localhost,127.0.0.1",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
    }
    assert_eq!(probe(&out, "plain"), "hello from upstream", "{out}");
    assert_eq!(probe(&out, "tunnel"), "hello from upstream", "{out}");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
    let rows = eventually(Duration::from_secs(10), || {
        let rows = egress_rows(&d, &s, &info.id);
        if rows.len() == 2 {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    });
    for (kind, c) in &rows {
        assert_eq!(kind, "egress.allowed");
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.address.as_deref(),
                c.decision,
                c.rule.as_str()
            ),
            (
                "127.0.0.1",
                up,
                Some("127.0.0.1"),
                EgressDecision::Allowed,
                format!("allow 127.0.0.1:{up}").as_str()
            )
        );
        assert!(c.bytes_up > 0 && c.bytes_down >= 19, "{c:?}");
        assert_eq!(c.project_id, "egress");
    }
    // The live log: the same records as typed events on the events socket.
    let mut streamed = Vec::new();
    while streamed.len() < 2 {
        if let DaemonEvent::Egress { connection } =
            next_event(&mut events, Duration::from_secs(10)).await
        {
            streamed.push(connection);
        }
    }
    let mut audited: Vec<EgressConnection> = rows.into_iter().map(|(_, c)| c).collect();
    audited.sort_by_key(|c| c.via == EgressVia::Connect);
    streamed.sort_by_key(|c| c.via == EgressVia::Connect);
    assert_eq!(streamed, audited);
}

#[test]
fn nothing_escapes_a_cage_with_an_allowlist() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let kaged = d.addr.port();
    let lan = crate::suite::hardening::non_loopback_address();
    // Everything probed is in `allow`: what refuses it must be the address check, which no
    // project file can lift.
    let mut allow = vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "169.254.169.254".to_owned(),
        "[::1]".to_owned(),
        "[::ffff:127.0.0.1]".to_owned(),
        "[::ffff:7f00:1]".to_owned(),
        "*.example.com".to_owned(),
    ];
    allow.extend(lan.map(|ip| ip.to_string()));
    let network = json!({"allow": allow, "deny": ["evil.example.com"]});
    let via = |name: &str, url: &str, tunnel: bool| {
        format!(
            "echo {name}=$(curl -s -o /dev/null --noproxy '' {p} -x \"$HTTP_PROXY\" -w \
             '%{{http_code}}/%{{http_connect}}' --max-time 10 '{url}'); ",
            p = if tunnel { "-p" } else { "" }
        )
    };
    let mut script = String::new();
    script += &via(
        "kaged",
        &format!("http://127.0.0.1:{kaged}/api/v1/healthz"),
        false,
    );
    script += &via(
        "kaged_connect",
        &format!("https://127.0.0.1:{kaged}/"),
        true,
    );
    script += &via(
        "metadata",
        "http://169.254.169.254/latest/meta-data/",
        false,
    );
    script += &via("v6_loopback", &format!("http://[::1]:{kaged}/"), false);
    script += &via(
        "mapped",
        &format!("http://[::ffff:127.0.0.1]:{kaged}/"),
        false,
    );
    script += &via(
        "mapped_connect",
        &format!("https://[::ffff:7f00:1]:{kaged}/"),
        true,
    );
    script += &via(
        "localhost",
        &format!("http://localhost:{kaged}/api/v1/healthz"),
        false,
    );
    script += &via("not_allowed", "http://example.org/", false);
    script += &via("denied", "http://evil.example.com/", false);
    if let Some(ip) = lan {
        script += &via("lan", &format!("http://{ip}:{kaged}/"), false);
        script += &format!(
            "(exec 3<>/dev/tcp/{ip}/{kaged}) 2>/dev/null && echo direct_lan=open || echo direct_lan=refused; "
        );
    }
    // Around the proxy: the cage's loopback is its own, and there is no other interface.
    script += &format!(
        "curl -s --noproxy '*' --max-time 5 http://127.0.0.1:{kaged}/api/v1/healthz >/dev/null \
         && echo direct=open || echo direct=refused; \
         (exec 3<>/dev/tcp/1.1.1.1/443) 2>/dev/null && echo direct_public=open || echo direct_public=refused; \
         getent hosts example.org >/dev/null && echo dns=resolved || echo dns=failed; \
         ns=$(awk '/^nameserver/ {{print $2; exit}}' /etc/resolv.conf 2>/dev/null); \
         (exec 3<>/dev/udp/${{ns:-8.8.8.8}}/53 && printf x >&3) 2>/dev/null && echo dns_udp=sent || echo dns_udp=refused; \
         ip -o addr 2>/dev/null | awk '{{print \"iface=\" $2}}' | sort -u; \
         curl -s --noproxy '' -x \"$HTTP_PROXY\" http://example.org/; \
         echo END"
    );
    let (info, out) = run_caged(&d, &s, network, &script);
    assert!(out.contains("END"), "{out}");
    for name in [
        "kaged",
        "metadata",
        "v6_loopback",
        "mapped",
        "localhost",
        "not_allowed",
        "denied",
    ] {
        assert_eq!(probe(&out, name), "403/000", "{name}:\n{out}");
    }
    for name in ["kaged_connect", "mapped_connect"] {
        assert_eq!(probe(&out, name), "000/403", "{name}:\n{out}");
    }
    if lan.is_some() {
        assert_eq!(probe(&out, "lan"), "403/000", "{out}");
        assert_eq!(probe(&out, "direct_lan"), "refused", "{out}");
    } else {
        eprintln!("no non-loopback address on this host: the LAN probes were skipped");
    }
    assert_eq!(probe(&out, "direct"), "refused", "{out}");
    assert_eq!(probe(&out, "direct_public"), "refused", "{out}");
    assert_eq!(probe(&out, "dns"), "failed", "{out}");
    assert_eq!(probe(&out, "dns_udp"), "refused", "{out}");
    let ifaces: Vec<&str> = out.lines().filter(|l| l.starts_with("iface=")).collect();
    assert!(ifaces.iter().all(|l| *l == "iface=lo"), "{ifaces:?}");
    // The 403 says which rule refused and how to allow it.
    assert!(
        out.contains("example.org:80 is not in this cage's `network.allow` list. To allow it, add `example.org:80`"),
        "{out}"
    );
    let rows = eventually(Duration::from_secs(10), || {
        let rows = egress_rows(&d, &s, &info.id);
        let want = 9 + usize::from(lan.is_some()) + 1;
        if rows.len() >= want {
            Ok(rows)
        } else {
            Err(format!("{} of {want}: {rows:?}", rows.len()))
        }
    });
    assert!(
        rows.iter()
            .all(|(k, c)| k == "egress.denied" && c.decision == EgressDecision::Denied),
        "{rows:?}"
    );
    let rule_of = |host: &str| {
        rows.iter()
            .find(|(_, c)| c.host == host)
            .map(|(_, c)| (c.rule.clone(), c.address.clone()))
            .unwrap_or_else(|| panic!("no row for {host}: {rows:?}"))
    };
    assert_eq!(
        rule_of("localhost").0.ends_with("is loopback"),
        true,
        "{rows:?}"
    );
    assert_eq!(
        rule_of("169.254.169.254"),
        (
            "169.254.169.254 is link-local".to_owned(),
            Some("169.254.169.254".to_owned())
        )
    );
    assert_eq!(
        rule_of("::ffff:127.0.0.1"),
        (
            "::ffff:127.0.0.1 is loopback".to_owned(),
            Some("::ffff:127.0.0.1".to_owned())
        )
    );
    assert_eq!(
        rule_of("evil.example.com"),
        ("deny evil.example.com".to_owned(), None)
    );
    assert_eq!(
        rule_of("example.org"),
        ("no allow entry matches".to_owned(), None)
    );
}

#[test]
fn a_project_cannot_open_a_private_address_and_local_toml_pairs_need_a_port() {
    let err = daemon()
        .local_toml("[egress]\nallow_private = [\"*.lan:22\"]\n")
        .start_fails()
        .1;
    assert!(
        err.contains("allow_private") && err.contains("*.lan:22"),
        "{err}"
    );
    let err = daemon()
        .local_toml("[egress]\nallow_private = [\"10.0.0.5\"]\n")
        .start_fails()
        .1;
    assert!(err.contains("must name one host and a port"), "{err}");
    // `allow_private` is not a project key: the DSL rejects it.
    let proj = project_dir(
        "version: 1\nproject: egress\nprimary:\n  command: [sh]\n  cage:\n    network:\n      allow: [\"127.0.0.1:80\"]\n      allow_private: [\"127.0.0.1:80\"]\n",
    );
    let d = daemon().start();
    let s = d.login();
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("allow_private"), "{}", r.body);
}

#[test]
fn a_cage_on_the_host_network_is_audited_with_its_warning() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    let r = d.post(&s, "/api/v1/projects", &json!({"path": proj.path()}));
    assert_eq!(r.status, 200, "{}", r.body);
    let info = start(
        &d,
        &s,
        json!({"argv": ["true"], "cage": {"network": "host"}}),
    );
    let rows = eventually(Duration::from_secs(10), || {
        let page: AuditPage = d
            .get_as(
                &s,
                &format!(
                    "/api/v1/audit?type=cage.network_host&session_id={}",
                    info.id
                ),
            )
            .json_as();
        if page.events.len() == 1 {
            Ok(page.events)
        } else {
            Err(format!("{:?}", page.events))
        }
    });
    let warning = rows[0].data["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("kaged's own port") && warning.contains("network: {allow"),
        "{warning}"
    );
}
