//! A newcomer's first run always ends somewhere useful: `./dev start` at a working launch URL
//! whatever the UID (ADR-0010's per-user mode), and a system-wide start with no sidecar at
//! what to do next (ADR-0007).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kaged_api::Me;

use crate::fixture::{BIN, SYSTEM_PORT, daemon, launch_credentials, raw};

#[test]
fn dev_start_with_a_clean_home_ends_at_a_working_launch_url() {
    let home = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut child = Command::new(repo.join("dev"))
        .arg("start")
        .current_dir(&repo)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", home.path())
        // A fresh machine: no XDG variables, no kaged anywhere.
        .env("KAGED_DEV_BIN", BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no launch URL printed:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if let Some(rest) = line.trim().strip_prefix("open:") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let seen = seen.join("\n");
    assert!(
        seen.contains("mode:    user (reason: --mode flag)"),
        "{seen}"
    );
    assert!(
        seen.contains(&format!(
            "state:   {}",
            home.path().join(".local/share/kaged").display()
        )),
        "{seen}"
    );

    // The URL works in a browser: it signs in and the API answers as the operator.
    let (base, path) = url.split_at(url.find("/launch").unwrap());
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let host = addr.to_string();
    let r = raw(addr, "GET", path, &[("Host", &host)], None);
    assert_eq!(r.status, 303, "{}", r.body);
    let (cookie, page) = launch_credentials(&r);
    let me = raw(
        addr,
        "GET",
        "/api/v1/me",
        &[
            ("Host", &host),
            ("Cookie", &cookie),
            ("X-Kaged-Page", &page),
        ],
        None,
    );
    assert_eq!(me.status, 200, "{}", me.body);
    let me: Me = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me.identity.mode, kaged_api::AuthMode::Loopback);

    // SIGTERM ends it cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn system_mode_without_a_sidecar_says_what_to_do_next() {
    let _g = SYSTEM_PORT.lock().unwrap_or_else(|p| p.into_inner());
    let d = daemon().system_namespace().start();
    let err = d.stderr();
    assert!(
        err.contains("next:    no sidecar is configured yet"),
        "{err}"
    );
    assert!(err.contains("docs/choose-your-deployment.md"), "{err}");
    assert!(err.contains("kaged start --mode user"), "{err}");

    // With a sidecar configured there is nothing to say.
    drop(d);
    let d = daemon()
        .system_namespace()
        .env(
            "KAGED_AUTH_SIDECAR_NONCE",
            "0123456789abcdef0123456789abcdef-next",
        )
        .start();
    assert!(!d.stderr().contains("next:"), "{}", d.stderr());
}
