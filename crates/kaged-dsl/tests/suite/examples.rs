//! The projects in `examples/projects/` validate cleanly, match the schema, and load the
//! same from anywhere (nothing in them depends on where they sit).

use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;

use kaged_dsl::{Cage, Network, document_json, json_schema, load_project};

use super::fixture;

fn examples() -> Vec<PathBuf> {
    let dir = fixture::crate_dir().join("../../examples/projects");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(".kaged/project.yaml").is_file())
        .collect();
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_three_example_projects_exist() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["agent-cli", "caged-shell", "tasks-only"]);
}

#[test]
fn every_example_validates_cleanly() {
    for dir in examples() {
        if let Err(d) = load_project(&dir) {
            panic!("{} does not validate:\n{d}", dir.display());
        }
    }
}

#[test]
fn every_example_matches_the_json_schema_as_written_and_as_loaded() {
    let validator = jsonschema::validator_for(&json_schema()).unwrap();
    for dir in examples() {
        let file = dir.join(".kaged/project.yaml");
        let source = document_json(&file, &std::fs::read_to_string(&file).unwrap()).unwrap();
        let loaded = serde_json::to_value(load_project(&dir).unwrap()).unwrap();
        for (what, value) in [("source", source), ("loaded", loaded)] {
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert_eq!(errors, Vec::<String>::new(), "{what} of {}", dir.display());
        }
    }
}

#[test]
fn examples_load_identically_from_another_location() {
    for dir in examples() {
        let elsewhere = tempfile::tempdir().unwrap();
        let copy = elsewhere.path().join("somewhere/else");
        copy_tree(&dir, &copy);
        assert_eq!(load_project(&copy).unwrap(), load_project(&dir).unwrap());
    }
}

#[test]
fn the_agent_cli_example_reaches_only_its_provider_and_names_only_aliases() {
    let dir = examples()
        .into_iter()
        .find(|p| p.ends_with("agent-cli"))
        .unwrap();
    let p = load_project(&dir).unwrap();
    let agents: Vec<(String, Option<String>)> = p
        .agents()
        .into_iter()
        .map(|(name, spec)| (name, spec.model.clone()))
        .collect();
    assert_eq!(
        agents,
        vec![
            ("primary".into(), Some("smart".into())),
            ("primary.reviewer".into(), Some("fast".into())),
        ]
    );
    for (name, spec) in p.agents() {
        match &spec.cage {
            // Filtered with nothing allowed: the provider route on the gateway, nothing else.
            Cage::Policy(policy) => assert_eq!(
                policy.network,
                Network::Filtered(kaged_dsl::EgressRules::default()),
                "{name}"
            ),
            Cage::Disabled => panic!("{name} is uncaged"),
        }
    }
}
