use super::*;
use pretty_assertions::assert_eq;

fn user_probe(home: &Path) -> Probe {
    Probe {
        uid: 1000,
        username: Some("alice".into()),
        home: Some(home.to_owned()),
        ..Probe::default()
    }
}

#[test]
fn mode_flag_beats_everything() {
    let probe = Probe {
        mode_flag: Some("user".into()),
        mode_env: Some("system".into()),
        uid: 0,
        home: Some("/root".into()),
        ..Probe::default()
    };
    let layout = Layout::resolve(&probe).unwrap();
    assert_eq!((layout.mode, layout.reason), (Mode::User, ModeReason::Flag));
}

#[test]
fn kaged_mode_env_beats_uid() {
    let probe = Probe {
        mode_env: Some("user".into()),
        uid: 0,
        home: Some("/root".into()),
        ..Probe::default()
    };
    let layout = Layout::resolve(&probe).unwrap();
    assert_eq!((layout.mode, layout.reason), (Mode::User, ModeReason::Env));
    assert_eq!(layout.state_dir, PathBuf::from("/root/.local/share/kaged"));
}

#[test]
fn bad_mode_is_named() {
    let probe = Probe {
        mode_flag: Some("cluster".into()),
        ..Probe::default()
    };
    let err = Layout::resolve(&probe).unwrap_err().to_string();
    assert!(err.contains("\"cluster\""), "{err}");
}

#[test]
fn root_is_system_with_system_paths() {
    let probe = Probe {
        uid: 0,
        username: Some("root".into()),
        home: Some("/root".into()),
        ..Probe::default()
    };
    let layout = Layout::resolve(&probe).unwrap();
    assert_eq!(
        layout,
        Layout {
            mode: Mode::System,
            reason: ModeReason::Root,
            kaged_home: false,
            state_dir: "/var/lib/kaged".into(),
            config_file: "/etc/kaged/config.toml".into(),
            local_file: "/etc/kaged/local.toml".into(),
            runtime_dir: "/run/kaged".into(),
            runtime_note: None,
            database: "/var/lib/kaged/kaged.db".into(),
            lock_file: "/var/lib/kaged/kaged.lock".into(),
            sessions_dir: "/var/lib/kaged/sessions".into(),
        }
    );
    assert_eq!(
        crate::default_bind(layout.mode).to_string(),
        "127.0.0.1:7777"
    );
}

#[test]
fn kaged_user_is_system() {
    let probe = Probe {
        uid: 998,
        username: Some("kaged".into()),
        home: Some("/var/lib/kaged".into()),
        ..Probe::default()
    };
    let layout = Layout::resolve(&probe).unwrap();
    assert_eq!(
        (layout.mode, layout.reason),
        (Mode::System, ModeReason::KagedUser)
    );
}

#[test]
fn existing_data_dir_is_user() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".local/share/kaged")).unwrap();
    let layout = Layout::resolve(&user_probe(home.path())).unwrap();
    assert_eq!(
        layout.reason,
        ModeReason::DataDirExists {
            path: home.path().join(".local/share/kaged")
        }
    );
}

#[test]
fn xdg_dirs_are_honoured_and_fallback_is_user() {
    let home = tempfile::tempdir().unwrap();
    let probe = Probe {
        xdg_data_home: Some(home.path().join("data")),
        xdg_config_home: Some(home.path().join("cfg")),
        xdg_runtime_dir: Some(home.path().join("rt")),
        ..user_probe(home.path())
    };
    let layout = Layout::resolve(&probe).unwrap();
    assert_eq!(
        (layout.mode, layout.reason.clone()),
        (Mode::User, ModeReason::Fallback)
    );
    assert_eq!(layout.state_dir, home.path().join("data/kaged"));
    assert_eq!(
        layout.config_file,
        home.path().join("cfg/kaged/config.toml")
    );
    assert_eq!(layout.runtime_dir, home.path().join("rt/kaged"));
    assert_eq!(
        layout.auth_cookie_file(),
        home.path().join("rt/kaged/auth-cookie")
    );
    assert_eq!(crate::default_bind(layout.mode).to_string(), "127.0.0.1:0");
}

#[test]
fn relative_xdg_values_are_ignored_per_spec() {
    let home = tempfile::tempdir().unwrap();
    let probe = Probe {
        xdg_data_home: Some("relative/data".into()),
        ..user_probe(home.path())
    };
    let layout = Layout::resolve(&probe).unwrap();
    assert_eq!(layout.state_dir, home.path().join(".local/share/kaged"));
}

#[test]
fn kaged_home_moves_state_and_runtime_but_not_mode() {
    let probe = Probe {
        kaged_home: Some("/srv/kaged".into()),
        uid: 0,
        home: Some("/root".into()),
        ..Probe::default()
    };
    let layout = Layout::resolve(&probe).unwrap();
    assert_eq!(
        (layout.mode, layout.reason.clone()),
        (Mode::System, ModeReason::Root)
    );
    assert_eq!(layout.state_dir, PathBuf::from("/srv/kaged"));
    assert_eq!(layout.database, PathBuf::from("/srv/kaged/kaged.db"));
    assert_eq!(layout.runtime_dir, PathBuf::from("/srv/kaged/run"));
    assert_eq!(layout.config_file, PathBuf::from("/etc/kaged/config.toml"));
}

#[test]
fn missing_runtime_dir_falls_back_to_state_and_says_so() {
    let home = tempfile::tempdir().unwrap();
    let layout = Layout::resolve(&user_probe(home.path())).unwrap();
    assert_eq!(
        layout.runtime_dir,
        home.path().join(".local/share/kaged/run")
    );
    assert!(layout.runtime_note.unwrap().contains("XDG_RUNTIME_DIR"));
}

#[test]
fn no_home_at_all_is_a_clear_error() {
    let probe = Probe {
        uid: 1000,
        ..Probe::default()
    };
    let err = Layout::resolve(&probe).unwrap_err().to_string();
    assert!(err.contains("KAGED_HOME"), "{err}");
}

#[test]
fn private_dir_is_created_0700_and_loose_modes_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    ensure_private_dir(&dir).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    ensure_private_dir(&dir).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn private_dir_refuses_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("real")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("link")).unwrap();
    let err = ensure_private_dir(&tmp.path().join("link")).unwrap_err();
    assert!(matches!(err, DirError::Symlink { .. }), "{err}");
}
