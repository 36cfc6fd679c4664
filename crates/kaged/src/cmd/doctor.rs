//! `kaged doctor`: checks what kaged needs on this machine and says how to fix what is missing.

use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use anyhow::Result;
use kaged_config::{Env, Flags, Settings};

use crate::client::layout;
use kaged_daemon::local_user;

enum Verdict {
    Ok(String),
    Warn(String),
    Fail(String),
}

// Long on purpose: a checklist, one check after the other in the order they print.
pub fn run(mode: Option<&str>) -> Result<ExitCode> {
    let layout = layout(mode)?;
    let mut checks: Vec<(&str, Verdict)> = Vec::new();

    checks.push((
        "bubblewrap",
        match kaged_sandbox::self_test() {
            Ok(b) => Verdict::Ok(format!(
                "{} {} runs a real cage",
                b.path.display(),
                b.version
            )),
            Err(e) => Verdict::Fail(e.to_string()),
        },
    ));
    // About this process's cgroup: the daemon's own is what counts (`kaged status`), and under
    // systemd the shipped units delegate one to it.
    checks.push((
        "cgroup limits",
        match kaged_sandbox::inspect_cgroups() {
            kaged_sandbox::CgroupSupport::Delegated { cgroup } => Verdict::Ok(format!(
                "enforced in a cgroup per cage, under the delegated {}",
                cgroup.display()
            )),
            kaged_sandbox::CgroupSupport::SystemdScope { systemd_run } => Verdict::Ok(format!(
                "enforced through {} --user --scope",
                systemd_run.display()
            )),
            kaged_sandbox::CgroupSupport::Unavailable { reason } => Verdict::Warn(format!(
                "{reason}; sessions whose cages set memory, pids or cpu limits are refused \
                 unless the cage or sessions.limits says best-effort (`kaged status` shows what \
                 the running daemon has)"
            )),
        },
    ));

    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    checks.push((
        "user namespaces",
        match userns {
            Some(0) => Verdict::Fail(
                "user.max_user_namespaces is 0; run `sysctl -w user.max_user_namespaces=15000`"
                    .into(),
            ),
            Some(n) => Verdict::Ok(format!("user.max_user_namespaces = {n}")),
            None => Verdict::Warn("cannot read /proc/sys/user/max_user_namespaces".into()),
        },
    ));

    checks.push((
        "runtime dir",
        match std::fs::symlink_metadata(&layout.runtime_dir) {
            Err(_) => Verdict::Ok(format!(
                "{} does not exist yet; `kaged start` creates it 0700",
                layout.runtime_dir.display()
            )),
            Ok(m) if m.file_type().is_symlink() => Verdict::Fail(format!(
                "{} is a symlink; remove it",
                layout.runtime_dir.display()
            )),
            Ok(m) if m.uid() != nix::unistd::geteuid().as_raw() => Verdict::Fail(format!(
                "{} is owned by UID {}; run kaged as that user or chown it",
                layout.runtime_dir.display(),
                m.uid()
            )),
            Ok(m) if m.mode() & 0o077 != 0 => Verdict::Warn(format!(
                "{} has mode {:04o}; kaged tightens it to 0700 at start",
                layout.runtime_dir.display(),
                m.mode() & 0o7777
            )),
            Ok(_) => Verdict::Ok(format!("{} is 0700 and ours", layout.runtime_dir.display())),
        },
    ));

    let user = local_user();
    let linger = std::path::Path::new("/var/lib/systemd/linger").join(&user);
    checks.push((
        "linger",
        match layout.mode {
            kaged_deploy::Mode::System => Verdict::Ok("system mode: not needed".into()),
            kaged_deploy::Mode::User if linger.exists() => Verdict::Ok(format!("enabled for {user}")),
            kaged_deploy::Mode::User => Verdict::Warn(format!(
                "not enabled: a `systemctl --user` kaged stops when you log out; run `loginctl enable-linger {user}`"
            )),
        },
    ));

    checks.push((
        "bind",
        match Settings::resolve(&layout, &Env::capture(), &Flags::default()) {
            Err(e) => Verdict::Fail(format!("config: {e}")),
            Ok(s) if s.bind.value.ip().is_loopback() => Verdict::Ok(format!("{} (loopback)", s.bind.value)),
            Ok(s) if s.sidecar_nonce.is_some() => Verdict::Warn(format!(
                "{} is not loopback; a sidecar nonce is configured, make sure only the sidecar can reach it",
                s.bind.value
            )),
            Ok(s) => Verdict::Fail(format!(
                "{} (from {}) is not loopback and no sidecar nonce is configured; kaged will refuse to start",
                s.bind.value, s.bind.source
            )),
        },
    ));

    let mut failed = false;
    for (name, verdict) in &checks {
        let (tag, msg) = match verdict {
            Verdict::Ok(m) => ("ok  ", m),
            Verdict::Warn(m) => ("warn", m),
            Verdict::Fail(m) => {
                failed = true;
                ("FAIL", m)
            }
        };
        println!("[{tag}] {name}: {msg}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
