//! The CLI as a real client of the API: `kaged run`, `ps`, `logs`, `attach` and `stop` against
//! a real daemon, with real cages, through the same gate as the browser.

use std::io::Read;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use kaged_api::{EndReason, SessionInfo, SessionKind, SessionList, SessionState};
use pretty_assertions::assert_eq;

use crate::fixture::{BIN, TestDaemon, daemon, eventually, project_dir};

const PROJECT: &str = "version: 1\nproject: clidemo\ntasks:\n  hello:\n    command: [sh, -c, \"echo hello-from-task; echo line-two\"]\n";

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json<T: serde::de::DeserializeOwned>(out: &std::process::Output) -> T {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not the expected JSON ({e}): {text}"))
}

fn sessions(d: &TestDaemon) -> Vec<SessionInfo> {
    json::<SessionList>(&d.cli(&["ps", "--all", "--json"])).sessions
}

fn exited(d: &TestDaemon, id: &str) -> SessionInfo {
    eventually(Duration::from_secs(20), || {
        let s = sessions(d).into_iter().find(|s| s.id == id);
        match s {
            Some(s) if s.state == SessionState::Exited => Ok(s),
            other => Err(format!("{id} has not exited: {other:?}")),
        }
    })
}

#[test]
fn run_ps_logs_and_stop_drive_sessions_through_the_api() {
    let d = daemon().start();
    let proj = project_dir(PROJECT);
    let dir = proj.path().to_str().unwrap();

    // A directory is loaded first; a name is a declared task.
    let task: SessionInfo = json(&d.cli(&["run", dir, "hello", "--json"]));
    assert_eq!(task.project_id, "clidemo");
    assert_eq!(
        (task.origin.kind, task.origin.name.as_deref()),
        (SessionKind::Task, Some("hello"))
    );
    assert!(task.origin.cage.is_caged(), "{task:?}");
    let done = exited(&d, &task.id);
    assert_eq!(done.exit_code, Some(0));
    let logs = ok(&d.cli(&["logs", &task.id[..6]]));
    assert_eq!(logs, "hello-from-task\r\nline-two\r\n");

    // `-- ARGV` runs a command in the project's cage; a prefix names it; stop ends it.
    let out = ok(&d.cli(&["run", "clidemo", "--", "sleep", "300"]));
    let id = out.trim().to_owned();
    assert_eq!(id.len(), 32, "{out}");
    let running = json::<SessionList>(&d.cli(&["ps", "--json"])).sessions;
    assert_eq!(
        running.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()],
        "ps without --all lists running sessions only"
    );
    let table = ok(&d.cli(&["ps"]));
    assert!(
        table.contains(&id[..8]) && table.contains("sleep 300"),
        "{table}"
    );
    let stopped: SessionInfo = json(&d.cli(&["stop", &id[..5], "--json"]));
    assert_eq!(stopped.id, id);
    assert_eq!(exited(&d, &id).end_reason, Some(EndReason::Terminated));
}

#[test]
fn logs_follow_streams_until_the_session_ends() {
    let d = daemon().start();
    let proj = project_dir(PROJECT);
    let dir = proj.path().to_str().unwrap();
    let script = "for i in 1 2 3 4 5; do echo tick-$i; sleep 0.3; done";
    let id = ok(&d.cli(&["run", dir, "--", "sh", "-c", script]))
        .trim()
        .to_owned();
    let started = Instant::now();
    let logs = ok(&d.cli(&["logs", "-f", &id]));
    let want: String = (1..=5).map(|i| format!("tick-{i}\r\n")).collect();
    assert_eq!(logs, want);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn attach_types_into_a_caged_shell_and_detaches_with_ctrl_bracket() {
    let d = daemon().start();
    let proj = project_dir(PROJECT);
    let dir = proj.path().to_str().unwrap();
    let id = ok(&d.cli(&["run", dir, "--", "bash", "--norc", "--noprofile", "-i"]))
        .trim()
        .to_owned();

    // `kaged attach` on a terminal of its own, as an operator would run it.
    let pty = kaged_pty::Pty::open(100, 30).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", d.home())
        .env("XDG_RUNTIME_DIR", d.runtime_dir().parent().unwrap())
        .env("KAGED_MODE", "user")
        .args(["attach", &id[..8]]);
    pty.prepare(&mut cmd, &[]).unwrap();
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let master = std::fs::File::from(pty.into_master());
    let mut reader = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.extend_from_slice(&chunk),
                Err(_) => panic!(
                    "no {needle:?} from kaged attach; saw {:?}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
    };
    wait_for("detach with Ctrl-]");
    let write = |bytes: &[u8]| rustix::io::write(master.as_fd(), bytes).unwrap();
    write(b"echo $((6*7))-answer\r");
    wait_for("42-answer");
    write(&[0x1d]);
    wait_for("detached from");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Detaching leaves the session running.
    let s = sessions(&d).into_iter().find(|s| s.id == id).unwrap();
    assert_eq!(s.state, SessionState::Running);
    ok(&d.cli(&["stop", &id]));
}

#[test]
fn bad_ids_and_targets_say_what_exists() {
    let d = daemon().start();
    let proj = project_dir(PROJECT);
    let dir = proj.path().to_str().unwrap();
    let out = d.cli(&["run", dir, "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no agent or task \"nosuch\"") && err.contains("hello"),
        "{err}"
    );
    let out = d.cli(&["logs", "abcdef"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session id starts with"));
    let out = d.cli(&["stop", "not-hex"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a session id"));
}

#[test]
fn client_commands_without_a_daemon_exit_3_and_completions_need_none() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", home.path().join("rt"))
            .env("KAGED_MODE", "user")
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["ps"][..],
        &["logs", "abc"],
        &["stop", "abc"],
        &["run", "x"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("kaged is not running"),
            "{args:?}"
        );
    }
    let out = run(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("attach") && script.contains("logs"),
        "{script}"
    );
}
