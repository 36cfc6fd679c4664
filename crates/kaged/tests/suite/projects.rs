//! Project files (ADR-0011, design §9) through the CLI and the API, and their portability
//! between the deployment modes of ADR-0010.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaged_api::{AuditPage, ErrorCode, Me, ProjectView, ProviderKey, Status, UnknownAlias};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::fixture::{BIN, SYSTEM_PORT, daemon, project_dir};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/projects")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn validate(dir: &Path, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("HOME", "/tmp")
        .args(["dsl", "validate"])
        .arg(dir);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dsl_validate_exit_codes_and_formats() {
    for ex in ["caged-shell", "agent-cli", "tasks-only"] {
        let (code, out, err) = validate(&examples().join(ex), false);
        assert_eq!(code, 0, "{ex}: {out}{err}");
        assert!(out.contains("valid project"), "{out}");
    }
    let bad = project_dir(
        "version: 1\nproject: Bad_Slug\nbogus: 1\nprimary:\n  command: [/home/alice/bin/agent]\n",
    );
    let (code, out, _) = validate(bad.path(), false);
    assert_eq!(code, 1, "{out}");
    let file = bad.path().join(".kaged/project.yaml");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "every problem at once: {out}");
    for (line, code) in lines
        .iter()
        .zip(["bad_slug", "unknown_key", "absolute_path"])
    {
        assert!(line.starts_with(&format!("{}:", file.display())), "{line}");
        assert!(line.contains(&format!(": {code}: ")), "{line}");
        assert!(line.contains("(at /"), "{line}");
    }
    assert!(
        lines[1].starts_with(&format!("{}:3:1: unknown_key:", file.display())),
        "{}",
        lines[1]
    );
    let (code, out, _) = validate(bad.path(), true);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    let d = &v["diagnostics"][1];
    assert_eq!(
        (
            d["code"].clone(),
            d["line"].clone(),
            d["column"].clone(),
            d["pointer"].clone()
        ),
        (json!("unknown_key"), json!(3), json!(1), json!("/bogus"))
    );
    // Usage errors exit 2: a missing directory and an unknown flag.
    assert_eq!(validate(Path::new("/nonexistent/dir"), false).0, 2);
    let out = Command::new(BIN)
        .args(["dsl", "validate", "--frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invalid_projects_get_422_with_diagnostics_and_the_schema_is_public() {
    let d = daemon().start();
    let s = d.login();
    let bad = project_dir("version: 2\nproject: ok\n");
    let r = d.post(&s, "/api/v1/projects", &json!({"path": bad.path()}));
    let e = r.error().error;
    assert_eq!(
        (r.status, e.code),
        (422, ErrorCode::DslInvalid),
        "{}",
        r.body
    );
    // `details` differs per error, so the envelope leaves it untyped.
    let details = e.details.expect("diagnostics as details");
    let diag = &details["diagnostics"][0];
    assert_eq!(diag["code"], "bad_version");
    assert_eq!(diag["line"], 1);
    let r = d.post(&s, "/api/v1/projects", &json!({"path": "relative/dir"}));
    assert_eq!(r.error_code(), ErrorCode::ValidationFailed);
    let r = d.post(
        &s,
        "/api/v1/projects",
        &json!({"path": "/nonexistent/kaged/project"}),
    );
    assert_eq!(r.error_code(), ErrorCode::ValidationFailed);
    assert_eq!(
        d.post(&s, "/api/v1/projects", &json!({})).error_code(),
        ErrorCode::ValidationFailed
    );
    let schema = d.get("/api/v1/dsl/schema", &[]);
    assert_eq!(schema.status, 200, "the schema needs no auth");
    assert_eq!(
        schema.json(),
        serde_json::to_value(kaged_dsl::json_schema()).unwrap()
    );
    // Load, conflict on the same id from elsewhere, unload (audited).
    let a = project_dir("version: 1\nproject: twin\n");
    let b = project_dir("version: 1\nproject: twin\n");
    assert_eq!(
        d.post(&s, "/api/v1/projects", &json!({"path": a.path()}))
            .status,
        200
    );
    assert_eq!(
        d.post(&s, "/api/v1/projects", &json!({"path": b.path()}))
            .status,
        409
    );
    assert_eq!(d.delete(&s, "/api/v1/projects/twin").status, 200);
    assert_eq!(d.get_as(&s, "/api/v1/projects/twin").status, 404);
    let audit: AuditPage = d.get_as(&s, "/api/v1/audit?project_id=twin").json_as();
    let types: Vec<&str> = audit.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, vec!["project.unloaded", "project.loaded"]);
}

/// ADR-0010: a project from one operator's per-user kaged loads unchanged on another's
/// system-wide kaged.
#[test]
fn example_projects_load_unchanged_in_both_modes() {
    let user = daemon().start();
    let us = user.login();
    let _g = SYSTEM_PORT.lock().unwrap_or_else(|p| p.into_inner());
    let nonce = "portable-nonce-0123456789abcdef0123456789";
    let system = daemon()
        .system_namespace()
        .env("KAGED_AUTH_SIDECAR_NONCE", nonce)
        .start();
    let sidecar = |path: &str| {
        system.get(
            path,
            &[
                ("X-Kaged-Auth-Nonce", nonce),
                ("X-Kaged-User-Id", "ops@example.com"),
            ],
        )
    };
    let csrf = sidecar("/api/v1/me").json_as::<Me>().csrf_token;
    for ex in ["caged-shell", "agent-cli", "tasks-only"] {
        // Operator A's checkout and operator B's checkout live in different places.
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        copy_dir(&examples().join(ex), a.path());
        copy_dir(&examples().join(ex), b.path());
        let ra = user.post(&us, "/api/v1/projects", &json!({"path": a.path()}));
        assert_eq!(ra.status, 200, "{ex} per-user: {}", ra.body);
        let rb = system.request(
            "POST",
            "/api/v1/projects",
            &[
                ("Origin", &system.origin()),
                ("X-Kaged-Auth-Nonce", nonce),
                ("X-Kaged-User-Id", "ops@example.com"),
                ("X-Kaged-CSRF", &csrf),
            ],
            Some(&json!({"path": b.path()}).to_string()),
        );
        assert_eq!(rb.status, 200, "{ex} system-wide: {}", rb.body);
        let (ra, rb): (ProjectView, ProjectView) = (ra.json_as(), rb.json_as());
        assert_eq!(ra.definition, rb.definition, "{ex} differs between modes");
        assert_eq!(ra.agents, rb.agents);
        assert_eq!(sidecar(&format!("/api/v1/projects/{}", rb.id)).status, 200);
    }
}

#[test]
fn local_toml_registers_projects_resolves_aliases_and_never_prints_keys() {
    let proj = tempfile::tempdir().unwrap();
    copy_dir(&examples().join("agent-cli"), proj.path());
    let local = format!(
        "[models]\nsmart = \"anthropic:claude-sonnet\"\n\n[providers.anthropic]\napi_key_env = \"ANTHROPIC_API_KEY\"\n\n[[projects]]\npath = \"{}\"\n",
        proj.path().display()
    );
    let d = daemon()
        .local_toml(&local)
        .env("ANTHROPIC_API_KEY", "sk-ant-test-0123456789abcdefghij")
        .start();
    let s = d.login();
    let p = d.get_as(&s, "/api/v1/projects/agent-cli");
    assert_eq!(
        p.status, 200,
        "registered in local.toml, loaded at start: {}",
        p.body
    );
    let p: ProjectView = p.json_as();
    assert_eq!(
        p.models,
        BTreeMap::from([("smart".into(), "anthropic:claude-sonnet".into())])
    );
    assert_eq!(
        p.unknown_model_aliases,
        vec![UnknownAlias {
            agent: "primary.reviewer".into(),
            alias: "fast".into()
        }],
        "the reviewer's `fast` alias is not defined"
    );
    let st = d.get_as(&s, "/api/v1/status");
    assert_eq!(
        st.json_as::<Status>().local.providers,
        BTreeMap::from([(
            "anthropic".into(),
            ProviderKey {
                api_key_env: "ANTHROPIC_API_KEY".into(),
                present: true
            }
        )])
    );
    assert!(!st.body.contains("sk-ant-test"), "{}", st.body);
    assert!(!d.stderr().contains("sk-ant-test"));
}

#[test]
fn a_broken_local_toml_refuses_start_and_names_the_key() {
    let (st, err) = daemon()
        .local_toml("[modles]\nfast = \"x\"\n")
        .start_fails();
    assert!(!st.success());
    assert!(
        err.contains("modles") && err.contains("local.toml"),
        "{err}"
    );
}
