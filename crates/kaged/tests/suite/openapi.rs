//! The OpenAPI document: served behind the gate like every route, and honoured by the live
//! daemon, which `schemathesis` (PyPI) fuzzes with a real cookie and CSRF token.

use std::path::PathBuf;
use std::process::Command;

use pretty_assertions::assert_eq;

use crate::fixture::{daemon, project_dir};

/// `./dev test` installs schemathesis into `target/schemathesis` and names it here.
fn schemathesis() -> Option<PathBuf> {
    let named = std::env::var_os("KAGED_SCHEMATHESIS").map(PathBuf::from);
    let default =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis/bin/st");
    named.or(Some(default)).filter(|p| p.exists())
}

#[test]
fn the_document_sits_behind_the_gate_and_lists_the_route_table() {
    let d = daemon().start();
    let r = d.get("/api/v1/openapi.json", &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    let s = d.login();
    let doc = d.get("/api/v1/openapi.json", &s.auth()).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let mut table: Vec<String> = kaged_http::route_specs()
        .iter()
        .map(|s| format!("{} {}", s.method, kaged_http::openapi::openapi_path(s.path)))
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(documented, table);
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is missing; `./dev test` installs it into target/schemathesis"
        );
        eprintln!("SKIPPED: schemathesis is not installed here (`./dev test` installs it)");
        return;
    };
    let d = daemon().start();
    let s = d.login();
    // Something for the operations that take an id to find.
    let proj = project_dir("version: 1\nproject: fuzzed\ntasks:\n  hi:\n    command: [echo, hi]\n");
    let r = d.post(
        &s,
        "/api/v1/projects",
        &serde_json::json!({"path": proj.path()}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.post(
        &s,
        "/api/v1/projects/fuzzed/sessions",
        &serde_json::json!({"task": "hi"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let origin = d.origin();
    // Schemathesis fills every declared security scheme; a made-up bearer token is a wrong
    // credential the daemon (rightly) refuses and slows down, so it gets the real one, as
    // the CLI sends it.
    let nonce = std::fs::read_to_string(d.runtime_dir().join("auth-cookie")).unwrap();
    let out = Command::new(&st)
        .args(["run", &format!("{}/api/v1/openapi.json", d.base_url())])
        .args(["-H", &format!("Cookie: {}", s.cookie)])
        .args(["-H", &format!("Authorization: Bearer {}", nonce.trim())])
        .args(["-H", &format!("X-Kaged-CSRF: {}", s.csrf)])
        .args(["-H", &format!("Origin: {origin}")])
        // Every check about the answers; not those that need auth it can strip (the gate's
        // own tests cover auth), resources it cannot create, or a 405 the API never promised.
        .args(["--checks", "all", "--exclude-checks"])
        .arg(
            "ignored_auth,positive_data_acceptance,unsupported_method,allow_header_conformance,\
             use_after_free,ensure_resource_availability,object_level_authorization",
        )
        // The coverage phase crashes inside hypothesis on this Python; fuzzing and the
        // stateful phase exercise every operation.
        .args([
            "--phases",
            "examples,fuzzing,stateful",
            "--max-examples",
            "40",
        ])
        .args(["--workers", "2", "--seed", "1", "--no-color"])
        .env("HOME", d.home())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
}
