//! The JSON Schema is generated from the Rust types, and the parser agrees with it on
//! everything the schema can express.

use std::path::Path;

use pretty_assertions::assert_eq;
use serde_json::json;

use kaged_dsl::{document_json, json_schema, parse_project_str};

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&json_schema()).unwrap()
}

fn doc(yaml: &str) -> serde_json::Value {
    document_json(Path::new("t.yaml"), yaml).unwrap()
}

#[test]
fn schema_is_draft_2020_12_and_closed() {
    let s = json_schema();
    assert_eq!(
        s["$schema"],
        json!("https://json-schema.org/draft/2020-12/schema")
    );
    assert_eq!(s["additionalProperties"], json!(false));
    assert_eq!(s["required"], json!(["version", "project"]));
    assert_eq!(
        s["$defs"]["CagePolicy"]["additionalProperties"],
        json!(false)
    );
}

/// Documents whose validity the schema can fully express: the parser and the schema must
/// give the same verdict on each.
const AGREE: &[(&str, bool)] = &[
    ("version: 1\nproject: ok\n", true),
    ("version: 2\nproject: ok\n", false),
    ("version: 1\nproject: A\n", false),
    ("version: 1\n", false),
    ("version: 1\nproject: ok\nextra: 1\n", false),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: disabled}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: off}\n",
        false,
    ),
    ("version: 1\nproject: ok\nprimary: {command: []}\n", false),
    (
        "version: 1\nproject: ok\nprimary: {command: [\"\"]}\n",
        false,
    ),
    ("version: 1\nproject: ok\nprimary: {command: bash}\n", false),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], model: fast}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], model: \"a:b\"}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], system_prompt: prompt.md}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], tools: [\"\"]}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], agents: {\"a b\": {command: [x]}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], agents: {rev: {command: [x]}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {fs: [{access: ro}]}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {fs: [{path: /etc}]}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {fs: [{path: \"config:/x\"}]}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: wifi}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: host}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: {allow: [\"*.example.com\", \"api.x.org:443\"], deny: [evil.example.com]}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: {}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: {allow: example.com}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: {allow_private: [\"10.0.0.1:22\"]}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {state: persistent}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {walltime: 2h}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {walltime: 90}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {walltime: 2d}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {memory: 512M}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {memory: 1.5G}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {pids: 0}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {cpu: 0}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {limits: {cpu: 0.5}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {env: [\"A=B\"]}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\ntasks: {\"run tests\": {command: [x]}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\ntasks: {t: {command: [x], env: {N: 1}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\ntasks: {t: {command: [x], env: {N: \"1\"}}}\n",
        true,
    ),
    (
        "version: 1\nproject: ok\ntasks: {t: {command: [x], env: {\"1N\": \"1\"}}}\n",
        false,
    ),
    (
        "version: 1\nproject: ok\nplugins: [{name: lint, command: [lintd]}]\n",
        true,
    ),
    ("version: 1\nproject: ok\nplugins: [{name: lint}]\n", false),
    ("version: 1\nproject: ok\nplugins: {lint: [x]}\n", false),
];

#[test]
fn parser_and_schema_agree_on_what_the_schema_can_express() {
    let v = validator();
    let disagreements: Vec<String> = AGREE
        .iter()
        .filter_map(|(yaml, valid)| {
            let by_parser = parse_project_str(Path::new("t.yaml"), yaml).is_ok();
            let by_schema = v.is_valid(&doc(yaml));
            (by_parser != *valid || by_schema != *valid).then(|| {
                format!("{yaml:?}: expected {valid}, parser {by_parser}, schema {by_schema}")
            })
        })
        .collect();
    assert_eq!(disagreements, Vec::<String>::new());
}

/// What only the parser can see: these pass the schema and fail the parser, by design.
#[test]
fn the_parser_is_stricter_than_the_schema_on_portability_and_references() {
    let v = validator();
    let stricter = [
        "version: 1\nproject: ok\nprimary: {command: [bash], model: gpt-4o}\n",
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {fs: [{path: \"project:/../x\"}]}}\n",
        "version: 1\nproject: ok\nprimary: {command: [cat, /home/me/x]}\n",
        "version: 1\nproject: ok\nprimary: {command: [bash], tools: [\"agent:ghost\"]}\n",
        "version: 1\nproject: ok\ntasks: {t: {command: [x], env: {API_TOKEN: abc}}}\n",
        "version: 1\nproject: ok\nplugins: [{name: a, command: [x]}, {name: a, command: [y]}]\n",
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: {allow: [\"https://example.com\"]}}}\n",
        "version: 1\nproject: ok\nprimary: {command: [bash], cage: {network: {deny: [\"*.com\"]}}}\n",
    ];
    for yaml in stricter {
        assert!(v.is_valid(&doc(yaml)), "schema rejects {yaml:?}");
        assert!(
            parse_project_str(Path::new("t.yaml"), yaml).is_err(),
            "parser accepts {yaml:?}"
        );
    }
}

#[test]
fn typed_projects_serialise_to_documents_the_schema_accepts() {
    let v = validator();
    let yaml = "version: 1\nproject: ok\nprimary:\n  command: [bash]\n  cage: {limits: {walltime: 2h, memory: 1G, cpu: 1.5}}\n  agents: {r: {command: [x], cage: disabled}}\ntasks: {t: {command: [x]}}\n";
    let p = parse_project_str(Path::new("t.yaml"), yaml).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
    assert_eq!(errors, Vec::<String>::new());
    // And the normalised form reads back into the same value.
    let back: kaged_dsl::Project = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
}
