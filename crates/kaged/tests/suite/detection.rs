//! Every rule of the mode-detection order (design §3), observed through `kaged status --json`
//! with no daemon running, so the real binary does the detection.

use std::path::PathBuf;
use std::process::Command;

use kaged_api::{AuthMode, Mode};
use pretty_assertions::assert_eq;

use crate::fixture::{BIN, OfflineStatus, as_nobody, cli_json};

fn status(
    home: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    nobody: bool,
) -> (i32, OfflineStatus) {
    let mut cmd = if nobody {
        as_nobody()
    } else {
        Command::new(BIN)
    };
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).args(["status", "--json"]).output().unwrap();
    (out.status.code().unwrap(), cli_json(&out))
}

fn home() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(d.path(), Some(65534), Some(65534)).unwrap();
    d
}

#[test]
fn not_running_still_prints_the_paths_it_would_use() {
    let h = home();
    let (code, v) = status(h.path(), &[], &[], true);
    assert_eq!(code, 3, "exit 3 means not running");
    assert!(!v.running);
    assert_eq!(v.mode, Mode::User);
    let state = h.path().join(".local/share/kaged");
    assert_eq!(v.paths.state, state);
    assert_eq!(v.paths.database, state.join("kaged.db"));
    assert_eq!(v.paths.config, h.path().join(".config/kaged/config.toml"));
    assert_eq!(v.default_bind, "127.0.0.1:0");
}

#[test]
fn unprivileged_user_without_data_dir_falls_back_to_user() {
    let h = home();
    let (_, v) = status(h.path(), &[], &[], true);
    assert_eq!(v.mode, Mode::User);
    assert!(v.mode_reason.contains("fallback"), "{v:?}");
}

#[test]
fn existing_data_dir_means_user_and_says_so() {
    let h = home();
    std::fs::create_dir_all(h.path().join(".local/share/kaged")).unwrap();
    let (_, v) = status(h.path(), &[], &[], true);
    assert_eq!(v.mode, Mode::User);
    assert_eq!(
        v.mode_reason,
        format!("{} exists", h.path().join(".local/share/kaged").display())
    );
}

#[test]
fn xdg_data_home_is_honoured() {
    let h = home();
    let data = h.path().join("xdg-data");
    std::fs::create_dir_all(data.join("kaged")).unwrap();
    let (_, v) = status(
        h.path(),
        &[("XDG_DATA_HOME", data.to_str().unwrap())],
        &[],
        true,
    );
    assert_eq!(v.paths.state, data.join("kaged"));
    assert_eq!(
        v.mode_reason,
        format!("{} exists", data.join("kaged").display())
    );
}

#[test]
fn uid_0_means_system() {
    let h = home();
    let (_, v) = status(h.path(), &[], &[], false);
    assert_eq!(v.mode, Mode::System);
    assert_eq!(v.mode_reason, "running as UID 0");
    assert_eq!(v.paths.state, PathBuf::from("/var/lib/kaged"));
    assert_eq!(v.paths.runtime, PathBuf::from("/run/kaged"));
    assert_eq!(v.paths.config, PathBuf::from("/etc/kaged/config.toml"));
    assert_eq!(v.default_bind, "127.0.0.1:7777");
    assert_eq!(v.default_auth_mode, AuthMode::Sidecar);
}

#[test]
fn kaged_home_moves_state_but_mode_comes_from_later_rules() {
    let h = home();
    let kh = h.path().join("kh");
    let (_, v) = status(
        h.path(),
        &[("KAGED_HOME", kh.to_str().unwrap())],
        &[],
        false,
    );
    assert_eq!(v.mode, Mode::System);
    assert_eq!(v.paths.state, kh);
    assert_eq!(v.paths.database, kh.join("kaged.db"));
}

#[test]
fn kaged_mode_env_beats_uid() {
    let h = home();
    let (_, v) = status(h.path(), &[("KAGED_MODE", "user")], &[], false);
    assert_eq!(v.mode, Mode::User);
    assert_eq!(v.mode_reason, "KAGED_MODE is set");
}

#[test]
fn mode_flag_beats_env() {
    let h = home();
    let (_, v) = status(
        h.path(),
        &[("KAGED_MODE", "user")],
        &["--mode", "system"],
        true,
    );
    assert_eq!(v.mode, Mode::System);
    assert_eq!(v.mode_reason, "--mode flag");
}

#[test]
fn bad_mode_is_a_clear_error() {
    let out = Command::new(BIN)
        .env_clear()
        .env("HOME", "/tmp")
        .args(["--mode", "cluster", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"cluster\"") && err.contains("user"), "{err}");
}

#[test]
fn help_describes_every_subcommand() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["start", "status", "auth", "doctor", "version"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(cmd))
            .unwrap_or_else(|| panic!("{cmd} missing from --help:\n{help}"));
        assert!(
            line.split_whitespace().count() > 3,
            "{cmd} has no description: {line}"
        );
    }
    let v = Command::new(BIN).arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("kaged {}", env!("CARGO_PKG_VERSION"))
    );
}
