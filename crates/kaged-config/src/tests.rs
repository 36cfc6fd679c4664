use std::os::unix::fs::PermissionsExt;

use kaged_deploy::Probe;
use pretty_assertions::assert_eq;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    layout: Layout,
}

fn fixture(mode: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let probe = Probe {
        mode_flag: Some(mode.into()),
        uid: 1000,
        home: Some(dir.path().to_owned()),
        xdg_config_home: Some(dir.path().join("cfg")),
        kaged_home: Some(dir.path().join("state")),
        ..Probe::default()
    };
    let mut layout = Layout::resolve(&probe).unwrap();
    layout.config_file = dir.path().join("config.toml");
    Fixture { _dir: dir, layout }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn defaults_follow_the_mode() {
    let f = fixture("user");
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(
        s.bind,
        Sourced::new("127.0.0.1:0".parse().unwrap(), Source::Mode)
    );
    assert_eq!(s.auth_mode, Sourced::new(AuthMode::Loopback, Source::Mode));
    assert_eq!(s.config_file, None);

    let f = fixture("system");
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(s.bind.value.to_string(), "127.0.0.1:7777");
    assert_eq!(s.auth_mode.value, AuthMode::Sidecar);
}

#[test]
fn file_then_env_then_flag() {
    let f = fixture("user");
    write(
        &f.layout.config_file,
        "bind = \"127.0.0.1:1111\"\n[auth]\nmode = \"sidecar\"\n",
        0o644,
    );
    let file = Source::File(f.layout.config_file.display().to_string());
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(
        s.bind,
        Sourced::new("127.0.0.1:1111".parse().unwrap(), file.clone())
    );
    assert_eq!(s.auth_mode, Sourced::new(AuthMode::Sidecar, file));

    let env: Env = [
        ("KAGED_BIND", "127.0.0.1:2222"),
        ("KAGED_AUTH_MODE", "loopback"),
    ]
    .into_iter()
    .collect();
    let s = Settings::resolve(&f.layout, &env, &Flags::default()).unwrap();
    assert_eq!(
        s.bind,
        Sourced::new(
            "127.0.0.1:2222".parse().unwrap(),
            Source::Env("KAGED_BIND".into())
        )
    );
    assert_eq!(s.auth_mode.value, AuthMode::Loopback);

    let flags = Flags {
        bind: Some("127.0.0.1:3333".parse().unwrap()),
        insecure: true,
        ..Flags::default()
    };
    let s = Settings::resolve(&f.layout, &env, &flags).unwrap();
    assert_eq!(
        s.bind,
        Sourced::new(
            "127.0.0.1:3333".parse().unwrap(),
            Source::Flag("--bind".into())
        )
    );
    assert_eq!(
        s.auth_mode,
        Sourced::new(AuthMode::Insecure, Source::Flag("--insecure".into()))
    );
}

#[test]
fn insecure_keeps_loopback_bind() {
    let f = fixture("system");
    let flags = Flags {
        insecure: true,
        ..Flags::default()
    };
    let s = Settings::resolve(&f.layout, &Env::default(), &flags).unwrap();
    assert!(s.bind.value.ip().is_loopback());
}

#[test]
fn unknown_key_names_key_and_file() {
    let f = fixture("user");
    write(&f.layout.config_file, "[auth]\nmdoe = \"x\"\n", 0o600);
    let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("mdoe"), "{err}");
    assert!(
        err.contains(&f.layout.config_file.display().to_string()),
        "{err}"
    );
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let f = fixture("user");
    write(
        &f.layout.config_file,
        "bind = \"127.0.0.1:1\"\n[auth\n",
        0o600,
    );
    let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("column"), "{err}");
}

#[test]
fn secret_in_readable_file_is_refused_with_fix() {
    let f = fixture("system");
    write(
        &f.layout.config_file,
        "[auth]\nsidecar_nonce = \"abc\"\n",
        0o644,
    );
    let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !err.contains("abc"),
        "the secret leaked into the error: {err}"
    );
    std::fs::set_permissions(
        &f.layout.config_file,
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(
        s.sidecar_nonce.map(|n| n.value),
        Some(NonceSource::Inline("abc".into()))
    );
}

#[test]
fn group_writable_config_is_refused() {
    let f = fixture("user");
    write(&f.layout.config_file, "", 0o664);
    let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Writable { .. }), "{err}");
}

#[test]
fn explicit_missing_config_is_an_error() {
    let f = fixture("user");
    let flags = Flags {
        config: Some(f.layout.config_file.with_file_name("nope.toml")),
        ..Flags::default()
    };
    let err = Settings::resolve(&f.layout, &Env::default(), &flags).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
}

#[test]
fn contradictions_are_errors() {
    let f = fixture("user");
    let flags = Flags {
        insecure: true,
        auth_mode: Some("sidecar".into()),
        ..Flags::default()
    };
    assert!(matches!(
        Settings::resolve(&f.layout, &Env::default(), &flags),
        Err(ConfigError::Conflict { .. })
    ));
    let env: Env = [("KAGED_INSECURE", "1"), ("KAGED_AUTH_MODE", "loopback")]
        .into_iter()
        .collect();
    assert!(matches!(
        Settings::resolve(&f.layout, &env, &Flags::default()),
        Err(ConfigError::Conflict { .. })
    ));
}

#[test]
fn bad_env_values_are_named() {
    let f = fixture("user");
    for (k, v) in [
        ("KAGED_AUTH_MODE", "oidc"),
        ("KAGED_BIND", "localhost"),
        ("KAGED_INSECURE", "maybe"),
    ] {
        let env: Env = [(k, v)].into_iter().collect();
        let err = Settings::resolve(&f.layout, &env, &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(k) && err.contains(v), "{err}");
    }
}

#[test]
fn env_nonce_wins_and_is_redacted_in_debug() {
    let f = fixture("system");
    let env: Env = [("KAGED_AUTH_SIDECAR_NONCE", "s3cr3t-value")]
        .into_iter()
        .collect();
    let s = Settings::resolve(&f.layout, &env, &Flags::default()).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cr3t-value"), "{dbg}");
    assert_eq!(
        s.sidecar_nonce.unwrap().source,
        Source::Env("KAGED_AUTH_SIDECAR_NONCE".into())
    );
}

#[test]
fn no_sandbox_flag_and_env() {
    let f = fixture("user");
    let env: Env = [("KAGED_NO_SANDBOX", "1")].into_iter().collect();
    let s = Settings::resolve(&f.layout, &env, &Flags::default()).unwrap();
    assert_eq!(
        s.sandbox_enabled,
        Sourced::new(false, Source::Env("KAGED_NO_SANDBOX".into()))
    );
}

#[test]
fn limit_enforcement_is_unset_unless_the_operator_says_and_env_beats_the_file() {
    let f = fixture("system");
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(s.sessions.limits, None);
    assert_eq!(s.report().sessions.limits, None);

    write(
        &f.layout.config_file,
        "[sessions]\nlimits = \"best-effort\"\n",
        0o644,
    );
    let file = Source::File(f.layout.config_file.display().to_string());
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(
        s.sessions.limits,
        Some(Sourced::new(LimitEnforcement::BestEffort, file))
    );
    let env: Env = [("KAGED_SESSIONS_LIMITS", "strict")].into_iter().collect();
    let s = Settings::resolve(&f.layout, &env, &Flags::default()).unwrap();
    let from_env = Sourced::new(
        LimitEnforcement::Strict,
        Source::Env("KAGED_SESSIONS_LIMITS".into()),
    );
    assert_eq!(s.sessions.limits, Some(from_env.clone()));
    assert_eq!(s.report().sessions.limits, Some(from_env));

    let env: Env = [("KAGED_SESSIONS_LIMITS", "lax")].into_iter().collect();
    let err = Settings::resolve(&f.layout, &env, &Flags::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "env KAGED_SESSIONS_LIMITS: invalid value \"lax\"; expected `strict` or `best-effort`"
    );
    write(
        &f.layout.config_file,
        "[sessions]\nlimits = \"off\"\n",
        0o644,
    );
    let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: sessions.limits: invalid value \"off\"; expected `strict` or `best-effort`",
            f.layout.config_file.display()
        )
    );
}

#[test]
fn parse_errors_never_print_the_offending_value() {
    let f = fixture("user");
    let nonce = "s3cr3t-n0nce-s3cr3t-n0nce-s3cr3t-n0nce";
    for text in [
        // A type error quotes the value…
        format!("[auth]\nsidecar_nonce = 5\nsidecar_nonce_file = \"{nonce}\" \"{nonce}\"\n"),
        // …and a syntax error prints the line it is on.
        format!("[auth]\nsidecar_nonce = \"{nonce}\"\nmode = sidecar {nonce}\n"),
        format!("[auth]\nsidecar_nonce = {nonce}\n"),
    ] {
        write(&f.layout.config_file, &text, 0o600);
        let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(!err.contains(nonce), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(
            err.contains(&f.layout.config_file.display().to_string()),
            "{err}"
        );
        assert!(err.contains("line "), "{err}");
    }
}

#[test]
fn server_limits_have_defaults_and_come_from_the_file() {
    let f = fixture("user");
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(
        s.server,
        ServerLimits {
            header_read_timeout: Sourced::new(Duration::from_secs(10), Source::Default),
            max_connections: Sourced::new(4096, Source::Default),
            max_pending_per_peer: Sourced::new(256, Source::Default),
        }
    );

    write(
        &f.layout.config_file,
        "[server]\nheader_read_timeout_secs = 3\nmax_connections = 64\nmax_pending_per_peer = 8\n",
        0o644,
    );
    let file = Source::File(f.layout.config_file.display().to_string());
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(
        s.server,
        ServerLimits {
            header_read_timeout: Sourced::new(Duration::from_secs(3), file.clone()),
            max_connections: Sourced::new(64, file.clone()),
            max_pending_per_peer: Sourced::new(8, file),
        }
    );
}

#[test]
fn server_limits_out_of_range_are_named() {
    let f = fixture("user");
    for (text, key) in [
        (
            "[server]\nheader_read_timeout_secs = 0\n",
            "server.header_read_timeout_secs",
        ),
        (
            "[server]\nheader_read_timeout_secs = 301\n",
            "server.header_read_timeout_secs",
        ),
        ("[server]\nmax_connections = 0\n", "server.max_connections"),
        (
            "[server]\nmax_pending_per_peer = 0\n",
            "server.max_pending_per_peer",
        ),
    ] {
        write(&f.layout.config_file, text, 0o644);
        let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn agent_idleness_and_the_push_contact_have_defaults_come_from_the_file_and_are_checked() {
    let f = fixture("user");
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(
        s.sessions.agent_idle,
        Sourced::new(Duration::from_secs(5), Source::Default)
    );
    assert_eq!(
        s.push_contact,
        Sourced::new("mailto:kaged@localhost".to_owned(), Source::Default)
    );
    write(
        &f.layout.config_file,
        "[sessions]\nagent_idle_ms = 1500\n[push]\ncontact = \"https://ops.example.com/kaged\"\n",
        0o644,
    );
    let s = Settings::resolve(&f.layout, &Env::default(), &Flags::default()).unwrap();
    assert_eq!(s.sessions.agent_idle.value, Duration::from_millis(1500));
    assert_eq!(s.push_contact.value, "https://ops.example.com/kaged");
    assert_eq!(s.report().sessions.agent_idle_ms.value, 1500);
    for (text, key) in [
        ("[sessions]\nagent_idle_ms = 10\n", "sessions.agent_idle_ms"),
        ("[push]\ncontact = \"ops@example.com\"\n", "push.contact"),
    ] {
        write(&f.layout.config_file, text, 0o644);
        let err = Settings::resolve(&f.layout, &Env::default(), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}
