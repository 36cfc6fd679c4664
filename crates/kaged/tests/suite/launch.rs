//! Launch URLs reach only the operator's browser (ADR-0007's per-user amendment): never on a
//! command line, never into the journal, one token on GET only, and every use audited with
//! who tried.

use std::os::unix::fs::PermissionsExt;

use kaged_api::{AuditPage, ErrorCode, LaunchUrl};
use pretty_assertions::assert_eq;

use crate::fixture::{Session, TestDaemon, daemon};

fn audit(d: &TestDaemon, s: &Session, kind: &str) -> AuditPage {
    d.get_as(s, &format!("/api/v1/audit?type={kind}")).json_as()
}

#[test]
fn auth_open_gives_the_browser_a_private_redirect_file_never_the_url() {
    let bin = tempfile::tempdir().unwrap();
    let seen = bin.path().join("argv");
    // A browser opener that records what it was asked to open, and what it could read there.
    let opener = bin.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > {seen}\ncat \"$1\" > {seen}.page\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let d = daemon().env("PATH", &path).env("DISPLAY", ":0").start();
    let out = d.cli(&["auth", "open"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let token = url.split("token=").nth(1).unwrap().to_owned();
    assert!(token.len() >= 32, "{url}");
    crate::fixture::eventually(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(format!("{}.page", seen.display()))
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| "the opener never ran".to_owned())
    });
    let argv = std::fs::read_to_string(&seen).unwrap();
    assert!(!argv.contains(&token), "a token on a command line: {argv}");
    let opened = argv.lines().nth(1).unwrap();
    assert!(
        opened.starts_with(d.runtime_dir().to_str().unwrap()),
        "{argv}"
    );
    let mode = std::fs::metadata(opened).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let page = std::fs::read_to_string(format!("{}.page", seen.display())).unwrap();
    assert!(page.contains(&url), "{page}");
    // The token in the page is the one that works.
    let r = d.get(&format!("/launch?token={token}"), &[]);
    assert_eq!(r.status, 303, "{}", r.body);
}

#[test]
fn under_a_service_manager_the_launch_url_stays_out_of_the_journal() {
    let d = daemon().env("JOURNAL_STREAM", "8:424242").start();
    let err = d.stderr();
    assert!(!err.contains("launch?token="), "{err}");
    assert!(err.contains("run `kaged auth open`"), "{err}");
    // And `kaged auth open` still gets one.
    let out = d.cli(&["auth", "open", "--no-browser"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("/launch?token="));
}

#[test]
fn launch_takes_exactly_one_token_on_get_only() {
    let d = daemon().start();
    let s = d.login();
    let fresh = || -> String {
        let r = d.post(&s, "/api/v1/auth/launch-token", &serde_json::json!({}));
        let launch: LaunchUrl = r.json_as();
        launch.url.trim_start_matches(&d.base_url()).to_owned()
    };
    let path = fresh();
    // A HEAD (a link preview, a prefetch) must not spend the token.
    let head = d.request("HEAD", &path, &[], None);
    assert_eq!(head.status, 400);
    for bad in [
        format!("{path}&token=another"),
        format!("{path}&next=/evil"),
        "/launch".to_owned(),
        "/launch?token".to_owned(),
    ] {
        let r = d.get(&bad, &[]);
        assert_eq!(
            (r.status, r.error_code()),
            (400, ErrorCode::BadRequest),
            "{bad}"
        );
    }
    assert_eq!(d.get(&path, &[]).status, 303, "the token survived");
    assert_eq!(d.get(&path, &[]).status, 401, "and works once");
}

#[test]
fn launch_rows_name_the_peer_and_the_user_agent() {
    let d = daemon().start();
    let s = d.login();
    let r = d.post(&s, "/api/v1/auth/launch-token", &serde_json::json!({}));
    let launch: LaunchUrl = r.json_as();
    let path = launch.url.trim_start_matches(&d.base_url()).to_owned();
    let ua = [("User-Agent", "KagedTestBrowser/1.0")];
    assert_eq!(d.get(&path, &ua).status, 303);
    assert_eq!(d.get("/launch?token=forged", &ua).status, 401);
    let used = audit(&d, &s, "auth.launch_token_used");
    let row = &used.events[0].data;
    assert_eq!(row["user_agent"], "KagedTestBrowser/1.0", "{row}");
    assert!(
        row["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{row}"
    );
    let refused = audit(&d, &s, "auth.rejected");
    let row = refused
        .events
        .iter()
        .find(|e| e.data["path"] == "/launch")
        .map(|e| &e.data)
        .unwrap();
    assert_eq!(
        (&row["reason"], &row["user_agent"]),
        (
            &serde_json::json!("bad_launch_token"),
            &serde_json::json!("KagedTestBrowser/1.0")
        )
    );
    assert!(
        !refused
            .events
            .iter()
            .any(|e| e.data.to_string().contains("forged"))
    );
}
