//! ADR-0011: a project file carries nothing operator-local and reaches nothing outside the
//! project. These cover what the single-fault corpus cannot: files on disk and symlinks.

use std::os::unix::fs::symlink;
use std::path::Path;

use pretty_assertions::assert_eq;

use kaged_dsl::{Code, PortablePath, load_project, parse_project_str};

use super::fixture;

const WITH_PROMPT: &str = "\
version: 1
project: links
primary:
  system_prompt: project:/prompts/system.md
  command: [claude]
";

#[test]
fn a_prompt_reached_through_a_symlink_leaving_the_project_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("system.md"), "secret prompt").unwrap();
    let dir = fixture::project(WITH_PROMPT, None, &[]);
    symlink(outside.path(), dir.path().join("prompts")).unwrap();
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(
        fixture::summary(&err),
        vec![(
            "symlink_escape".into(),
            4,
            18,
            "/primary/system_prompt".into()
        )]
    );
    assert!(err.to_string().contains("`project:/prompts`"), "{err}");
}

#[test]
fn a_symlink_that_stays_inside_the_project_is_fine() {
    let dir = fixture::project(WITH_PROMPT, None, &[("docs/prompts/system.md", "hello")]);
    symlink("docs/prompts", dir.path().join("prompts")).unwrap();
    load_project(dir.path()).unwrap();
}

#[test]
fn a_dangling_symlink_pointing_outside_is_refused() {
    let dir = fixture::project(
        "version: 1\nproject: links\nprimary:\n  command: [bash]\n  cage:\n    fs:\n      - {path: \"project:/cache\", access: rw}\n",
        None,
        &[],
    );
    symlink("/nonexistent/kaged-test-cache", dir.path().join("cache")).unwrap();
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(err.codes(), vec![Code::SymlinkEscape]);
}

#[test]
fn a_project_file_that_is_a_symlink_out_of_the_project_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("p.yaml"), "version: 1\nproject: x1\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".kaged")).unwrap();
    symlink(
        outside.path().join("p.yaml"),
        dir.path().join(".kaged/project.yaml"),
    )
    .unwrap();
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(err.codes(), vec![Code::SymlinkEscape]);
}

#[test]
fn a_missing_project_file_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(err.codes(), vec![Code::MissingFile]);
    assert!(err.to_string().contains(".kaged/project.yaml"), "{err}");
}

#[test]
fn dot_dot_inside_the_project_is_normalised_not_refused() {
    let yaml = "version: 1\nproject: dots\nprimary:\n  command: [bash]\n  cage:\n    fs:\n      - {path: \"project:/docs/../src/./lib\", access: ro}\n      - {path: \"config:/tools\", access: ro}\n";
    let p = parse_project_str(Path::new("p.yaml"), yaml).unwrap();
    let kaged_dsl::Cage::Policy(policy) = &p.primary.unwrap().cage else {
        panic!("disabled")
    };
    let paths: Vec<&str> = policy.fs.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, vec!["project:/src/lib", "config:/tools"]);
}

#[test]
fn portable_paths_resolve_per_operator() {
    let p = PortablePath::parse("project:/docs/a.md").unwrap();
    assert_eq!(
        p.resolve(Path::new("/srv/p"), Path::new("/etc/kaged")),
        Path::new("/srv/p/docs/a.md")
    );
    let c = PortablePath::parse("config:/").unwrap();
    assert_eq!(
        c.resolve(Path::new("/srv/p"), Path::new("/etc/kaged")),
        Path::new("/etc/kaged")
    );
}

#[test]
fn the_system_prompt_must_travel_with_the_project() {
    let yaml = "version: 1\nproject: cfg\nprimary:\n  system_prompt: config:/prompts/mine.md\n  command: [claude]\n";
    let err = parse_project_str(Path::new("p.yaml"), yaml).unwrap_err();
    assert_eq!(err.codes(), vec![Code::BadValue]);
}

#[test]
fn every_kind_of_portability_fault_is_reported_in_one_pass() {
    let yaml = "\
version: 1
project: everything
primary:
  model: anthropic:claude-3-opus
  system_prompt: /etc/prompt.md
  command: [claude, ~/bin/helper]
  cage:
    fs:
      - {path: docs, access: ro}
      - {path: \"project:/../..\", access: ro}
tasks:
  deploy:
    command: [deploy]
    env:
      AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE
      NOTE: \"token is Zx8Qm2Lp9Vb4Nc7Rt1Ys6Wd3Kf5Hg0JaUe\"
";
    let err = parse_project_str(Path::new("p.yaml"), yaml).unwrap_err();
    assert_eq!(
        fixture::summary(&err),
        vec![
            ("concrete_model_id".into(), 4, 10, "/primary/model".into()),
            (
                "absolute_path".into(),
                5,
                18,
                "/primary/system_prompt".into()
            ),
            ("absolute_path".into(), 6, 21, "/primary/command/1".into()),
            ("naked_path".into(), 9, 16, "/primary/cage/fs/0/path".into()),
            (
                "path_escape".into(),
                10,
                16,
                "/primary/cage/fs/1/path".into()
            ),
            (
                "credential_like".into(),
                15,
                7,
                "/tasks/deploy/env/AWS_ACCESS_KEY_ID".into()
            ),
            (
                "credential_like".into(),
                16,
                13,
                "/tasks/deploy/env/NOTE".into()
            ),
        ]
    );
}

#[test]
fn credential_diagnostics_never_repeat_the_secret() {
    let secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    let yaml = format!(
        "version: 1\nproject: leak\ntasks:\n  t:\n    command: [gh, --token, {secret}]\n    env:\n      GH_TOKEN: {secret}\n"
    );
    let err = parse_project_str(Path::new("p.yaml"), &yaml).unwrap_err();
    assert_eq!(
        err.codes(),
        vec![Code::CredentialLike, Code::CredentialLike]
    );
    let shown = format!("{err}\n{}", serde_json::to_string(&err).unwrap());
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains("abcdefghij"), "{shown}");
}

#[test]
fn ordinary_text_is_not_mistaken_for_credentials() {
    let yaml = "\
version: 1
project: benign
description: Runs the token-bucket rate limiter benchmarks (see docs/password-policy.md).
tasks:
  bench:
    command: [cargo, bench, --bench, token_bucket, --, --save-baseline, 3f786850e387550fdab836ed7e6dc881de23001b]
    env:
      RUST_LOG: info
      TOKENIZERS_PARALLELISM: \"\"
";
    parse_project_str(Path::new("p.yaml"), yaml).unwrap();
}
