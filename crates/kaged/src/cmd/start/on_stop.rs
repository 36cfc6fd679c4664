//! Whether a graceful stop ends sessions or leaves them to their holders (`sessions.on_stop`).
//!
//! The shipped units use `KillMode=process`: systemd signals only the daemon, and the daemon
//! decides. With `auto` it asks systemd which job is stopping its unit: a `restart` (also what
//! `try-restart` and `reload-or-restart` become) keeps sessions for the next daemon, a `stop`
//! (`systemctl stop`, or the machine shutting down) ends them cleanly. Outside systemd, or
//! when systemd cannot be asked, sessions are kept: the next daemon adopts them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kaged_config::SessionsOnStop;

/// The decision itself, from the setting and the job systemd is running on the unit.
pub(super) fn end_sessions(on_stop: SessionsOnStop, job: Option<&str>) -> bool {
    match on_stop {
        SessionsOnStop::Keep => false,
        SessionsOnStop::End => true,
        SessionsOnStop::Auto => job == Some("stop"),
    }
}

/// This process's systemd unit and whether a user manager runs it, from the unified
/// hierarchy's line of `/proc/self/cgroup` (`0::/system.slice/kaged.service/daemon`, or
/// `0::/user.slice/user-1000.slice/user@1000.service/app.slice/kaged.service`).
pub(super) fn own_unit(proc_cgroup: &str) -> Option<(String, bool)> {
    let path = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim();
    let unit = path
        .split('/')
        .rfind(|c| c.ends_with(".service") && !c.starts_with("user@"))?;
    let user = path.split('/').any(|c| c.starts_with("user@"));
    Some((unit.to_owned(), user))
}

/// The type of the job systemd runs on `unit`, from `systemctl list-jobs --no-legend --plain`
/// (`JOB UNIT TYPE STATE` per line).
pub(super) fn job_type<'a>(list_jobs: &'a str, unit: &str) -> Option<&'a str> {
    list_jobs.lines().find_map(|line| {
        let mut cols = line.split_whitespace();
        let (_id, u, kind) = (cols.next()?, cols.next()?, cols.next()?);
        (u == unit).then_some(kind)
    })
}

/// Asks systemd (through `systemctl`, with a deadline) which job it runs on our unit. `None`
/// outside systemd or when it cannot be asked.
pub(super) fn systemd_job() -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let (unit, user) = own_unit(&cgroup)?;
    let mut cmd = Command::new("systemctl");
    if user {
        cmd.arg("--user");
    }
    cmd.args(["list-jobs", "--no-legend", "--plain", "--full", &unit])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().ok()?;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!("systemctl list-jobs did not answer; keeping sessions");
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    let job = job_type(&out, &unit).map(str::to_owned);
    tracing::info!(unit, job = ?job, "systemd's job on this unit");
    job
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn auto_ends_sessions_only_when_systemd_stops_the_unit_for_good() {
        use SessionsOnStop::{Auto, End, Keep};
        let cases = [
            (Auto, Some("stop"), true),
            (Auto, Some("restart"), false),
            (Auto, Some("start"), false),
            (Auto, None, false),
            (Keep, Some("stop"), false),
            (Keep, None, false),
            (End, Some("restart"), true),
            (End, None, true),
        ];
        for (on_stop, job, want) in cases {
            assert_eq!(
                end_sessions(on_stop, job),
                want,
                "{on_stop} with job {job:?}"
            );
        }
    }

    #[test]
    fn the_unit_comes_from_the_unified_cgroup_line() {
        assert_eq!(
            own_unit(
                "12:pids:/system.slice/kaged.service\n0::/system.slice/kaged.service/daemon\n"
            ),
            Some(("kaged.service".to_owned(), false))
        );
        assert_eq!(
            own_unit(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/kaged.service/daemon\n"
            ),
            Some(("kaged.service".to_owned(), true))
        );
        assert_eq!(
            own_unit("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(own_unit("0::/\n"), None);
    }

    #[test]
    fn the_job_type_is_read_from_list_jobs() {
        let out = "4711 kaged.service restart running\n4712 other.service stop waiting\n";
        assert_eq!(job_type(out, "kaged.service"), Some("restart"));
        assert_eq!(job_type(out, "other.service"), Some("stop"));
        assert_eq!(job_type("", "kaged.service"), None);
    }
}
