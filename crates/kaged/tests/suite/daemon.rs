//! The daemon in both deployment modes of ADR-0010 (design §3): config precedence and
//! refusals, health and the error envelope, lifecycle, the sandbox self-test, the embedded UI.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use kaged_api::{
    AuditPage, AuthMode, CgroupSupport, ErrorBody, ErrorCode, ErrorEnvelope, Health, Mode, Source,
    Status, VersionInfo, Warning,
};
use pretty_assertions::assert_eq;

use crate::fixture::{RunningStatus, SYSTEM_PORT, cli_json, daemon};

#[test]
fn per_user_mode_as_unprivileged_user_uses_xdg_paths_and_a_random_port() {
    let d = daemon().run_as_nobody().with_existing_data_dir().start();
    assert_ne!(d.addr.port(), 0);
    assert!(d.addr.ip().is_loopback());
    let home = d.home();
    let state = home.join(".local/share/kaged");
    assert!(
        d.stderr()
            .contains(&format!("mode=user (reason: {} exists)", state.display())),
        "{}",
        d.stderr()
    );
    let s = d.login();
    let st: Status = d.get("/api/v1/status", &s.auth()).json_as();
    assert_eq!(st.mode, Mode::User);
    assert_eq!(st.auth_mode, AuthMode::Loopback);
    assert_eq!(st.paths.state, state);
    assert_eq!(st.paths.runtime, d.runtime_dir());
    assert_eq!(st.paths.database, state.join("kaged.db"));
    assert_eq!(st.pid, d.pid());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&d.runtime_dir()), 0o700);
    assert_eq!(mode(&d.runtime_dir().join("auth-cookie")), 0o600);
    assert!(state.join("kaged.db").exists());

    // `kaged status` talks to it, as the same user, and shows the mode, reason and paths.
    let out = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("kaged is running"), "{text}");
    assert!(
        text.contains(&format!("reason: {} exists", state.display())),
        "{text}"
    );
    assert!(text.contains(&format!("http://{}", d.addr)), "{text}");
    // Parsing into `Status` also proves `uptime_secs` is an unsigned integer.
    let json: RunningStatus = cli_json(&d.cli(&["status", "--json"]));
    assert!(json.running);
    assert_eq!(json.status.bind, d.addr.to_string());
}

#[test]
fn system_mode_in_a_private_mount_namespace_uses_system_paths_and_7777() {
    let _g = SYSTEM_PORT.lock().unwrap_or_else(|p| p.into_inner());
    let d = daemon()
        .system_namespace()
        .env(
            "KAGED_AUTH_SIDECAR_NONCE",
            "0123456789abcdef0123456789abcdef-system",
        )
        .start();
    assert_eq!(d.addr.to_string(), "127.0.0.1:7777");
    assert!(
        d.stderr()
            .contains("mode=system (reason: running as UID 0)"),
        "{}",
        d.stderr()
    );
    let auth = [
        (
            "X-Kaged-Auth-Nonce",
            "0123456789abcdef0123456789abcdef-system",
        ),
        ("X-Kaged-User-Id", "ops@example.com"),
    ];
    let st: Status = d.get("/api/v1/status", &auth).json_as();
    assert_eq!(st.mode, Mode::System);
    assert_eq!(st.auth_mode, AuthMode::Sidecar);
    assert_eq!(st.paths.state, PathBuf::from("/var/lib/kaged"));
    assert_eq!(st.paths.runtime, PathBuf::from("/run/kaged"));
    assert_eq!(st.paths.config, PathBuf::from("/etc/kaged/config.toml"));
    assert_eq!(st.paths.database, PathBuf::from("/var/lib/kaged/kaged.db"));
    let json: RunningStatus = cli_json(&d.cli(&["status", "--json"]));
    assert_eq!(json.status.paths.state, PathBuf::from("/var/lib/kaged"));
    let nonce = d.cli(&["auth", "nonce"]);
    assert_eq!(
        String::from_utf8_lossy(&nonce.stdout).trim(),
        "0123456789abcdef0123456789abcdef-system"
    );
    // Nothing leaked onto the real machine.
    assert!(!std::path::Path::new("/var/lib/kaged/kaged.db").exists());
}

#[test]
fn health_ready_version_and_the_error_envelope() {
    let d = daemon().start();
    let h = d.get("/api/v1/healthz", &[]);
    assert_eq!(
        (h.status, h.json_as::<Health>()),
        (
            200,
            Health {
                status: "ok".into()
            }
        )
    );
    assert_eq!(
        d.get("/api/v1/readyz", &[]).json_as::<Health>().status,
        "ready"
    );
    assert_eq!(
        d.get("/api/v1/version", &[])
            .json_as::<VersionInfo>()
            .version,
        env!("CARGO_PKG_VERSION")
    );
    let s = d.login();
    let missing = d.get("/api/v1/nope", &s.auth());
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.error(),
        ErrorEnvelope {
            error: ErrorBody {
                code: ErrorCode::NotFound,
                message: "no route with id \"/api/v1/nope\"".into(),
                details: None,
            }
        }
    );
    let bad = d.get("/api/v1/audit?limit=0", &s.auth());
    assert_eq!(
        (bad.status, bad.error_code()),
        (400, ErrorCode::ValidationFailed)
    );
    let bad = d.get("/api/v1/audit?bogus=1", &s.auth());
    assert_eq!((bad.status, bad.error_code()), (400, ErrorCode::BadRequest));
}

#[test]
fn config_precedence_file_then_env_then_flag() {
    let port = |d: &crate::fixture::TestDaemon| d.addr.port();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (a, b, c) = (free(), free(), free());
    let cfg = format!("bind = \"127.0.0.1:{a}\"\n[sessions]\nmax_per_project = 3\n");
    let d = daemon()
        .env("KAGED_MODE", "user")
        .config(&cfg, 0o644)
        .start();
    assert_eq!(port(&d), a);
    let s = d.login();
    let r = d.get("/api/v1/status", &s.auth());
    // The source's wire shape (`{"kind": …, "name": …}`) is what the UI shows; read it raw.
    assert_eq!(r.json()["settings"]["bind"]["source"]["kind"], "file");
    let st: Status = r.json_as();
    assert!(
        matches!(st.settings.bind.source, Source::File(_)),
        "{:?}",
        st.settings.bind.source
    );
    assert_eq!(st.settings.sessions.max_per_project.value, 3);
    drop(d);
    let d = daemon()
        .config(&cfg, 0o644)
        .env("KAGED_BIND", &format!("127.0.0.1:{b}"))
        .start();
    assert_eq!(port(&d), b);
    drop(d);
    let d = daemon()
        .config(&cfg, 0o644)
        .env("KAGED_BIND", &format!("127.0.0.1:{b}"))
        .arg("--bind")
        .arg(&format!("127.0.0.1:{c}"))
        .start();
    assert_eq!(port(&d), c);
    let s = d.login();
    let r = d.get("/api/v1/status", &s.auth());
    assert_eq!(
        r.json()["settings"]["bind"]["source"],
        serde_json::json!({"kind": "flag", "name": "--bind"})
    );
    assert_eq!(
        r.json_as::<Status>().settings.bind.source,
        Source::Flag("--bind".into())
    );
}

#[test]
fn unknown_config_key_names_the_key_and_the_file() {
    let (status, err) = daemon()
        .config("[auth]\nallowed_hostz = []\n", 0o600)
        .start_fails();
    assert!(!status.success());
    assert!(err.contains("allowed_hostz"), "{err}");
    assert!(err.contains("config.toml"), "{err}");
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let (status, err) = daemon()
        .config("bind = \"127.0.0.1:0\"\n[auth\n", 0o600)
        .start_fails();
    assert!(!status.success());
    assert!(err.contains("line 2") && err.contains("column"), "{err}");
}

/// A TOML error quotes the offending line by default; a line holding a secret must not be.
#[test]
fn a_config_error_on_a_secret_line_names_the_place_but_never_the_value() {
    let secret = "0123456789abcdef0123456789abcdef";
    for toml in [
        format!("[auth]\nsidecar_nonce = \"{secret}\" trailing\n"),
        format!("[auth]\nsidecar_nonce = \"{secret}\n"),
        format!("[auth]\nsidecar_nonce = {secret}\n"),
    ] {
        let (status, err) = daemon().config(&toml, 0o600).start_fails();
        assert!(!status.success());
        assert!(
            err.contains("config.toml") && err.contains("line 2"),
            "{err}"
        );
        assert!(!err.contains(secret), "secret leaked: {err}");
        assert!(
            !err.contains("01234567"),
            "part of the secret leaked: {err}"
        );
    }
}

#[test]
fn readable_config_with_a_secret_is_refused_with_the_fix() {
    let (status, err) = daemon()
        .config(
            "[auth]\nsidecar_nonce = \"0123456789abcdef0123456789abcdef\"\n",
            0o644,
        )
        .start_fails();
    assert!(!status.success());
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !err.contains("0123456789abcdef0123456789abcdef"),
        "secret leaked: {err}"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (status, err) = daemon().arg("--bind").arg(&addr).start_fails();
    assert!(!status.success());
    assert!(err.contains(&addr) && err.contains("--bind"), "{err}");
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let d = daemon().start();
    let out = d.cli(&["start"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("another kaged (pid {})", d.pid())),
        "{err}"
    );
    // The first one is unharmed.
    assert_eq!(d.get("/api/v1/readyz", &[]).status, 200);
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_runtime_files() {
    let mut d = daemon().start();
    let rt = d.runtime_dir();
    assert!(rt.join("auth-cookie").exists());
    assert!(rt.join("endpoint.json").exists());
    let status = d.terminate();
    assert!(status.success(), "{status}\n{}", d.stderr());
    let left: Vec<_> = std::fs::read_dir(&rt).unwrap().collect();
    assert!(left.is_empty(), "runtime files left: {left:?}");
    // The audit log was flushed: started and stopped are both on disk.
    let db = d.home().join(".local/share/kaged/kaged.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let types: Vec<String> = conn
        .prepare("SELECT type FROM audit_events WHERE type LIKE 'daemon.%' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(types, vec!["daemon.started", "daemon.stopped"]);
    // A stopped daemon is reported as not running, with the paths it would use.
    let out = d.cli(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kaged is not running"));
}

#[test]
fn systemd_readiness_is_notified() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let d = daemon()
        .env("NOTIFY_SOCKET", sock_path.to_str().unwrap())
        .start();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got
        .iter()
        .any(|m: &String| m.lines().any(|l| l == "READY=1"))
    {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; got {got:?}"));
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got.len(), 1, "only the daemon notifies, once: {got:?}");
    drop(d);
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/deployment/verify-units.sh"
    );
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is missing; .ci/run installs systemd");
    }
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_bwrap_the_daemon_refuses_to_start_unless_no_sandbox() {
    // A PATH with no bwrap on it.
    let empty = tempfile::tempdir().unwrap();
    let (st, err) = daemon()
        .env("PATH", empty.path().to_str().unwrap())
        .start_fails();
    assert!(!st.success());
    assert!(
        err.contains("bwrap") && err.contains("--no-sandbox"),
        "{err}"
    );

    let d = daemon()
        .env("PATH", empty.path().to_str().unwrap())
        .arg("--no-sandbox")
        .start();
    let e = d.stderr();
    assert!(
        e.contains("--no-sandbox") && e.contains("WITHOUT bubblewrap cages"),
        "{e}"
    );
    // Loud on every response, and independent of auth: this daemon is still loopback-authed.
    let r = d.get("/api/v1/healthz", &[]);
    assert_eq!(r.header_all("x-kaged-warning"), vec!["no-sandbox"]);
    assert_eq!(d.get("/api/v1/me", &[]).status, 401);
    let s = d.login();
    let st: Status = d.get("/api/v1/status", &s.auth()).json_as();
    assert!(!st.sandbox.enabled);
    assert_eq!(st.warnings, vec![Warning::NoSandbox]);
    let ev: AuditPage = d
        .get("/api/v1/audit?type=sandbox.disabled", &s.auth())
        .json_as();
    assert_eq!(ev.events.len(), 1);
}

#[test]
fn status_reports_the_sandbox_self_test_and_cgroup_support() {
    let d = daemon().start();
    let s = d.login();
    let st: Status = d.get("/api/v1/status", &s.auth()).json_as();
    assert!(st.sandbox.enabled);
    let bwrap = st.sandbox.bwrap.as_ref().expect("bwrap info when enabled");
    assert!(
        bwrap.path.to_string_lossy().ends_with("/bwrap"),
        "{bwrap:?}"
    );
    assert!(!bwrap.version.is_empty(), "{bwrap:?}");
    // Parsing proves the shape: `delegated`, `systemd_scope`, or `unavailable` with a reason.
    let cg = &st.sandbox.cgroups;
    // Where cgroups are missing, `kaged status` says so.
    let text = String::from_utf8_lossy(&d.cli(&["status"]).stdout).into_owned();
    if let CgroupSupport::Unavailable { .. } = cg {
        assert!(text.contains("cgroups:   not enforced"), "{text}");
    }
}

#[test]
fn the_web_ui_is_embedded_and_served_with_a_strict_csp() {
    let d = daemon().start();
    let s = d.login();
    let page = d.get_as(&s, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // Every asset the page names is served from the binary.
    let assets: Vec<&str> = page
        .body
        .split('"')
        .filter(|p| p.starts_with("/assets/"))
        .collect();
    assert!(!assets.is_empty(), "{}", page.body);
    for a in assets {
        let r = d.get_as(&s, a);
        assert_eq!(r.status, 200, "{a}");
        assert!(!r.body.is_empty());
    }
    assert_eq!(d.get_as(&s, "/assets/../../etc/passwd").status, 404);
}
