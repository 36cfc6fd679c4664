//! `local.toml`: aliases, providers by env-var name, the project registry; strict keys and
//! no way to print a key.

use std::path::Path;

use pretty_assertions::assert_eq;

use kaged_dsl::{LocalConfig, LocalConfigError, UnknownAlias, parse_project_str};

const GOOD: &str = r#"
[models]
fast = "anthropic:claude-haiku"
smart = "anthropic:claude-opus"

[providers.anthropic]
api_key_env = "ANTHROPIC_API_KEY"

[[projects]]
path = "/srv/code/agent-cli"
"#;

#[test]
fn a_full_local_toml_parses() {
    let cfg =
        LocalConfig::from_toml_str(GOOD, Path::new("/home/u/.config/kaged/local.toml")).unwrap();
    assert_eq!(cfg.models["fast"], "anthropic:claude-haiku");
    assert_eq!(cfg.providers["anthropic"].api_key_env, "ANTHROPIC_API_KEY");
    assert_eq!(cfg.projects[0].path, Path::new("/srv/code/agent-cli"));
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_file() {
    let err = LocalConfig::from_toml_str(
        "[providers.anthropic]\napi_key_env = \"K\"\nregion = \"eu\"\n",
        Path::new("/etc/kaged/local.toml"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LocalConfigError::Parse { .. }), "{msg}");
    assert!(msg.starts_with("/etc/kaged/local.toml: 3:1: "), "{msg}");
    assert!(msg.contains("`region`"), "{msg}");
}

#[test]
fn a_pasted_key_is_refused_without_being_echoed() {
    let key = "sk-ant-api03-AAAABBBBCCCCDDDDEEEEFFFF";
    for text in [
        format!("[providers.anthropic]\napi_key_env = \"{key}\"\n"),
        format!("[providers.anthropic]\napi_key = \"{key}\"\n"),
        format!("projects = \"{key}\"\n"),
    ] {
        let err = LocalConfig::from_toml_str(&text, Path::new("local.toml")).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("AAAABBBB"), "{shown}");
    }
}

#[test]
fn relative_registry_paths_are_refused() {
    let err = LocalConfig::from_toml_str("[[projects]]\npath = \"code/x\"\n", Path::new("l.toml"))
        .unwrap_err();
    assert!(err.to_string().contains("code/x"), "{err}");
}

#[test]
fn a_missing_file_is_an_empty_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LocalConfig::load(&dir.path().join("local.toml")).unwrap();
    assert!(cfg.models.is_empty() && cfg.providers.is_empty() && cfg.projects.is_empty());
}

#[test]
fn api_keys_are_looked_up_by_name_and_never_printed() {
    let cfg = LocalConfig::from_toml_str(GOOD, Path::new("local.toml")).unwrap();
    let provider = &cfg.providers["anthropic"];
    let key = provider
        .api_key(|name| (name == "ANTHROPIC_API_KEY").then(|| "sk-secret-value".to_string()))
        .unwrap();
    assert_eq!(key.expose(), "sk-secret-value");
    assert_eq!(format!("{key:?} {key}"), "ApiKey(<redacted>) <redacted>");
    assert!(!format!("{cfg:?}").contains("sk-secret"));
    assert!(provider.api_key(|_| Some(String::new())).is_none());
}

#[test]
fn project_aliases_resolve_or_are_all_reported() {
    let cfg = LocalConfig::from_toml_str(GOOD, Path::new("/etc/kaged/local.toml")).unwrap();
    let project = parse_project_str(
        Path::new("p.yaml"),
        "version: 1\nproject: p1\nprimary:\n  model: smart\n  command: [x]\n  agents:\n    a: {model: fast, command: [x]}\n    b: {model: tiny, command: [x]}\n    c: {model: huge, command: [x]}\n",
    )
    .unwrap();
    let err = cfg.resolve_models(&project).unwrap_err();
    assert_eq!(
        err.missing,
        vec![
            UnknownAlias {
                agent: "primary.b".into(),
                alias: "tiny".into()
            },
            UnknownAlias {
                agent: "primary.c".into(),
                alias: "huge".into()
            },
        ]
    );
    assert!(
        err.to_string()
            .contains("/etc/kaged/local.toml does not define"),
        "{err}"
    );

    let ok = parse_project_str(
        Path::new("p.yaml"),
        "version: 1\nproject: p1\nprimary: {model: smart, command: [x]}\n",
    )
    .unwrap();
    let resolved = cfg.resolve_models(&ok).unwrap();
    assert_eq!(
        resolved.into_iter().collect::<Vec<_>>(),
        vec![("smart".to_string(), "anthropic:claude-opus".to_string())]
    );
}

#[test]
fn worktree_settings_default_and_refuse_what_they_cannot_use() {
    let path = Path::new("/etc/kaged/local.toml");
    let none = LocalConfig::from_toml_str("", path).unwrap();
    assert_eq!(
        (
            none.worktrees.dir.clone(),
            none.worktrees.snapshot_retention(),
            none.worktrees.sweep_idle()
        ),
        (None, Some(30 * 86_400), Some(7 * 86_400))
    );
    let set = LocalConfig::from_toml_str(
        "[worktrees]\ndir = \"/srv/wt\"\nsnapshot_retention = \"forever\"\nsweep_idle = \"12h\"\n",
        path,
    )
    .unwrap();
    assert_eq!(
        (
            set.worktrees.dir.as_deref(),
            set.worktrees.snapshot_retention(),
            set.worktrees.sweep_idle()
        ),
        (Some(Path::new("/srv/wt")), None, Some(12 * 3600))
    );
    let cases = [
        (
            "[worktrees]\ndir = \"wt\"\n",
            "/etc/kaged/local.toml: [worktrees] dir wt is relative; give an absolute directory \
             outside your repositories",
        ),
        (
            "[worktrees]\nsweep_idle = \"0d\"\n",
            "/etc/kaged/local.toml: [worktrees] sweep_idle = \"0d\" is not a duration; write \
             e.g. \"30d\", \"12h\", \"45m\" or seconds, or \"never\"",
        ),
        (
            "[worktrees]\nsnapshot_retention = \"never\"\n",
            "/etc/kaged/local.toml: [worktrees] snapshot_retention = \"never\" is not a \
             duration; write e.g. \"30d\", \"12h\", \"45m\" or seconds, or \"forever\"",
        ),
    ];
    for (text, want) in cases {
        let err = LocalConfig::from_toml_str(text, path).unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
    }
}
