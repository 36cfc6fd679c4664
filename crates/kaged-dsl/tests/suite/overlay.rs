//! `project.local.yaml` semantics: objects deep-merge, arrays replace, `null` removes, and
//! `version`/`project` are fixed by `project.yaml`.

use pretty_assertions::assert_eq;

use kaged_dsl::{ByteSize, Cage, Code, LimitEnforcement, Walltime, load_project};

use super::fixture;

const BASE: &str = "\
version: 1
project: overlay
description: shared description
primary:
  model: smart
  command: [claude]
  tools: [shell, edit]
  cage:
    network: none
    limits: {memory: 2G, pids: 256}
tasks:
  test:
    command: [make, test]
";

fn policy(cage: &Cage) -> &kaged_dsl::CagePolicy {
    match cage {
        Cage::Policy(p) => p,
        Cage::Disabled => panic!("cage disabled"),
    }
}

#[test]
fn objects_deep_merge_and_keep_untouched_siblings() {
    let overlay = "primary:\n  cage:\n    limits: {walltime: 30m}\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let p = load_project(dir.path()).unwrap();
    let primary = p.primary.as_ref().unwrap();
    let limits = &policy(&primary.cage).limits;
    assert_eq!(limits.walltime, Some(Walltime(1800)));
    assert_eq!(limits.memory, Some(ByteSize(2 << 30)));
    assert_eq!(limits.pids, Some(256));
    assert_eq!(primary.model.as_deref(), Some("smart"));
    assert!(p.tasks.contains_key("test"));
}

#[test]
fn a_local_overlay_can_let_this_checkout_run_its_limits_best_effort() {
    let overlay = "primary:\n  cage:\n    limits: {enforce: best-effort}\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let p = load_project(dir.path()).unwrap();
    let limits = &policy(&p.primary.as_ref().unwrap().cage).limits;
    assert_eq!(limits.enforce, LimitEnforcement::BestEffort);
    assert_eq!(limits.memory, Some(ByteSize(2 << 30)));
    let base = fixture::project(BASE, None, &[]);
    let p = load_project(base.path()).unwrap();
    let limits = &policy(&p.primary.as_ref().unwrap().cage).limits;
    assert_eq!(limits.enforce, LimitEnforcement::Strict);
}

#[test]
fn arrays_replace_instead_of_appending() {
    let overlay = "primary:\n  tools: [read]\n  command: [claude, --verbose]\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let p = load_project(dir.path()).unwrap();
    let primary = p.primary.unwrap();
    assert_eq!(primary.tools, vec!["read".to_string()]);
    assert_eq!(
        primary.command,
        vec!["claude".to_string(), "--verbose".into()]
    );
}

#[test]
fn null_removes_a_key_at_any_depth() {
    let overlay =
        "description: null\nprimary:\n  model: ~\n  cage:\n    limits:\n      pids: null\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let p = load_project(dir.path()).unwrap();
    assert_eq!(p.description, None);
    let primary = p.primary.unwrap();
    assert_eq!(primary.model, None);
    assert_eq!(policy(&primary.cage).limits.pids, None);
    assert_eq!(policy(&primary.cage).limits.memory, Some(ByteSize(2 << 30)));
}

#[test]
fn overlay_can_add_tasks_and_replace_a_cage_with_disabled() {
    let overlay = "tasks:\n  bench:\n    command: [make, bench]\n    cage: disabled\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let p = load_project(dir.path()).unwrap();
    assert_eq!(p.tasks.keys().collect::<Vec<_>>(), vec!["bench", "test"]);
    assert_eq!(p.tasks["bench"].cage, Cage::Disabled);
}

#[test]
fn version_and_project_cannot_be_overridden() {
    let overlay = "# local tweaks\nproject: elsewhere\nversion: 1\ndescription: mine\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(
        fixture::summary(&err),
        vec![
            ("override_forbidden".into(), 2, 1, "/project".into()),
            ("override_forbidden".into(), 3, 1, "/version".into()),
        ]
    );
    for d in &err {
        assert!(d.file.ends_with(".kaged/project.local.yaml"), "{d}");
    }
}

#[test]
fn a_fault_introduced_by_the_overlay_points_into_the_overlay() {
    let overlay = "primary:\n  cage:\n    network: wifi\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(
        fixture::summary(&err),
        vec![("bad_value".into(), 3, 14, "/primary/cage/network".into())]
    );
    let d = err.iter().next().unwrap();
    assert_eq!(d.file, dir.path().join(".kaged/project.local.yaml"));
}

#[test]
fn a_bad_host_pattern_is_reported_at_its_entry() {
    let overlay =
        "primary:\n  cage:\n    network:\n      allow: [example.com, \"http://x.org/\"]\n";
    let dir = fixture::project(BASE, Some(overlay), &[]);
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(
        fixture::summary(&err),
        vec![(
            "bad_value".into(),
            4,
            28,
            "/primary/cage/network/allow/1".into()
        )]
    );
    let d = err.iter().next().unwrap();
    assert!(d.message.contains("give a host, not a URL"), "{d}");
}

#[test]
fn an_overlay_that_is_not_a_mapping_is_reported() {
    let dir = fixture::project(BASE, Some("- just\n- a list\n"), &[]);
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(err.codes(), vec![Code::TypeMismatch]);
    assert!(
        err.iter()
            .next()
            .unwrap()
            .file
            .ends_with("project.local.yaml")
    );
}

#[test]
fn an_empty_overlay_changes_nothing() {
    let with = fixture::project(BASE, Some("# nothing yet\n"), &[]);
    let without = fixture::project(BASE, None, &[]);
    assert_eq!(
        load_project(with.path()).unwrap(),
        load_project(without.path()).unwrap()
    );
}

#[test]
fn syntax_errors_in_both_files_are_reported_together() {
    let dir = fixture::project("version: 1\nproject: [x\n", Some("a: b: c\n"), &[]);
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(err.codes(), vec![Code::YamlSyntax, Code::YamlSyntax]);
    let files: Vec<_> = err
        .iter()
        .map(|d| d.file.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(files, vec!["project.local.yaml", "project.yaml"]);
}
