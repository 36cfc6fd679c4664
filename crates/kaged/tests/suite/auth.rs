//! The auth gate of ADR-0007 (design §5) over real HTTP and WebSocket, in every auth mode.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kaged_api::{AuditPage, AuthMode, DaemonEvent, ErrorCode, Identity, Me};
use pretty_assertions::assert_eq;

use crate::fixture::{Response, TestDaemon, daemon, eventually, raw};

const NONCE: &str = "sidecar-nonce-0123456789abcdef0123456789";

fn sidecar() -> TestDaemon {
    daemon()
        .arg("--auth-mode")
        .arg("sidecar")
        .env("KAGED_AUTH_SIDECAR_NONCE", NONCE)
        .start()
}

fn ws_headers(d: &TestDaemon) -> Vec<(String, String)> {
    vec![
        ("Connection".into(), "Upgrade".into()),
        ("Upgrade".into(), "websocket".into()),
        ("Sec-WebSocket-Version".into(), "13".into()),
        (
            "Sec-WebSocket-Key".into(),
            "dGhlIHNhbXBsZSBub25jZQ==".into(),
        ),
        ("Origin".into(), d.origin()),
    ]
}

fn with<'a>(base: &'a [(String, String)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<(&str, &str)> = base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    v.extend_from_slice(extra);
    v
}

#[test]
fn every_route_sits_behind_the_stack() {
    let d = daemon().start();
    let s = d.login();
    let origin = d.origin();
    for spec in kaged_http::route_specs() {
        let path = spec.path.replace("{id}", "x").replace("{*path}", "x.js");
        let method = spec.method.as_str();
        let body = (method != "GET").then_some("{}");
        let ws = ws_headers(&d);
        let base: Vec<(&str, &str)> = if spec.websocket {
            with(&ws, &[])
        } else {
            vec![("Origin", origin.as_str())]
        };

        // Host is checked on every route, public ones included.
        let mut hostile = vec![("Host", "evil.example")];
        hostile.extend(base.iter().copied());
        hostile.push(("Cookie", &s.cookie));
        hostile.push(("X-Kaged-CSRF", &s.csrf));
        let r = raw(d.addr, method, &path, &hostile, body);
        assert_eq!(
            (r.status, r.error_code()),
            (403, ErrorCode::Forbidden),
            "{method} {path} with a hostile Host"
        );

        // Auth: only the design §5 list answers without credentials.
        let r = d.request(method, &path, &base, body);
        if spec.auth {
            assert_eq!(
                r.status, 401,
                "{method} {path} without credentials: {}",
                r.body
            );
            assert_eq!(r.error_code(), ErrorCode::Unauthenticated);
        } else {
            assert!(
                r.status != 401 && r.status != 403,
                "{method} {path} is public: {}",
                r.status
            );
        }

        // CSRF and Origin: every state-changing route and every upgrade.
        if spec.csrf {
            let mut h = base.clone();
            h.extend(s.auth());
            let r = d.request(method, &path, &h, body);
            assert_eq!(r.status, 403, "{method} {path} without CSRF: {}", r.body);
            let mut h: Vec<(&str, &str)> = base
                .iter()
                .filter(|(k, _)| *k != "Origin")
                .copied()
                .collect();
            h.extend(s.auth());
            h.push(("X-Kaged-CSRF", &s.csrf));
            h.push(("Origin", "http://127.0.0.1:1"));
            let r = d.request(method, &path, &h, body);
            assert_eq!(r.status, 403, "{method} {path} cross-origin: {}", r.body);
        }
    }
    // Anything outside the table gets the strictest treatment: no route discovery without auth.
    assert_eq!(d.get("/api/v1/does-not-exist", &[]).status, 401);
    assert_eq!(
        d.request("DELETE", "/api/v1/healthz", &[("Origin", &origin)], None)
            .status,
        401
    );
    assert_eq!(d.get("/api/v1/does-not-exist", &s.auth()).status, 404);
}

#[test]
fn loopback_credential_matrix() {
    let d = daemon().start();
    let s = d.login();
    let port = d.addr.port();
    let value = s.cookie.split_once('=').unwrap().1.to_owned();
    let ok = d.get("/api/v1/me", &s.auth());
    assert_eq!(ok.status, 200);
    let user = String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_owned();
    assert_eq!(
        ok.json_as::<Me>().identity,
        Identity {
            email: Some(format!("{user}@localhost")),
            user_id: user,
            groups: vec![],
            mode: AuthMode::Loopback,
        }
    );
    let cases: Vec<(String, Vec<(&str, String)>)> = vec![
        ("missing".into(), vec![]),
        (
            "wrong".into(),
            vec![(
                "Cookie",
                format!("kaged_session_{port}=AAAAAAAAAAAAAAAAAAAAAA.AAAA"),
            )],
        ),
        (
            "duplicate".into(),
            vec![("Cookie", format!("{}; {}", s.cookie, s.cookie))],
        ),
        (
            "look-alike name".into(),
            vec![("Cookie", format!("kaged_session_{port}x={value}"))],
        ),
        (
            "other port's name".into(),
            vec![("Cookie", format!("kaged_session_{}={value}", port + 1))],
        ),
        (
            "truncated".into(),
            vec![("Cookie", s.cookie[..s.cookie.len() - 2].to_owned())],
        ),
        (
            "sidecar headers".into(),
            vec![
                ("X-Kaged-User-Id", "mallory".into()),
                ("X-Kaged-Auth-Nonce", NONCE.into()),
            ],
        ),
        (
            "wrong bearer".into(),
            vec![("Authorization", "Bearer not-the-nonce".into())],
        ),
    ];
    for (name, headers) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = d.get("/api/v1/me", &h);
        assert_eq!(
            (r.status, r.error_code()),
            (401, ErrorCode::Unauthenticated),
            "{name}"
        );
    }
    // Without a cookie, a browser gets a page that says how to sign in.
    let page = d.get("/", &[("Accept", "text/html")]);
    assert_eq!(page.status, 401);
    assert!(page.body.contains("kaged auth open"), "{}", page.body);
}

#[test]
fn sidecar_credential_matrix() {
    let d = sidecar();
    let good = [
        ("X-Kaged-Auth-Nonce", NONCE),
        ("X-Kaged-User-Id", "ann@example.com"),
        ("X-Kaged-User-Email", "ann@example.com"),
        ("X-Kaged-User-Groups", "ops,dev"),
    ];
    let me = d.get("/api/v1/me", &good);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.json_as::<Me>().identity,
        Identity {
            user_id: "ann@example.com".into(),
            email: Some("ann@example.com".into()),
            groups: vec!["ops".into(), "dev".into()],
            mode: AuthMode::Sidecar,
        }
    );
    let bad_nonce = format!("{}X", &NONCE[..NONCE.len() - 1]);
    let bearer = format!("Bearer {NONCE}");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("missing nonce", vec![("X-Kaged-User-Id", "ann")]),
        (
            "wrong nonce",
            vec![
                ("X-Kaged-Auth-Nonce", &bad_nonce),
                ("X-Kaged-User-Id", "ann"),
            ],
        ),
        (
            "nonce prefix",
            vec![
                ("X-Kaged-Auth-Nonce", &NONCE[..20]),
                ("X-Kaged-User-Id", "ann"),
            ],
        ),
        (
            "duplicate nonce",
            vec![
                ("X-Kaged-Auth-Nonce", NONCE),
                ("X-Kaged-Auth-Nonce", NONCE),
                ("X-Kaged-User-Id", "ann"),
            ],
        ),
        (
            "look-alike header",
            vec![("X-Kaged-Auth-Nonce2", NONCE), ("X-Kaged-User-Id", "ann")],
        ),
        (
            "underscore header",
            vec![("X_Kaged_Auth_Nonce", NONCE), ("X-Kaged-User-Id", "ann")],
        ),
        ("missing user", vec![("X-Kaged-Auth-Nonce", NONCE)]),
        (
            "duplicate user",
            vec![
                ("X-Kaged-Auth-Nonce", NONCE),
                ("X-Kaged-User-Id", "ann"),
                ("X-Kaged-User-Id", "root"),
            ],
        ),
        (
            "empty user",
            vec![("X-Kaged-Auth-Nonce", NONCE), ("X-Kaged-User-Id", "")],
        ),
        (
            "bearer instead",
            vec![("Authorization", &bearer), ("X-Kaged-User-Id", "ann")],
        ),
    ];
    for (name, h) in cases {
        let r = d.get("/api/v1/me", &h);
        assert_eq!(
            (r.status, r.error_code()),
            (401, ErrorCode::Unauthenticated),
            "{name}: {}",
            r.body
        );
    }
    // Control characters: hyper itself rejects the request before it reaches kaged.
    let r = d.get(
        "/api/v1/me",
        &[
            ("X-Kaged-Auth-Nonce", NONCE),
            ("X-Kaged-User-Id", "ann\x01x"),
        ],
    );
    assert!(r.status == 400 || r.status == 401, "{}", r.status);
    let long = "u".repeat(300);
    let r = d.get(
        "/api/v1/me",
        &[("X-Kaged-Auth-Nonce", NONCE), ("X-Kaged-User-Id", &long)],
    );
    assert_eq!(r.status, 401);
    // The CLI proves itself with the nonce file, through the same contract.
    let out = d.cli(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn insecure_mode_accepts_everyone_but_keeps_csrf_and_every_warning() {
    let d = daemon()
        .arg("--insecure")
        .env("KAGED_INSECURE_REASON", "demo on a trusted LAN")
        .start();
    assert!(
        d.addr.ip().is_loopback(),
        "--insecure must still bind 127.0.0.1"
    );
    let err = d.stderr();
    for needle in [
        "--insecure",
        &d.addr.to_string(),
        "ADR-0007",
        "AUTHENTICATION IS BYPASSED",
    ] {
        assert!(err.contains(needle), "stderr block lacks {needle}:\n{err}");
    }
    let me = d.get("/api/v1/me", &[]);
    assert_eq!(me.status, 200);
    let Me {
        identity,
        csrf_token: csrf,
        ..
    } = me.json_as();
    assert_eq!(identity.user_id, "insecure-mode");
    // The warning header is on every response, refusals included.
    for r in [
        d.get("/api/v1/healthz", &[]),
        me,
        raw(d.addr, "GET", "/api/v1/healthz", &[("Host", "evil")], None),
        d.request(
            "POST",
            "/api/v1/auth/launch-token",
            &[("Origin", &d.origin())],
            Some("{}"),
        ),
    ] {
        assert_eq!(
            r.header_all("x-kaged-warning"),
            vec!["insecure-mode"],
            "{} {}",
            r.status,
            r.body
        );
    }
    // CSRF stays on.
    let r = d.request(
        "POST",
        "/api/v1/auth/launch-token",
        &[("Origin", &d.origin())],
        Some("{}"),
    );
    assert_eq!(r.status, 403);
    let r = d.request(
        "POST",
        "/api/v1/auth/launch-token",
        &[("Origin", &d.origin()), ("X-Kaged-CSRF", &csrf)],
        Some("{}"),
    );
    assert_eq!(r.status, 409, "launch URLs are loopback-only: {}", r.body);
    // Audit: auth.insecure_mode at start with bind address and reason.
    let rows: AuditPage = d
        .get("/api/v1/audit?type=auth.insecure_mode", &[])
        .json_as();
    // `data` differs per event type, so the API leaves it untyped.
    assert_eq!(
        rows.events[0].data,
        serde_json::json!({
            "bind": d.addr.to_string(),
            "event": "daemon_start",
            "reason": "demo on a trusted LAN",
        })
    );
    // Every CLI subcommand prefixes a warning line.
    for args in [&["status"][..], &["version"], &["doctor"]] {
        let out = d.cli(args);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.lines().next().unwrap_or("").contains("--insecure"),
            "{args:?}: {e}"
        );
    }
}

/// The ungated router exists only inside kaged-bench; no environment variable (such as the
/// one an old bench-only build read) turns the gate off in the product binary.
#[test]
fn the_product_binary_never_serves_ungated() {
    let d = daemon().env("KAGED_BENCH_UNGATED", "1").start();
    let r = d.get("/api/v1/status", &[]);
    assert_eq!(
        (r.status, r.error_code()),
        (401, ErrorCode::Unauthenticated),
        "{}",
        r.body
    );
    let r = raw(
        d.addr,
        "GET",
        "/api/v1/status",
        &[("Host", "evil.example")],
        None,
    );
    assert_eq!(
        (r.status, r.error_code()),
        (403, ErrorCode::Forbidden),
        "{}",
        r.body
    );
}

#[test]
fn launch_url_redirects_once_and_races_have_one_winner() {
    let d = daemon().start();
    let path = d.printed_launch_path();
    let r = d.get(&path, &[]);
    assert_eq!(r.status, 303);
    // The page key rides in the fragment, which no server ever sees.
    assert!(
        r.header("location").unwrap().starts_with("/#kaged-page="),
        "{:?}",
        r.header("location")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with(&format!("kaged_session_{}=", d.addr.port())),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert_eq!(d.get(&path, &[]).status, 401, "a launch token works once");

    // `kaged auth open` proves itself with the nonce file and gets a fresh URL.
    let out = d.cli(&["auth", "open", "--no-browser"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fresh = url.trim_start_matches(&d.base_url()).to_owned();
    assert_ne!(fresh, path);
    let winners: usize = (0..8)
        .map(|_| {
            let (addr, host, p) = (d.addr, d.host(), fresh.clone());
            std::thread::spawn(move || raw(addr, "GET", &p, &[("Host", &host)], None).status)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|s| *s == 303)
        .count();
    assert_eq!(winners, 1);
    // The nonce itself is accepted too (an operator reading the file by hand).
    let nonce = std::fs::read_to_string(d.runtime_dir().join("auth-cookie")).unwrap();
    assert_eq!(
        d.get(&format!("/launch?token={}", nonce.trim()), &[])
            .status,
        303
    );
}

#[test]
fn hostile_host_values_are_refused_everywhere() {
    let d = daemon().start();
    let port = d.addr.port();
    for host in [
        format!("evil.example:{port}"),
        format!("localhost.:{port}"),
        format!("127.1:{port}"),
        format!("2130706433:{port}"),
        format!("0x7f000001:{port}"),
        format!("127.0.0.2:{port}"),
        format!("localhost:{}", port + 1),
        "localhost".into(),
        format!("[::1]:{port}"),
        format!("localhost:{port}.evil.example"),
    ] {
        for path in ["/api/v1/healthz", "/launch?token=x", "/api/v1/me"] {
            let r = raw(d.addr, "GET", path, &[("Host", &host)], None);
            assert_eq!(r.status, 403, "Host {host} on {path}");
        }
    }
    let r = raw(
        d.addr,
        "GET",
        "/api/v1/healthz",
        &[("Host", &format!("localhost:{port}"))],
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn two_hosts_two_origins_or_a_target_naming_another_host_are_bad_requests() {
    let d = daemon().start();
    let s = d.login();
    let host = d.host();
    let origin = d.origin();
    let bad = |r: Response, what: &str| {
        assert_eq!(
            (r.status, r.error_code()),
            (400, ErrorCode::BadRequest),
            "{what}: {}",
            r.body
        );
    };
    // The right Host twice is still two: a proxy in front may act on either copy.
    for second in [host.as_str(), "evil.example"] {
        for path in ["/api/v1/healthz", "/api/v1/status"] {
            let h = [
                ("Host", host.as_str()),
                ("Host", second),
                ("Cookie", &s.cookie),
            ];
            bad(
                raw(d.addr, "GET", path, &h, None),
                &format!("Host twice on {path}"),
            );
        }
    }
    for second in [origin.as_str(), "http://evil.example"] {
        let h = [
            ("Origin", origin.as_str()),
            ("Origin", second),
            ("Cookie", &s.cookie),
            ("X-Kaged-CSRF", &s.csrf),
        ];
        bad(
            d.request("POST", "/api/v1/auth/launch-token", &h, Some("{}")),
            "Origin twice on a POST",
        );
        bad(d.get("/api/v1/status", &h), "Origin twice on a GET");
    }
    // An absolute-form target must name the Host it is sent with.
    let other_port = format!("http://127.0.0.1:{}/api/v1/status", d.addr.port() + 1);
    let creds = [
        ("Cookie", s.cookie.as_str()),
        ("X-Kaged-Page", s.page.as_str()),
    ];
    for target in ["http://other.example:1234/api/v1/status", &other_port] {
        bad(d.get(target, &creds), target);
    }
    let same = format!("http://{host}/api/v1/status");
    assert_eq!(d.get(&same, &creds).status, 200);
    assert_eq!(d.get_as(&s, "/api/v1/status").status, 200);
}

#[test]
fn cross_origin_posts_and_upgrades_are_refused() {
    let d = daemon().start();
    let s = d.login();
    let auth = [
        ("Cookie", s.cookie.as_str()),
        ("X-Kaged-Page", s.page.as_str()),
        ("X-Kaged-CSRF", s.csrf.as_str()),
    ];
    let other = format!("http://localhost:{}", d.addr.port() + 1);
    for origin in [
        Some(other.as_str()),
        Some("null"),
        Some("http://evil.example"),
        None,
    ] {
        let mut h = auth.to_vec();
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        let r = d.request("POST", "/api/v1/auth/launch-token", &h, Some("{}"));
        assert_eq!(r.status, 403, "Origin {origin:?}");
        let ws = ws_headers(&d);
        let mut h: Vec<(&str, &str)> = ws
            .iter()
            .filter(|(k, _)| k != "Origin")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.extend(s.auth());
        let q = format!("/api/v1/events?csrf={}", s.csrf);
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        assert_eq!(d.get(&q, &h).status, 403, "WS Origin {origin:?}");
    }
    let mut h = auth.to_vec();
    let origin = d.origin();
    h.push(("Origin", &origin));
    h.push(("Sec-Fetch-Site", "cross-site"));
    assert_eq!(
        d.request("POST", "/api/v1/auth/launch-token", &h, Some("{}"))
            .status,
        403
    );
    h.pop();
    assert_eq!(
        d.request("POST", "/api/v1/auth/launch-token", &h, Some("{}"))
            .status,
        200
    );
    // The same upgrade with our own origin and the CSRF token goes through.
    let ws = ws_headers(&d);
    let mut h = with(&ws, &s.auth());
    let q = format!("/api/v1/events?csrf={}", s.csrf);
    h.push(("Connection", "close"));
    let r = ws_status(&d, &q, &h);
    assert_eq!(r, 101);
}

/// Reads only the status line: a successful upgrade never ends the response.
fn ws_status(d: &TestDaemon, path: &str, headers: &[(&str, &str)]) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", d.host());
    for (k, v) in headers {
        if *k != "Connection" || *v != "close" {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn csrf_missing_or_wrong_is_forbidden() {
    let d = daemon().start();
    let s = d.login();
    let s2 = d.login();
    let o = d.origin();
    for csrf in [None, Some("wrong"), Some(""), Some(s2.csrf.as_str())] {
        let mut h = vec![
            ("Cookie", s.cookie.as_str()),
            ("X-Kaged-Page", s.page.as_str()),
            ("Origin", o.as_str()),
        ];
        if let Some(c) = csrf {
            h.push(("X-Kaged-CSRF", c));
        }
        let r = d.request("POST", "/api/v1/auth/launch-token", &h, Some("{}"));
        let e = r.error().error;
        assert_eq!((r.status, e.code), (403, ErrorCode::Forbidden), "{csrf:?}");
        assert!(e.message.contains("CSRF"), "{}", e.message);
    }
}

#[test]
fn a_cookie_from_another_instance_is_refused() {
    let a = daemon().start();
    let b = daemon().start();
    let sa = a.login();
    let value = sa.cookie.split_once('=').unwrap().1;
    let renamed = format!("kaged_session_{}={value}", b.addr.port());
    assert_eq!(b.get("/api/v1/me", &[("Cookie", &sa.cookie)]).status, 401);
    assert_eq!(b.get("/api/v1/me", &[("Cookie", &renamed)]).status, 401);
}

#[test]
fn restart_rotates_nonce_and_invalidates_cookies() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = daemon()
        .arg("--bind")
        .arg(&format!("127.0.0.1:{port}"))
        .start();
    let s = d.login();
    let nonce1 = std::fs::read_to_string(d.runtime_dir().join("auth-cookie")).unwrap();
    let d = d.restart();
    assert_eq!(
        d.addr.port(),
        port,
        "same port, so the cookie name is the same"
    );
    assert_eq!(d.get("/api/v1/me", &s.auth()).status, 401);
    let nonce2 = std::fs::read_to_string(d.runtime_dir().join("auth-cookie")).unwrap();
    assert_ne!(nonce1, nonce2);
    assert_eq!(d.get("/api/v1/me", &d.login().auth()).status, 200);
}

#[test]
fn nonce_files_that_are_symlinks_or_readable_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("nonce");
    std::fs::write(&real, NONCE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = format!(
        "[auth]\nmode = \"sidecar\"\nsidecar_nonce_file = \"{}\"\n",
        real.display()
    );
    let (st, err) = daemon().config(&cfg, 0o600).start_fails();
    assert!(!st.success());
    assert!(err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let cfg = format!(
        "[auth]\nmode = \"sidecar\"\nsidecar_nonce_file = \"{}\"\n",
        link.display()
    );
    let (st, err) = daemon().config(&cfg, 0o600).start_fails();
    assert!(!st.success());
    assert!(err.contains("symlink"), "{err}");

    // A short nonce is refused too, without printing it.
    let (st, err) = daemon()
        .arg("--auth-mode")
        .arg("sidecar")
        .env("KAGED_AUTH_SIDECAR_NONCE", "short-secret")
        .start_fails();
    assert!(!st.success());
    assert!(
        err.contains("at least 32") && !err.contains("short-secret"),
        "{err}"
    );

    // The happy path: a 0600 file works.
    let cfg = format!(
        "[auth]\nmode = \"sidecar\"\nsidecar_nonce_file = \"{}\"\n",
        real.display()
    );
    let d = daemon().config(&cfg, 0o600).start();
    let r = d.get(
        "/api/v1/me",
        &[("X-Kaged-Auth-Nonce", NONCE), ("X-Kaged-User-Id", "ann")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn no_secret_appears_in_logs_errors_or_audit() {
    let d = daemon().start();
    let s = d.login();
    let nonce = std::fs::read_to_string(d.runtime_dir().join("auth-cookie"))
        .unwrap()
        .trim()
        .to_owned();
    let token_path = d.printed_launch_path();
    let token = token_path.split("token=").nth(1).unwrap().to_owned();
    let cookie_value = s.cookie.split_once('=').unwrap().1.to_owned();
    let mut bodies = Vec::new();
    // A run of bad requests that carry (pieces of) secrets.
    for h in [
        vec![("Cookie", format!("{}x", s.cookie))],
        vec![("Authorization", format!("Bearer {nonce}x"))],
        vec![
            ("Cookie", s.cookie.clone()),
            ("Origin", d.origin()),
            ("X-Kaged-CSRF", format!("{}x", s.csrf)),
        ],
    ] {
        let hh: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        bodies.push(
            d.request(
                "POST",
                &format!("/api/v1/auth/launch-token?csrf={}", s.csrf),
                &hh,
                Some("{}"),
            )
            .body,
        );
        bodies.push(d.get(&format!("/launch?token={token}"), &hh).body);
    }
    let out = d.cli(&["auth", "open", "--no-browser"]);
    let fresh = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fresh_token = fresh.split("token=").nth(1).unwrap().to_owned();
    let audit = d.get("/api/v1/audit?limit=1000", &s.auth()).body;
    let logs = d.stderr();
    let start_block_end = logs.find("ready on").unwrap();
    let after_start = &logs[start_block_end..];
    for secret in [&nonce, &cookie_value, &s.csrf, &fresh_token] {
        assert!(!after_start.contains(secret.as_str()), "secret in logs");
        assert!(!audit.contains(secret.as_str()), "secret in audit");
        for b in &bodies {
            assert!(!b.contains(secret.as_str()), "secret in an error body: {b}");
        }
    }
    // The printed one-time token is the only secret-ish thing on stderr, and it is spent.
    assert!(!logs.contains(&nonce));
    assert!(!logs.contains(&cookie_value));
}

#[test]
fn non_loopback_bind_needs_a_sidecar_nonce_or_the_loud_override() {
    let (st, err) = daemon().arg("--bind").arg("0.0.0.0:0").start_fails();
    assert!(!st.success());
    assert!(
        err.contains("refusing to bind non-loopback") && err.contains("KAGED_INSECURE_BIND"),
        "{err}"
    );
    let d = daemon()
        .arg("--bind")
        .arg("0.0.0.0:0")
        .env("KAGED_INSECURE_BIND", "1")
        .start();
    let e = d.stderr();
    assert!(e.contains("KAGED_INSECURE_BIND=1"), "{e}");
    assert!(
        e.contains("EVERY network interface"),
        "0.0.0.0 warning missing: {e}"
    );
    let s = d.login();
    let r = d.get("/api/v1/audit?type=auth.insecure_bind", &s.auth());
    assert_eq!(r.json_as::<AuditPage>().events.len(), 1, "{}", r.body);
    // A sidecar nonce makes a non-loopback bind acceptable.
    let d = daemon()
        .arg("--bind")
        .arg("0.0.0.0:0")
        .arg("--auth-mode")
        .arg("sidecar")
        .env("KAGED_AUTH_SIDECAR_NONCE", NONCE)
        .start();
    assert!(d.addr.ip().is_unspecified());
}

#[test]
fn real_nginx_passthrough_sidecar_in_front_of_kaged() {
    let d = sidecar();
    let nginx_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{nginx_port}");
    drop(d);
    let d = daemon()
        .arg("--auth-mode")
        .arg("sidecar")
        .env("KAGED_AUTH_SIDECAR_NONCE", NONCE)
        .env("KAGED_ALLOWED_HOSTS", &listen)
        .start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/deployment/passthrough-sidecar/run.sh"
    );
    let mut nginx = Command::new("bash")
        .arg(script)
        .env("LISTEN", &listen)
        .env("KAGED_UPSTREAM", d.addr.to_string())
        .env("KAGED_NONCE", NONCE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx (apt-get install nginx-light)");
    let proxy: std::net::SocketAddr = listen.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(proxy).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let via = |path: &str, extra: &[(&str, &str)]| -> Response {
        let mut h = vec![("Host", listen.as_str())];
        h.extend_from_slice(extra);
        raw(proxy, "GET", path, &h, None)
    };
    let me = via("/api/v1/me", &[]);
    assert_eq!(me.status, 200, "{}", me.body);
    let me: Me = me.json_as();
    assert_eq!(me.identity.user_id, "dev");
    // Client-sent identity headers are stripped/replaced by the sidecar.
    let spoof = via(
        "/api/v1/me",
        &[
            ("X-Kaged-User-Id", "mallory"),
            ("X-Kaged-User-Groups", "admin"),
            ("X-Kaged-Auth-Nonce", "forged"),
        ],
    );
    assert_eq!(spoof.status, 200, "{}", spoof.body);
    let spoofed = spoof.json_as::<Me>().identity;
    assert_eq!(spoofed.user_id, "dev");
    assert_eq!(spoofed.groups, Vec::<String>::new());
    // A direct hit on kaged without the nonce is 401.
    assert_eq!(
        d.get("/api/v1/me", &[("X-Kaged-User-Id", "dev")]).status,
        401
    );
    // WebSocket upgrades cross the sidecar with the injected identity.
    let csrf = me.csrf_token;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{listen}/api/v1/events?csrf={csrf}")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Origin", format!("http://{listen}").parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws through nginx");
        assert_eq!(resp.status(), 101);
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            "{\"type\":\"ping\"}".into(),
        ))
        .await
        .unwrap();
        assert_eq!(
            crate::fixture::next_event(&mut ws, Duration::from_secs(10)).await,
            DaemonEvent::Pong
        );
    });
    let _ = nix_kill(nginx.id());
    let _ = nginx.wait();
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map(|_| ())
}

#[test]
fn only_the_daemon_uid_can_read_the_sidecar_nonce() {
    let d = sidecar();
    let own = d.cli(&["auth", "nonce"]);
    assert_eq!(String::from_utf8_lossy(&own.stdout).trim(), NONCE);
    let file = d.runtime_dir().join("sidecar-nonce");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let other = crate::fixture::as_nobody()
        .args(["auth", "nonce"])
        .env_clear()
        .env("HOME", d.home())
        .env("XDG_RUNTIME_DIR", d.dir.path().join("rt"))
        .env("KAGED_MODE", "user")
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(!String::from_utf8_lossy(&other.stdout).contains(NONCE));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("its user"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

#[test]
fn doctor_checks_the_machine() {
    let d = daemon().start();
    let out = d.cli(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for check in [
        "bubblewrap",
        "user namespaces",
        "runtime dir",
        "linger",
        "bind",
        "cgroup limits",
    ] {
        assert!(
            text.contains(&format!("] {check}:")),
            "{check} missing:\n{text}"
        );
    }
    assert!(text.contains("[ok  ] bubblewrap"), "{text}");
    assert!(out.status.success(), "{text}");
}

#[test]
fn every_authenticated_request_is_audited_with_its_user_id() {
    let mut d = daemon().start();
    let s = d.login();
    for _ in 0..5 {
        assert_eq!(d.get_as(&s, "/api/v1/status").status, 200);
    }
    let r = d.post(&s, "/api/v1/auth/launch-token", &serde_json::json!({}));
    assert_eq!(r.status, 200);
    // Reads are counted and written once a second (polled, so a busy machine that runs the
    // flush late does not fail the test); writes get their own row.
    let me = d.get_as(&s, "/api/v1/me").json_as::<Me>().identity.user_id;
    let status_reads = eventually(Duration::from_secs(15), || {
        let rows: AuditPage = d
            .get_as(&s, "/api/v1/audit?type=http.reads&limit=100")
            .json_as();
        let n: u64 = rows
            .events
            .iter()
            .filter(|e| e.data["route"] == "/api/v1/status")
            .map(|e| {
                assert_eq!(e.actor.as_ref(), Some(&me));
                e.data["count"].as_u64().unwrap()
            })
            .sum();
        if n >= 5 {
            Ok(n)
        } else {
            Err(format!("{n} of 5 status reads counted"))
        }
    });
    assert_eq!(status_reads, 5);
    let writes: AuditPage = d.get_as(&s, "/api/v1/audit?type=http.request").json_as();
    let w = &writes.events[0].data;
    assert_eq!(w["method"], "POST");
    assert_eq!(w["path"], "/api/v1/auth/launch-token");
    assert_eq!(w["status"], 200);
    // Counts not yet flushed are written at shutdown.
    d.get_as(&s, "/api/v1/projects");
    let db = d.home().join(".local/share/kaged/kaged.db");
    d.terminate();
    let conn = rusqlite::Connection::open(db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_events WHERE type = 'http.reads' AND data LIKE '%/api/v1/projects%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}
