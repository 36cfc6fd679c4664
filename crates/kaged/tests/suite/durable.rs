//! Durable sessions (design §6): a session's process hangs off a holder, so a restart, an
//! upgrade to another copy of the binary, or `kill -9` of the daemon leaves it running; the
//! next daemon adopts it with the same id, transcript and offsets. Real daemons on a shared
//! state dir, real bwrap cages, real PTYs, over the real WebSocket.
//!
//! These tests run without a service manager (this host has no systemd as PID 1): holders
//! live in their own session (`setsid`), reparented to PID 1 when the daemon goes away. The
//! systemd side (the unit's `KillMode=process` and the job-type decision) is unit-tested in
//! `kaged start`'s `on_stop` module and verified with `systemd-analyze verify`.

use std::path::Path;
use std::time::Duration;

use futures_util::SinkExt;
use kaged_api::{
    ClientControl, EndReason, ScreenSize, ServerControl, SessionInfo, SessionList, SessionState,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::fixture::{
    BIN, Session, TestDaemon, daemon, eventually, next_control, project_dir, read_until,
    send_control,
};

const PROJECT: &str = "version: 1\nproject: demo\n";
/// Numbered lines at a steady pace, then a marker, then it idles.
const STREAMER: &str = "i=0; while [ $i -lt 1500 ]; do i=$((i+1)); echo n$i; sleep 0.003; done; echo STREAM-DONE; exec sleep 1000";

fn load(d: &TestDaemon, s: &Session, root: &Path) {
    let r = d.post(s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn start(d: &TestDaemon, s: &Session, body: Value) -> SessionInfo {
    let r = d.post(s, "/api/v1/projects/demo/sessions", &body);
    assert_eq!(r.status, 200, "{}\ndaemon log:\n{}", r.body, d.stderr());
    r.json_as()
}

fn info(d: &TestDaemon, s: &Session, id: &str) -> SessionInfo {
    d.get_as(s, &format!("/api/v1/sessions/{id}")).json_as()
}

fn wait_exited(d: &TestDaemon, s: &Session, id: &str) -> SessionInfo {
    eventually(Duration::from_secs(30), || {
        let v = info(d, s, id);
        if v.state == SessionState::Exited {
            Ok(v)
        } else {
            Err(format!("session {id} never exited: {v:?}"))
        }
    })
}

async fn hello(ws: &mut crate::fixture::Ws, offset: u64) -> ServerControl {
    send_control(
        ws,
        ClientControl::Hello {
            offset: Some(offset),
            client: None,
            screen: None,
        },
    )
    .await;
    next_control(ws).await
}

/// The pid of the live (not zombie) holder of session `id`: a process whose command line
/// is `kaged holder <id>`.
fn live_holder(id: &str) -> Option<u32> {
    let want = format!("kaged\0holder\0{id}\0");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline != want.as_bytes() {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The state follows the parenthesised command name; `Z` is a zombie (exited, but
        // PID 1 on this host does not reap orphans).
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if !matches!(state, Some('Z' | 'X') | None) {
            return Some(pid);
        }
    }
    None
}

/// Kills the holders of these sessions when a test ends, passed or not: a test that fails
/// half-way must not leave a daemon-less session running for ever.
struct Reap(Vec<String>);

impl Drop for Reap {
    fn drop(&mut self) {
        for id in &self.0 {
            if let Some(pid) = live_holder(id) {
                // SAFETY: kill(2) on the holder this test started; its cage dies with it.
                unsafe { libc_kill(pid as i32, 9) };
            }
        }
    }
}

fn audit_rows(d: &TestDaemon, kind: &str) -> Vec<(Option<String>, Value)> {
    let db = d.home().join(".local/share/kaged/kaged.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT session_id, data FROM audit_events WHERE type = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([kind], |r| {
        let data: String = r.get(1)?;
        Ok((r.get(0)?, serde_json::from_str(&data).unwrap()))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The numbers of the `nN` lines in `out`, in order.
fn numbered(out: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(out)
        .split("\r\n")
        .filter_map(|l| l.strip_prefix('n').and_then(|n| n.parse().ok()))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// SIGTERM with `sessions.on_stop = keep`, then the same binary again.
    Restart,
    /// SIGTERM, then another copy of the binary on the same state dir.
    Upgrade,
    /// `kill -9`: nothing is flushed.
    Kill9,
}

/// One streaming session and one shell at a prompt live through `stop`; afterwards every
/// byte is there in order and the shell has its jobs, its job control and its cwd.
async fn sessions_survive(stop: Stop) {
    let mut d = daemon().env("KAGED_SESSIONS_ON_STOP", "keep").start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    load(&d, &s, proj.path());
    let shell = start(
        &d,
        &s,
        json!({"argv": ["bash", "--norc", "--noprofile", "-i"], "cols": 100, "rows": 30}),
    );
    let mut ws = d
        .ws(&format!("/api/v1/sessions/{}/pty", shell.id), &s)
        .await;
    hello(&mut ws, 0).await;
    ws.send(Message::Binary(
        b"mkdir -p /tmp/x; cd /tmp/x; sleep 100 &\r".to_vec().into(),
    ))
    .await
    .unwrap();
    read_until(&mut ws, "[1] ", Duration::from_secs(15)).await;
    drop(ws);
    let streamer = start(&d, &s, json!({"argv": ["sh", "-c", STREAMER]}));
    let _reap = Reap(vec![shell.id.clone(), streamer.id.clone()]);
    eventually(Duration::from_secs(20), || {
        let v = info(&d, &s, &streamer.id);
        (v.bytes_total > 1000)
            .then_some(())
            .ok_or(format!("streamer too slow: {v:?}"))
    });
    let holders = (
        live_holder(&shell.id).expect("the shell's holder runs"),
        live_holder(&streamer.id).expect("the streamer's holder runs"),
    );

    let copy = tempfile::tempdir().unwrap();
    let next_bin = match stop {
        Stop::Restart => None,
        Stop::Upgrade => {
            let path = copy.path().join("kaged-next");
            std::fs::copy(BIN, &path).unwrap();
            Some(path)
        }
        Stop::Kill9 => None,
    };
    match stop {
        Stop::Restart | Stop::Upgrade => {
            let status = d.terminate();
            assert!(status.success(), "{status}\n{}", d.stderr());
        }
        Stop::Kill9 => d.kill9(),
    }
    // No daemon: the programs run on, their output waits in the PTY buffer.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        (live_holder(&shell.id), live_holder(&streamer.id)),
        (Some(holders.0), Some(holders.1)),
        "holders must outlive the daemon ({stop:?})"
    );
    let d = d.start_again(next_bin.as_deref());
    let s = d.login();

    // Same ids, running, marked adopted; status lists them; each adoption is audited.
    let list: SessionList = d.get_as(&s, "/api/v1/sessions").json_as();
    for id in [&shell.id, &streamer.id] {
        let v = list.sessions.iter().find(|x| &x.id == id).unwrap();
        assert_eq!(v.state, SessionState::Running, "{v:?}");
        assert!(v.adopted_at.is_some(), "{v:?}");
    }
    let status: Value = d.get_as(&s, "/api/v1/status").json();
    let mut adopted: Vec<&str> = status["sessions"]["adopted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    adopted.sort_unstable();
    let mut want = vec![shell.id.as_str(), streamer.id.as_str()];
    want.sort_unstable();
    assert_eq!(adopted, want);
    let cli = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(text.contains("2 adopted from their holders"), "{text}");
    assert!(text.contains(&shell.id[..8]), "{text}");
    let rows = audit_rows(&d, "session.adopted");
    assert_eq!(rows.len(), 2, "{rows:?}");

    // Every byte of the stream, in order, from the transcript the last daemon wrote on.
    let mut ws = d
        .ws(&format!("/api/v1/sessions/{}/pty", streamer.id), &s)
        .await;
    let h = hello(&mut ws, 0).await;
    assert_eq!(
        h,
        ServerControl::Hello {
            offset: 0,
            session: streamer.id.clone(),
            input_seq: None
        }
    );
    let (out, _) = read_until(&mut ws, "STREAM-DONE", Duration::from_secs(60)).await;
    let lines = numbered(&out);
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "out of order or duplicated"
    );
    let missing: Vec<u64> = (1..=1500).filter(|n| !lines.contains(n)).collect();
    let after = info(&d, &s, &streamer.id);
    match stop {
        Stop::Restart | Stop::Upgrade => {
            assert_eq!(missing, Vec::<u64>::new(), "a graceful stop loses nothing");
            assert!(after.transcript_complete, "{after:?}");
        }
        Stop::Kill9 => {
            // What the killed daemon had read but not yet written is gone: at most one run
            // of lines at the kill, and then the session says its transcript is incomplete.
            // (The daemon that was killed never recorded its byte count, so it says so even
            // when nothing was lost.)
            assert!(
                missing.is_empty() || missing.windows(2).all(|w| w[1] == w[0] + 1),
                "lost more than the bytes in flight: {missing:?}"
            );
            assert!(!after.transcript_complete, "{after:?}");
            eprintln!(
                "kill -9: {} of 1500 lines lost in flight {missing:?}",
                missing.len()
            );
        }
    }
    drop(ws);

    // The shell: its background job, job control and cwd are still there.
    let mut ws = d
        .ws(&format!("/api/v1/sessions/{}/pty", shell.id), &s)
        .await;
    let end = info(&d, &s, &shell.id).bytes_total;
    hello(&mut ws, end).await;
    ws.send(Message::Binary(
        b"jobs; pwd; echo \"flags=$- F$((6*7))F\"\r".to_vec().into(),
    ))
    .await
    .unwrap();
    let (out, _) = read_until(&mut ws, "F42F", Duration::from_secs(15)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("sleep 100 &"), "jobs lost: {text}");
    assert!(text.contains("\r\n/tmp/x\r\n"), "cwd lost: {text}");
    let flags = text
        .split("flags=")
        .skip(1)
        .filter(|f| !f.starts_with('$'))
        .find_map(|f| f.split_whitespace().next())
        .unwrap_or_default();
    assert!(
        flags.contains('m'),
        "no job control (flags {flags:?}): {text}"
    );
    drop(ws);

    // A screen viewer gets the shell's screen from the terminal model the new daemon rebuilt
    // from the transcript's tail, with what the shell printed since.
    let mut ws = d
        .ws(&format!("/api/v1/sessions/{}/pty", shell.id), &s)
        .await;
    let size = ScreenSize {
        cols: 100,
        rows: 30,
    };
    send_control(
        &mut ws,
        ClientControl::Hello {
            offset: None,
            client: None,
            screen: Some(size),
        },
    )
    .await;
    let h = next_control(&mut ws).await;
    assert!(matches!(h, ServerControl::Hello { .. }), "{h:?}");
    let head = next_control(&mut ws).await;
    let ServerControl::Screen { cols, rows, .. } = head else {
        panic!("expected the screen after hello, got {head:?}");
    };
    assert_eq!((cols, rows), (100, 30));
    read_until(&mut ws, "F42F", Duration::from_secs(15)).await;
    drop(ws);

    // Ending them ends their holders.
    for id in [&shell.id, &streamer.id] {
        let r = d.delete(&s, &format!("/api/v1/sessions/{id}"));
        assert_eq!(r.status, 200, "{}", r.body);
        wait_exited(&d, &s, id);
    }
    eventually(Duration::from_secs(10), || {
        match (live_holder(&shell.id), live_holder(&streamer.id)) {
            (None, None) => Ok(()),
            left => Err(format!("holders outlived their sessions: {left:?}")),
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_with_every_byte_jobs_and_cwd() {
    sessions_survive(Stop::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_an_upgrade_to_another_copy_of_the_binary() {
    sessions_survive(Stop::Upgrade).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_kill_9_of_the_daemon() {
    sessions_survive(Stop::Kill9).await;
}

/// A filtered-network cage keeps its way out across `stop`: the adopting daemon binds a new
/// gateway in the cage's socket directory and enforces and audits the same policy.
async fn a_filtered_cage_keeps_its_gateway(stop: Stop) {
    let (up, served) = crate::suite::egress::upstream("hello from upstream");
    let mut d = daemon()
        .env("KAGED_SESSIONS_ON_STOP", "keep")
        .local_toml(&format!("[egress]\nallow_private = [\"127.0.0.1:{up}\"]\n"))
        .start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    load(&d, &s, proj.path());
    // One allowed and one refused request per line read, so each daemon is asked in turn.
    let script = format!(
        "while read tag; do \
           echo got-$tag=$(curl -sS --noproxy '' -x \"$HTTP_PROXY\" http://127.0.0.1:{up}/$tag); \
           echo refused-$tag=$(curl -s -o /dev/null -w '%{{http_code}}' --noproxy '' -x \"$HTTP_PROXY\" http://127.0.0.1:{port}/); \
         done",
        port = d.addr.port()
    );
    let cage = start(
        &d,
        &s,
        json!({"argv": ["bash", "--norc", "--noprofile", "-c", script],
               "cage": {"network": {"allow": [format!("127.0.0.1:{up}")]},
                        "fs": [{"path": "project:/", "access": "ro"}]}}),
    );
    let _reap = Reap(vec![cage.id.clone()]);
    let ask = |d: &TestDaemon, s: &Session, tag: &str| {
        let r = d.post(
            s,
            &format!("/api/v1/sessions/{}/input", cage.id),
            &json!({"data": format!("{tag}\n")}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let want = [
            format!("got-{tag}=hello from upstream"),
            format!("refused-{tag}=403"),
        ];
        eventually(Duration::from_secs(30), || {
            let out = d
                .get_as(s, &format!("/api/v1/sessions/{}/transcript", cage.id))
                .body;
            if want.iter().all(|w| out.contains(w.as_str())) {
                Ok(())
            } else {
                Err(format!("{want:?} not in the cage's output:\n{out}"))
            }
        });
    };
    ask(&d, &s, "before");
    match stop {
        Stop::Restart | Stop::Upgrade => assert!(d.terminate().success(), "{}", d.stderr()),
        Stop::Kill9 => d.kill9(),
    }
    let d = d.start_again(None);
    let s = d.login();
    assert!(info(&d, &s, &cage.id).adopted_at.is_some());
    ask(&d, &s, "after");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The adopting daemon audits its connections too, after the adoption.
    let rows = eventually(Duration::from_secs(10), || {
        let all = audit_rows(&d, "session.adopted")
            .into_iter()
            .chain(audit_rows(&d, "egress.allowed"))
            .chain(audit_rows(&d, "egress.denied"))
            .filter(|(id, _)| id.as_deref() == Some(cage.id.as_str()))
            .count();
        if all == 5 {
            Ok(all)
        } else {
            Err(format!("{all} rows, want adopted + 2 allowed + 2 denied"))
        }
    });
    assert_eq!(rows, 5);
    let socket_dir = d.runtime_dir().join("egress").join(&cage.id);
    assert!(socket_dir.join("gateway.sock").exists(), "{socket_dir:?}");
    let r = d.delete(&s, &format!("/api/v1/sessions/{}", cage.id));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_exited(&d, &s, &cage.id);
    eventually(Duration::from_secs(10), || {
        (!socket_dir.exists())
            .then_some(())
            .ok_or(format!("{socket_dir:?} outlived its session"))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_cage_keeps_its_gateway_across_a_restart() {
    a_filtered_cage_keeps_its_gateway(Stop::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_cage_keeps_its_gateway_across_kill_9() {
    a_filtered_cage_keeps_its_gateway(Stop::Kill9).await;
}

#[test]
fn a_holder_killed_while_no_daemon_runs_ends_its_session_with_a_reason() {
    let mut d = daemon().env("KAGED_SESSIONS_ON_STOP", "keep").start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    load(&d, &s, proj.path());
    let shell = start(&d, &s, json!({"argv": ["sh", "-c", "exec sleep 1000"]}));
    let _reap = Reap(vec![shell.id.clone()]);
    assert!(d.terminate().success(), "{}", d.stderr());
    let pid = live_holder(&shell.id).expect("the holder outlives the daemon");
    // SAFETY: kill(2) on a pid this test just found.
    assert_eq!(unsafe { libc_kill(pid as i32, 9) }, 0);
    eventually(Duration::from_secs(10), || match live_holder(&shell.id) {
        None => Ok(()),
        Some(p) => Err(format!("holder {p} still runs")),
    });
    let d = d.start_again(None);
    let s = d.login();
    let v = info(&d, &s, &shell.id);
    assert_eq!(
        (v.state, v.end_reason, v.exit_code, v.adopted_at),
        (
            SessionState::Exited,
            Some(EndReason::HolderLost),
            None,
            None
        ),
        "{v:?}"
    );
    let rows = audit_rows(&d, "session.ended");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0.as_deref(), Some(shell.id.as_str()));
    assert_eq!(rows[0].1["end_reason"], "holder_lost");
    assert_eq!(rows[0].1["exit_recorded"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_while_no_daemon_runs_keeps_its_status_and_last_output() {
    let mut d = daemon().env("KAGED_SESSIONS_ON_STOP", "keep").start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    load(&d, &s, proj.path());
    let v = start(
        &d,
        &s,
        json!({"argv": ["sh", "-c", "echo first; sleep 1; echo last-words; exit 3"]}),
    );
    let _reap = Reap(vec![v.id.clone()]);
    assert!(d.terminate().success(), "{}", d.stderr());
    // The program ends meanwhile; its holder records that, keeps what the PTY held, and goes.
    eventually(Duration::from_secs(20), || match live_holder(&v.id) {
        None => Ok(()),
        Some(p) => Err(format!("holder {p} still runs")),
    });
    let d = d.start_again(None);
    let s = d.login();
    let after = info(&d, &s, &v.id);
    assert_eq!(
        (after.state, after.end_reason, after.exit_code),
        (
            SessionState::Exited,
            Some(EndReason::ProcessExited),
            Some(3)
        ),
        "{after:?}"
    );
    let mut ws = d.ws(&format!("/api/v1/sessions/{}/pty", v.id), &s).await;
    hello(&mut ws, 0).await;
    let (out, _) = read_until(&mut ws, "", Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("first\r\nlast-words\r\n"), "{text}");
    let rows = audit_rows(&d, "session.ended");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1["exit_code"], 3);
    assert_eq!(rows[0].1["exit_recorded"], true);
}

#[test]
fn holders_do_not_outlive_their_sessions() {
    // The fixture's daemons end sessions when they stop (`sessions.on_stop = end`).
    let mut d = daemon().start();
    let s = d.login();
    let proj = project_dir(PROJECT);
    load(&d, &s, proj.path());
    let short = start(&d, &s, json!({"argv": ["sh", "-c", "exit 0"]}));
    let long = start(&d, &s, json!({"argv": ["sh", "-c", "exec sleep 1000"]}));
    let _reap = Reap(vec![short.id.clone(), long.id.clone()]);
    wait_exited(&d, &s, &short.id);
    assert!(live_holder(&long.id).is_some());
    eventually(Duration::from_secs(10), || match live_holder(&short.id) {
        None => Ok(()),
        Some(p) => Err(format!("holder {p} outlived its session")),
    });
    let rt = d.runtime_dir();
    assert!(d.terminate().success(), "{}", d.stderr());
    eventually(Duration::from_secs(10), || match live_holder(&long.id) {
        None => Ok(()),
        Some(p) => Err(format!(
            "holder {p} outlived a daemon that ended its sessions"
        )),
    });
    let left: Vec<_> = std::fs::read_dir(&rt).unwrap().collect();
    assert!(left.is_empty(), "holder sockets left: {left:?}");
    let d = d.start_again(None);
    let s = d.login();
    let v = info(&d, &s, &long.id);
    assert_eq!(
        (v.state, v.end_reason),
        (SessionState::Exited, Some(EndReason::Shutdown))
    );
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn the_shipped_units_let_kaged_decide_what_a_stop_does_to_sessions() {
    // systemd must signal only the daemon (it keeps sessions on a restart job and ends them
    // on a stop job), and must not wipe the holders' sockets. No systemd runs here; the
    // units themselves pass `systemd-analyze verify` in examples/deployment/verify-units.sh.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deployment");
    for (unit, wants) in [
        (
            "systemd/kaged.service",
            &["KillMode=process", "RuntimeDirectoryPreserve=yes"][..],
        ),
        ("systemd-user/kaged.service", &["KillMode=process"][..]),
    ] {
        let text = std::fs::read_to_string(root.join(unit)).unwrap();
        let settings: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .collect();
        for want in wants {
            assert!(settings.contains(want), "{unit} lacks {want}");
        }
        assert!(
            !settings.iter().any(|l| l.starts_with("ExecStop")),
            "{unit}: an ExecStop= would also run on a restart"
        );
    }
}

#[test]
fn an_adopted_agent_run_is_followed_from_where_it_is_without_replaying_old_notifications() {
    let mut d = daemon()
        .env("KAGED_SESSIONS_ON_STOP", "keep")
        .config("[sessions]\nagent_idle_ms = 500\n", 0o600)
        .start();
    let s = d.login();
    let proj = project_dir(
        "version: 1\nproject: demo\nprimary:\n  command: [sh, -c, \"printf 'Allow? \\\\a'; sleep 8; printf 'after\\\\n'; sleep 60\"]\n",
    );
    load(&d, &s, proj.path());
    let run = start(&d, &s, json!({"agent": "primary"}));
    let _reap = Reap(vec![run.id.clone()]);
    let state = |d: &TestDaemon, s: &Session| {
        info(d, s, &run.id)
            .agent
            .unwrap_or_else(|| panic!("no agent state"))
    };
    eventually(Duration::from_secs(10), || match state(&d, &s) {
        a if a.status == kaged_api::AgentStatus::Waiting => Ok(a),
        a => Err(format!("not waiting yet: {a:?}")),
    });
    d = d.restart();
    let s = d.login();
    // Followed from where it is: the bell before the restart is not rung again; new output
    // is, and quiet after it is a wait with that output as the reason.
    let waiting = eventually(Duration::from_secs(20), || match state(&d, &s) {
        a if a.reason.as_deref() == Some("after") => Ok(a),
        a => Err(format!("not past `after` yet: {a:?}")),
    });
    assert_eq!(
        (waiting.status, waiting.signal),
        (
            kaged_api::AgentStatus::Waiting,
            kaged_api::AgentSignal::Idle
        )
    );
    let rows: kaged_api::AuditPage = d
        .get_as(
            &s,
            &format!(
                "/api/v1/audit?session_id={}&type=agent.state&limit=100",
                run.id
            ),
        )
        .json_as();
    let bells = rows
        .events
        .iter()
        .filter(|e| e.data["signal"] == "bell")
        .count();
    assert_eq!(bells, 1, "{:?}", rows.events);
    assert!(
        rows.events
            .iter()
            .any(|e| e.data["reason"] == "adopted after a daemon restart"),
        "{:?}",
        rows.events
    );
}

#[test]
fn an_adopted_agent_s_cage_reaches_the_new_daemon_through_its_agent_socket() {
    let mut d = daemon().env("KAGED_SESSIONS_ON_STOP", "keep").start();
    let s = d.login();
    // The agent's own hook helper, run inside its cage once the daemon has been replaced.
    let proj = project_dir(
        "version: 1\nproject: demo\nprimary:\n  command: [sh, -c, \"sleep 6; echo '{\\\"message\\\":\\\"asked after the restart\\\"}' | /run/kaged-agent/kaged __hook notification; sleep 60\"]\n",
    );
    load(&d, &s, proj.path());
    let run = start(&d, &s, json!({"agent": "primary"}));
    let _reap = Reap(vec![run.id.clone()]);
    d = d.restart();
    let s = d.login();
    let state = eventually(Duration::from_secs(30), || {
        let a = info(&d, &s, &run.id).agent.ok_or("no agent state")?;
        (a.reason.as_deref() == Some("asked after the restart"))
            .then_some(a.clone())
            .ok_or_else(|| format!("no notification yet: {a:?}"))
    });
    assert_eq!(
        (state.status, state.signal),
        (
            kaged_api::AgentStatus::Waiting,
            kaged_api::AgentSignal::Hook
        )
    );
}
