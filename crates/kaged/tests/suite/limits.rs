//! Limits are never silently weaker, and insecure mode never opens the API to a cage (design
//! §7, ADR-0007). Every test here says which kind of host it ran on: one where memory, pids
//! and cpu limits are enforced (a cgroup v2 subtree delegated to kaged, or `systemd-run
//! --user`) or one where they cannot be. The tests that enforce limits for real need a cgroup
//! to delegate to a daemon; where the host has none they print a SKIPPED line naming what it
//! lacks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kaged_api::{
    AuditPage, CageState, CageSummary, CgroupLimits, CgroupSupport, EndReason, ErrorCode,
    LimitMechanism, ProjectView, SessionInfo, SessionList, SessionState, Status,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::fixture::{Response, Session, TestDaemon, daemon, eventually, project_dir};

const PRIMARY: &str = "the primary agent (shells and commands run in its cage)";

fn load(d: &TestDaemon, s: &Session, root: &Path) -> ProjectView {
    let r = d.post(s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

fn post_session(d: &TestDaemon, s: &Session, project: &str, body: Value) -> Response {
    d.post(s, &format!("/api/v1/projects/{project}/sessions"), &body)
}

fn start(d: &TestDaemon, s: &Session, project: &str, body: Value) -> SessionInfo {
    let r = post_session(d, s, project, body);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

fn wait_exited(d: &TestDaemon, s: &Session, id: &str) -> SessionInfo {
    eventually(Duration::from_secs(30), || {
        let v: SessionInfo = d.get_as(s, &format!("/api/v1/sessions/{id}")).json_as();
        if v.state == SessionState::Exited {
            Ok(v)
        } else {
            Err(format!("session {id} never exited: {v:?}"))
        }
    })
}

/// How the running daemon enforces limits, announced for whoever reads the test log.
fn cgroups(d: &TestDaemon, s: &Session, test: &str) -> CgroupSupport {
    let status: Status = d.get_as(s, "/api/v1/status").json_as();
    eprintln!("limits::{test}: this host: {:?}", status.sandbox.cgroups);
    status.sandbox.cgroups
}

fn summary(info: &SessionInfo) -> &CageSummary {
    match &info.origin.cage {
        CageState::Caged { summary } => summary,
        other => panic!("not caged: {other:?}"),
    }
}

fn limits_project(name: &str, limits: &str) -> tempfile::TempDir {
    project_dir(&format!(
        "version: 1\nproject: {name}\nprimary:\n  command: [sh]\n  cage:\n    limits: {limits}\n"
    ))
}

#[test]
fn a_limit_this_host_cannot_enforce_refuses_the_start_and_says_why() {
    let d = daemon().start();
    let s = d.login();
    let proj = limits_project("strict", "{memory: 64M, pids: 32}");
    load(&d, &s, proj.path());
    let r = post_session(&d, &s, "strict", json!({"argv": ["true"]}));
    match cgroups(
        &d,
        &s,
        "a_limit_this_host_cannot_enforce_refuses_the_start_and_says_why",
    ) {
        CgroupSupport::Unavailable { reason } => {
            assert_eq!(r.status, 400, "{}", r.body);
            let e = r.error().error;
            assert_eq!(e.code, ErrorCode::ValidationFailed);
            assert_eq!(
                e.message,
                format!(
                    "the limits of {PRIMARY} (memory = 64M, pids = 32) cannot be enforced on \
                     this host: {reason}. Limit enforcement is strict (the default), so the \
                     session was not started. To enforce them, run kaged in a cgroup delegated \
                     to it (systemd `Delegate=yes`, as the shipped units set) or where \
                     `systemd-run --user --scope` works; to run without them, add `enforce: \
                     best-effort` to the cage's limits, or set `[sessions] limits = \
                     \"best-effort\"` in config.toml (KAGED_SESSIONS_LIMITS)"
                )
            );
            let listed: SessionList = d.get_as(&s, "/api/v1/projects/strict/sessions").json_as();
            assert_eq!(listed.sessions, vec![], "nothing ran");
        }
        enforced => {
            assert_eq!(r.status, 200, "{enforced:?}: {}", r.body);
            let info: SessionInfo = r.json_as();
            assert!(
                matches!(summary(&info).cgroup_limits, CgroupLimits::Enforced { .. }),
                "{info:?}"
            );
        }
    }
}

/// The `cage.limits_not_enforced` rows of a session, as `(reason, allowed_by)`.
fn not_enforced_rows(d: &TestDaemon, s: &Session, id: &str) -> Vec<Value> {
    let page: AuditPage = d
        .get_as(
            s,
            &format!("/api/v1/audit?type=cage.limits_not_enforced&session_id={id}"),
        )
        .json_as();
    page.events.into_iter().map(|e| e.data).collect()
}

#[test]
fn a_project_may_run_its_own_limits_best_effort_and_it_shows_in_the_summary_and_the_audit_log() {
    let d = daemon().start();
    let s = d.login();
    let proj = limits_project("lenient", "{memory: 64M, enforce: best-effort}");
    load(&d, &s, proj.path());
    let info = start(&d, &s, "lenient", json!({"argv": ["sleep", "30"]}));
    let test = "a_project_may_run_its_own_limits_best_effort";
    match cgroups(&d, &s, test) {
        CgroupSupport::Unavailable { reason } => {
            let allowed_by = format!("`enforce: best-effort` in the limits of {PRIMARY}");
            assert_eq!(
                summary(&info).cgroup_limits,
                CgroupLimits::BestEffort {
                    reason: reason.clone(),
                    allowed_by: allowed_by.clone()
                }
            );
            let rows = eventually(Duration::from_secs(10), || {
                let rows = not_enforced_rows(&d, &s, &info.id);
                if rows.is_empty() {
                    Err("no cage.limits_not_enforced row".to_owned())
                } else {
                    Ok(rows)
                }
            });
            assert_eq!(
                rows,
                vec![
                    json!({"limits": {"memory": 64 << 20, "enforce": "best-effort"},
                            "reason": reason, "allowed_by": allowed_by,
                            "kind": "command", "name": null})
                ]
            );
        }
        enforced => {
            assert!(
                matches!(summary(&info).cgroup_limits, CgroupLimits::Enforced { .. }),
                "{enforced:?}: best-effort still enforces where it can: {info:?}"
            );
            assert_eq!(not_enforced_rows(&d, &s, &info.id), Vec::<Value>::new());
        }
    }
    assert_eq!(
        d.delete(&s, &format!("/api/v1/sessions/{}", info.id))
            .status,
        200
    );
}

#[test]
fn the_operators_setting_decides_for_every_cage_when_it_is_set() {
    let test = "the_operators_setting_decides_for_every_cage_when_it_is_set";
    // The operator allows best-effort: a cage that asks for strict runs anyway, visibly.
    let lenient = daemon()
        .config("[sessions]\nlimits = \"best-effort\"\n", 0o600)
        .start();
    let s = lenient.login();
    let proj = limits_project("ops", "{pids: 32}");
    load(&lenient, &s, proj.path());
    let info = start(&lenient, &s, "ops", json!({"argv": ["true"]}));
    if let CgroupSupport::Unavailable { reason } = cgroups(&lenient, &s, test) {
        let config = lenient.home().join(".config/kaged/config.toml");
        assert_eq!(
            summary(&info).cgroup_limits,
            CgroupLimits::BestEffort {
                reason,
                allowed_by: format!(
                    "sessions.limits = \"best-effort\" from {}, which overrides the cage's \
                     `enforce: strict`",
                    config.display()
                )
            }
        );
    }
    drop(lenient);

    // The operator demands strict: a project cannot relax it for itself.
    let strict = daemon().env("KAGED_SESSIONS_LIMITS", "strict").start();
    let s = strict.login();
    let proj = limits_project("ops", "{pids: 32, enforce: best-effort}");
    load(&strict, &s, proj.path());
    let r = post_session(&strict, &s, "ops", json!({"argv": ["true"]}));
    if let CgroupSupport::Unavailable { .. } = cgroups(&strict, &s, test) {
        assert_eq!(r.status, 400, "{}", r.body);
        let message = r.error().error.message;
        assert!(
            message.contains(
                "Limit enforcement is strict (sessions.limits = \"strict\" from env \
                 KAGED_SESSIONS_LIMITS, which overrides the cage's `enforce: best-effort`)"
            ) && message.ends_with(
                "set sessions.limits (now from env KAGED_SESSIONS_LIMITS) to \"best-effort\", \
                 or unset it so that each cage's `limits.enforce` decides"
            ),
            "{message}"
        );
    } else {
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn walltime_still_ends_a_session_under_no_sandbox() {
    let d = daemon().arg("--no-sandbox").start();
    let s = d.login();
    let proj = limits_project("late", "{walltime: 1}");
    load(&d, &s, proj.path());
    let started = Instant::now();
    let info = start(&d, &s, "late", json!({"argv": ["sleep", "60"]}));
    assert_eq!(info.origin.cage, CageState::NoSandbox);
    let done = wait_exited(&d, &s, &info.id);
    assert_eq!(done.end_reason, Some(EndReason::Walltime), "{done:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "{done:?}");
}

#[test]
fn insecure_mode_refuses_a_cage_on_the_host_network_and_says_why() {
    let d = daemon()
        .arg("--insecure")
        .env("KAGED_INSECURE_REASON", "limits test")
        .start();
    let s = d.login_insecure();
    let proj = project_dir(
        "version: 1\nproject: online\nprimary:\n  command: [sh]\n  cage:\n    network: host\n",
    );
    load(&d, &s, proj.path());
    let r = post_session(&d, &s, "online", json!({"argv": ["true"]}));
    assert_eq!(r.status, 400, "{}", r.body);
    let e = r.error().error;
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert_eq!(
        e.message,
        format!(
            "{PRIMARY} asks for `network: host`, which is refused while kaged runs in insecure \
             auth mode (ADR-0007): the API then answers anyone who reaches it, so a cage on the \
             host's network could call it and start an uncaged session. Use `network: none` \
             for this cage, or `network: {{allow: [host, ...]}}` to reach named hosts through \
             its egress gateway, or run kaged with auth (auth.mode = \"loopback\" or \
             \"sidecar\") instead of --insecure"
        )
    );
    // A cage without network cannot reach the API, so it still runs.
    let offline = start(
        &d,
        &s,
        "online",
        json!({"argv": ["true"], "cage": {"network": "none"}}),
    );
    assert!(offline.origin.cage.is_caged());
}

/// A cgroup v2 directory of its own for one daemon: a child of the cgroup2 root with the
/// memory, pids and cpu controllers, as systemd makes for a unit with `Delegate=yes`.
/// Removed, with what the daemon made in it, once the daemon is gone.
struct TestCgroup(PathBuf);

impl TestCgroup {
    /// `Err` names what this host lacks.
    fn new(test: &str) -> Result<TestCgroup, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = mountinfo
            .lines()
            .find_map(|l| {
                let (mount, fs) = l.split_once(" - ")?;
                let point = mount.split(' ').nth(4)?;
                fs.starts_with("cgroup2 ").then(|| PathBuf::from(point))
            })
            .ok_or("no cgroup2 filesystem is mounted")?;
        let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
        let controllers = read("cgroup.controllers");
        let missing: Vec<&str> = ["memory", "pids", "cpu"]
            .into_iter()
            .filter(|c| !controllers.split_whitespace().any(|x| x == *c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "cgroup2 at {} has no {} controller (its cgroup.controllers: {:?}; they are \
                 bound to cgroup v1 here)",
                root.display(),
                missing.join(", "),
                controllers.trim()
            ));
        }
        for c in ["memory", "pids", "cpu"] {
            if !read("cgroup.subtree_control")
                .split_whitespace()
                .any(|x| x == c)
            {
                std::fs::write(root.join("cgroup.subtree_control"), format!("+{c}")).map_err(
                    |e| {
                        format!(
                            "cannot enable the {c} controller below {}: {e}",
                            root.display()
                        )
                    },
                )?;
            }
        }
        let dir = root.join(format!("kaged-test-{}-{test}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create a cgroup at {}: {e}", dir.display()))?;
        Ok(TestCgroup(dir))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let children: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .map(|e| {
                e.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        for dir in children.iter().chain([&self.0]) {
            while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A daemon alone in a cgroup of its own, or `None` after printing why this host cannot
/// give one. Dropped in order: the daemon, then its cgroup.
fn delegated_daemon(test: &str) -> Option<(TestDaemon, TestCgroup)> {
    let cg = match TestCgroup::new(test) {
        Ok(cg) => cg,
        Err(lacks) => {
            eprintln!(
                "SKIPPED limits::{test}: needs a cgroup v2 subtree to delegate to kaged, and {lacks}"
            );
            return None;
        }
    };
    let d = daemon().in_cgroup(&cg.0).start();
    Some((d, cg))
}

/// Starts `argv` under `limits` in a delegated daemon and returns the session and its cgroup.
fn start_limited(
    d: &TestDaemon,
    s: &Session,
    cg: &TestCgroup,
    test: &str,
    limits: &str,
    argv: &[&str],
) -> (SessionInfo, PathBuf) {
    assert_eq!(
        cgroups(d, s, test),
        CgroupSupport::Delegated {
            cgroup: cg.0.clone()
        },
        "the host can delegate a cgroup, so the daemon must use it:\n{}",
        d.stderr()
    );
    let proj = limits_project("limited", limits);
    load(d, s, proj.path());
    let info = start(d, s, "limited", json!({"argv": argv}));
    let CgroupLimits::Enforced {
        via: LimitMechanism::DelegatedCgroup,
        cgroup: Some(own),
    } = summary(&info).cgroup_limits.clone()
    else {
        panic!("not enforced in a cgroup of its own: {info:?}");
    };
    assert_eq!(own.parent(), Some(cg.0.as_path()));
    (info, own)
}

fn knob(cgroup: &Path, file: &str) -> String {
    std::fs::read_to_string(cgroup.join(file)).unwrap_or_default()
}

fn transcript(d: &TestDaemon, s: &Session, id: &str) -> String {
    d.get_as(s, &format!("/api/v1/sessions/{id}/transcript"))
        .body
}

/// Waits up to a minute for `needle` in the session's transcript; `failure` says what did not
/// happen otherwise.
fn transcript_shows(d: &TestDaemon, s: &Session, id: &str, needle: &str, failure: &str) {
    eventually(Duration::from_secs(60), || {
        let out = transcript(d, s, id);
        if out.contains(needle) {
            Ok(())
        } else {
            Err(format!("{failure}: {out:?}"))
        }
    });
}

/// Ends the session and waits for its cgroup to be gone.
fn end_and_check_removed(d: &TestDaemon, s: &Session, id: &str, own: &Path) {
    assert_eq!(d.delete(s, &format!("/api/v1/sessions/{id}")).status, 200);
    wait_exited(d, s, id);
    eventually(Duration::from_secs(10), || {
        if own.exists() {
            Err(format!("{} is still there", own.display()))
        } else {
            Ok(())
        }
    });
}

#[test]
fn a_memory_hog_is_killed_at_the_memory_limit() {
    let test = "a_memory_hog_is_killed_at_the_memory_limit";
    let Some((d, cg)) = delegated_daemon(test) else {
        return;
    };
    let s = d.login();
    let daemon_leaf = knob(&cg.0, "daemon/cgroup.procs");
    assert_eq!(
        daemon_leaf.trim(),
        d.pid().to_string(),
        "the daemon moved into its leaf"
    );
    // `tail` keeps the last lines of its input, and /dev/zero is one endless line.
    let hog = "head -c 512M /dev/zero | tail; echo hog-status=$?; sleep 60";
    let (info, own) = start_limited(&d, &s, &cg, test, "{memory: 64M}", &["sh", "-c", hog]);
    assert_eq!(knob(&own, "memory.max").trim(), "67108864");
    transcript_shows(&d, &s, &info.id, "hog-status=137", "the hog was not killed");
    let events = knob(&own, "memory.events");
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "{events}"
    );
    end_and_check_removed(&d, &s, &info.id, &own);
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let test = "a_fork_bomb_stops_at_the_pids_limit";
    let Some((d, cg)) = delegated_daemon(test) else {
        return;
    };
    let s = d.login();
    // The bomb gives up when fork fails; bash then waits with builtins only, forking nothing.
    let bomb = "sh -c 'while :; do sleep 60 & done' 2>/dev/null; echo bomb-stopped; \
                while :; do read -t 1 x; done";
    let (info, own) = start_limited(&d, &s, &cg, test, "{pids: 16}", &["bash", "-c", bomb]);
    assert_eq!(knob(&own, "pids.max").trim(), "16");
    transcript_shows(&d, &s, &info.id, "bomb-stopped", "the bomb did not stop");
    let current: u32 = knob(&own, "pids.current").trim().parse().unwrap();
    assert!(current <= 16, "pids.current = {current}");
    let events = knob(&own, "pids.events");
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("max ") && l != "max 0"),
        "no fork was refused: {events}"
    );
    end_and_check_removed(&d, &s, &info.id, &own);
}

#[test]
fn a_busy_loop_is_throttled_to_the_cpu_limit() {
    let test = "a_busy_loop_is_throttled_to_the_cpu_limit";
    let Some((d, cg)) = delegated_daemon(test) else {
        return;
    };
    let s = d.login();
    let (info, own) = start_limited(
        &d,
        &s,
        &cg,
        test,
        "{cpu: 0.2}",
        &["sh", "-c", "while :; do :; done"],
    );
    assert_eq!(knob(&own, "cpu.max").trim(), "20000 100000");
    let usage = |own: &Path| -> (u64, u64) {
        let stat = knob(own, "cpu.stat");
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        (field("usage_usec "), field("nr_throttled "))
    };
    let (before, _) = usage(&own);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (after, throttled) = usage(&own);
    let share = (after - before) as f64 / window.elapsed().as_micros() as f64;
    assert!(throttled > 0, "never throttled");
    assert!(share < 0.3, "used {share:.2} CPUs with a limit of 0.2");
    end_and_check_removed(&d, &s, &info.id, &own);
}
