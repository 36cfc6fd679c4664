//! Design §7: a PTY cage runs without `--new-session`, so a shell whose PTY the spawner made its
//! controlling terminal (setsid + TIOCSCTTY, as the session broker does) has job control.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::Duration;

use kaged_sandbox::{CagePolicy, CageRequest, compile};

use super::fixture::{Machine, wait_at_most};

/// Runs an interactive `bash` in a cage on a fresh PTY and returns what it printed.
fn interactive_bash_on_a_pty(pty_cage: bool) -> String {
    let m = Machine::new();
    let policy = CagePolicy::default();
    let argv = ["bash", "--norc", "--noprofile", "-i", "-c", "echo flags=$-"].map(String::from);
    let cage = compile(&CageRequest {
        project_root: &m.root,
        policy: &policy,
        argv: &argv,
        env_values: &[],
        deny: &m.deny(),
        scratch_dir: None,
        pty: pty_cage,
        cwd: None,
        egress: None,
        hook: None,
        linked_git: None,
        program: None,
    })
    .unwrap();
    // The session broker's own PTY setup: setsid + TIOCSCTTY, only the grants cross exec.
    let pty = kaged_pty::Pty::open(80, 24).unwrap();
    let mut cmd = cage.command();
    pty.prepare(&mut cmd, &cage.raw_fds()).unwrap();
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    drop(cage);
    let status = wait_at_most(&mut child, Duration::from_secs(30)).expect("bash did not exit");
    assert!(status.success(), "{status}");
    // All slave ends are closed now: reading drains the buffer and then fails with EIO.
    let mut master = std::fs::File::from(pty.into_master());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => panic!("reading the PTY master (fd {}): {e}", master.as_raw_fd()),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

cage_test! {
    fn pty_cage_shell_has_job_control() {
        let out = interactive_bash_on_a_pty(true);
        assert!(!out.contains("no job control"), "{out}");
        let flags = out.lines().find_map(|l| l.trim().strip_prefix("flags=")).unwrap_or_default();
        assert!(flags.contains('m'), "monitor mode (job control) is off: {out}");
    }
}

cage_test! {
    fn new_session_cage_would_detach_the_shell_from_its_terminal() {
        // Why the PTY cage drops --new-session: with it, the same shell loses job control.
        let out = interactive_bash_on_a_pty(false);
        assert!(out.contains("no job control in this shell"), "{out}");
    }
}
