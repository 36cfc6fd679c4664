//! Exit status, termination, walltime, limits, spawn inputs and events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::Duration;

use kaged_session::{EndReason, LimitKind, SessionError, SessionState, Signal, ViewerEvent};
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, contains, read_to_end, read_until, spec_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_is_recorded() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "exit 7"]);
    let info = s.wait().await;
    assert_eq!(
        (info.state, info.exit_code, info.signal, info.end_reason),
        (
            SessionState::Exited,
            Some(7),
            None,
            Some(EndReason::ProcessExited)
        )
    );
    assert!(info.ended_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_killing_signal_is_recorded_and_sent_to_viewers() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "echo up; kill -TERM $$"]);
    let mut v = s.attach(Some(0));
    let seen = read_to_end(&mut v).await;
    assert_eq!(seen.bytes, b"up\r\n");
    assert_eq!(seen.exit, Some((None, Some(libc_sigterm()))));
    let info = s.wait().await;
    assert_eq!((info.exit_code, info.signal), (None, Some(libc_sigterm())));
}

fn libc_sigterm() -> i32 {
    Signal::SIGTERM as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_reaches_the_process_group() {
    let fx = Fixture::new();
    let s = fx.spawn(&[
        "/bin/sh",
        "-c",
        "trap 'echo got-usr1; exit 4' USR1; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut v = s.attach(Some(0));
    read_until(&mut v, |b| b.ends_with(b"ready\r\n")).await;
    s.signal(Signal::SIGUSR1).unwrap();
    let seen = read_to_end(&mut v).await;
    // The whole group gets it: the foreground `sleep` dies of it (which the shell may
    // report) and the shell runs its trap.
    assert!(
        seen.bytes.ends_with(b"got-usr1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&seen.bytes)
    );
    assert_eq!(seen.exit, Some((Some(4), None)));
    assert!(matches!(
        s.signal(Signal::SIGUSR1),
        Err(SessionError::NotRunning { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_stops_at_sighup_when_that_suffices() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "sleep 100"]);
    s.terminate();
    let info = s.wait().await;
    assert_eq!(
        (info.signal, info.end_reason),
        (Some(Signal::SIGHUP as i32), Some(EndReason::Terminated))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_escalates_to_sigkill_when_hup_and_term_are_ignored() {
    let fx = Fixture::new();
    let s = fx.spawn(&[
        "/bin/sh",
        "-c",
        "trap '' HUP TERM; echo ready; while :; do sleep 1; done",
    ]);
    let mut v = s.attach(Some(0));
    read_until(&mut v, |b| b.ends_with(b"ready\r\n")).await;
    s.terminate();
    let info = s.wait().await;
    assert_eq!(
        (info.exit_code, info.signal, info.end_reason),
        (
            None,
            Some(Signal::SIGKILL as i32),
            Some(EndReason::Terminated)
        )
    );
    let rest = read_to_end(&mut v).await;
    assert_eq!(rest.exit, Some((None, Some(Signal::SIGKILL as i32))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walltime_ends_the_session_and_is_recorded() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&["/bin/sh", "-c", "sleep 100"]);
    spec.walltime = Some(Duration::from_millis(300));
    let s = fx.mgr.spawn(spec).unwrap();
    let info = s.wait().await;
    assert_eq!(
        (info.signal, info.end_reason),
        (Some(Signal::SIGHUP as i32), Some(EndReason::Walltime))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_per_project_and_per_operator() {
    let fx = Fixture::with(|cfg| {
        cfg.max_per_project = 1;
        cfg.max_per_operator = 2;
    });
    let home = fx.home.path();
    let long = ["/bin/sh", "-c", "sleep 100"];
    let first = fx.mgr.spawn(spec_in(home, "p1", "alice", &long)).unwrap();

    let err = fx.mgr.spawn(spec_in(home, "p1", "bob", &long)).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Limit {
                kind: LimitKind::PerProject,
                max: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "project `p1` already has 1 running sessions (limit `sessions.max_per_project` = 1); \
         end one or raise `sessions.max_per_project`"
    );

    let second = fx.mgr.spawn(spec_in(home, "p2", "alice", &long)).unwrap();
    let err = fx
        .mgr
        .spawn(spec_in(home, "p3", "alice", &long))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Limit {
                kind: LimitKind::PerOperator,
                max: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sessions.max_per_operator"));

    // Exited sessions free their slot.
    first.terminate();
    first.wait().await;
    let third = fx.mgr.spawn(spec_in(home, "p1", "bob", &long)).unwrap();
    assert_eq!(fx.mgr.list(Some("p1")).len(), 2);
    fx.mgr.shutdown().await;
    for s in [&second, &third] {
        assert_eq!(s.info().end_reason, Some(EndReason::Shutdown));
    }
    assert!(matches!(
        fx.mgr.spawn(spec_in(home, "p9", "carol", &long)),
        Err(SessionError::ShuttingDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_gets_exactly_the_given_env_and_the_kept_fds() {
    let fx = Fixture::new();
    let (mut rx, tx) = std::io::pipe().unwrap();
    let fd = tx.as_raw_fd();
    // A descriptor the daemon forgot to mark close-on-exec must still not leak.
    let careless = nix::unistd::dup(&rx).unwrap();
    let leak = careless.as_raw_fd();
    let script = format!(
        "env | sort; tty >/dev/null && echo has-tty; \
         [ -e /proc/$$/fd/{leak} ] && echo leaked; echo through-fd >&{fd}"
    );
    // bash rather than dash, which only knows single-digit descriptors. (A non-interactive
    // bash drops PS1 and adds PWD, SHLVL and _ itself.)
    let mut spec = fx.spec(&["/bin/bash", "--norc", "--noprofile", "-c", &script]);
    spec.keep_fds.push(tx.into());
    let s = fx.mgr.spawn(spec).unwrap();
    let mut v = s.attach(Some(0));
    let seen = read_to_end(&mut v).await;
    let text = String::from_utf8(seen.bytes).unwrap();
    let env: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !["PWD=", "SHLVL=", "_="].iter().any(|p| l.starts_with(p)))
        .collect();
    let home = format!("HOME={}", fx.home.path().display());
    assert_eq!(
        env,
        vec![home.as_str(), "PATH=/usr/bin:/bin", "TERM=dumb", "has-tty"]
    );
    let mut through = String::new();
    rx.read_to_string(&mut through).unwrap();
    assert_eq!(through, "through-fd\n");
    drop(careless);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_joins_its_cgroup_before_exec_and_the_descriptor_does_not_follow() {
    // A plain file stands in for `cgroup.procs`: in a real cgroup the `0` moves the writer.
    let procs = tempfile::NamedTempFile::new().unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(procs.path())
        .unwrap();
    let fd = file.as_raw_fd();
    let fx = Fixture::new();
    let script = format!("[ -e /proc/$$/fd/{fd} ] && echo leaked; echo done");
    let mut spec = fx.spec(&["/bin/sh", "-c", &script]);
    spec.cgroup_procs = Some(file.into());
    let s = fx.mgr.spawn(spec).unwrap();
    let seen = read_to_end(&mut s.attach(Some(0))).await;
    assert_eq!(String::from_utf8(seen.bytes).unwrap(), "done\r\n");
    assert_eq!(std::fs::read_to_string(procs.path()).unwrap(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_the_thread_that_spawned_it() {
    // bwrap's --die-with-parent is PR_SET_PDEATHSIG, which follows the forking *thread*;
    // setpriv sets the same thing without needing a cage.
    let fx = Fixture::new();
    let spec = fx.spec(&[
        "setpriv",
        "--pdeathsig",
        "KILL",
        "--",
        "/bin/sh",
        "-c",
        "echo up; read line; echo still-here",
    ]);
    let (mgr, rt) = (fx.mgr.clone(), tokio::runtime::Handle::current());
    let s = std::thread::spawn(move || {
        let _rt = rt.enter();
        mgr.spawn(spec).unwrap()
    })
    .join()
    .unwrap();
    let mut v = s.attach(Some(0));
    read_until(&mut v, |b| b.ends_with(b"up\r\n")).await;
    // Give a parent-death signal, if one were coming, time to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_input(b"\n").await.unwrap();
    let seen = read_to_end(&mut v).await;
    assert!(contains(&seen.bytes, b"still-here\r\n"), "{seen:?}");
    assert_eq!(seen.exit, Some((Some(0), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_spawn_names_the_program_and_leaves_nothing() {
    let fx = Fixture::new();
    let err = fx.mgr.spawn(fx.spec(&["/nonexistent/prog"])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("could not start `/nonexistent/prog` in "),
        "{err}"
    );
    assert_eq!(fx.mgr.list(None), vec![]);
    assert_eq!(std::fs::read_dir(fx.sessions_dir()).unwrap().count(), 0);
    assert!(matches!(
        fx.mgr.spawn(fx.spec(&[])),
        Err(SessionError::EmptyArgv)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_the_recorded_end_and_origin() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "read line"]);
    let started = s.info();
    assert_eq!(started.state, SessionState::Running);
    let mut v = s.attach(None);
    s.write_input(b"\n").await.unwrap();
    let info = s.wait().await;
    assert!(matches!(
        read_to_end(&mut v).await.exit,
        Some((Some(0), None))
    ));
    assert_eq!(
        (info.id.as_str(), info.state, info.pid, info.exit_code),
        (s.id(), SessionState::Exited, started.pid, Some(0))
    );
    assert_eq!(info.origin, started.origin);
    assert_eq!(info.end_reason, Some(EndReason::ProcessExited));
    assert!(info.ended_at.is_some_and(|end| end >= info.started_at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_to_an_exited_session_is_refused() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "true"]);
    s.wait().await;
    assert!(matches!(
        s.write_input(b"x").await,
        Err(SessionError::NotRunning { .. })
    ));
    assert!(matches!(
        s.resize(1, 1),
        Err(SessionError::NotRunning { .. })
    ));
    let mut v = s.attach(None);
    assert_eq!(
        v.next().await,
        Some(ViewerEvent::Exit {
            code: Some(0),
            signal: None
        })
    );
    assert_eq!(v.next().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bwrap_cage_runs_on_the_pty_with_its_size_and_can_be_terminated() {
    let probe = std::process::Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--unshare-pid", "--", "/bin/true"])
        .status();
    if !matches!(probe, Ok(status) if status.success()) {
        eprintln!("skipped: bwrap is missing or user namespaces are unavailable ({probe:?})");
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&[
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-pid",
        "--die-with-parent",
        "--",
        "/bin/sh",
        "-c",
        "test -t 0 && echo has-tty; stty size; echo ready; while :; do sleep 1; done",
    ]);
    (spec.cols, spec.rows) = (123, 45);
    let s = fx.mgr.spawn(spec).unwrap();
    let mut v = s.attach(Some(0));
    let seen = read_until(&mut v, |b| b.ends_with(b"ready\r\n")).await;
    assert_eq!(seen.bytes, b"has-tty\r\n45 123\r\nready\r\n");
    s.terminate();
    let info = s.wait().await;
    assert_eq!(info.end_reason, Some(EndReason::Terminated));
    assert!(
        info.signal.is_some() || info.exit_code.is_some(),
        "{info:?}"
    );
}
