//! What the host offers a cage: the bwrap binary, the system directory layout, and how cgroup
//! limits can be applied (a delegated cgroup v2 subtree, or `systemd-run --user --scope`).
//! The probes run once per process and are cached, because the answers do not change while
//! the daemon runs and `compile` sits on the session start path; the one exception is
//! [`setup_cgroups`], which the daemon calls once because it changes the daemon's own cgroup.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cgroup::{self, CONTROLLERS};
use crate::compile::{CageError, CageRequest, compile_on};
use kaged_api::cage::CagePolicy;
pub use kaged_api::status::{BwrapInfo, CgroupSupport};

/// Host paths the cage never shows even though their parent is mounted: in system-wide mode
/// `/etc/kaged` holds the config and possibly the sidecar nonce file, readable by the daemon's
/// UID and therefore by the cage unless masked.
const ALWAYS_MASKED: &[&str] = &["/etc/kaged"];

/// Directories that may be symlinks into `/usr` (merged-usr) or real directories.
const USR_ALIASES: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// One read-only piece of the host's system tree inside the cage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMount {
    RoBind(PathBuf),
    /// Recreate a host symlink (e.g. `/bin -> usr/bin`) rather than binding its target twice.
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
}

/// The host facts the compiler needs. Tests build one by hand so argv comparisons do not
/// depend on the machine; the daemon uses [`HostSystem::detect`] with the `cgroups` that
/// [`setup_cgroups`] chose.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSystem {
    pub bwrap: Option<PathBuf>,
    /// [`HostSystem::detect`] only knows `systemd-run`; delegation is the daemon's to set up.
    pub cgroups: CgroupSupport,
    pub system: Vec<SystemMount>,
    /// Existing host paths from [`ALWAYS_MASKED`].
    pub masks: Vec<PathBuf>,
    /// Where `/etc/resolv.conf` really lives when that is outside `/etc` and `/usr` (e.g.
    /// systemd-resolved's stub in `/run`); bound only for network `host`.
    pub resolv_conf: Option<PathBuf>,
    /// bwrap ≥ 0.8 can forbid nested user namespaces inside the cage (`--disable-userns`);
    /// older ones (Ubuntu 22.04 ships 0.6) still run cages, without that extra hardening.
    pub disable_userns: bool,
}

impl HostSystem {
    /// Whether `path` (symlinks resolved) is in the cage's read-only view of the system.
    pub fn shows(&self, path: &Path) -> bool {
        self.system.iter().any(|m| match m {
            SystemMount::RoBind(dir) => path.starts_with(dir),
            SystemMount::Symlink { .. } => false,
        })
    }

    /// Probes the host once per process.
    pub fn detect() -> &'static HostSystem {
        static HOST: OnceLock<HostSystem> = OnceLock::new();
        HOST.get_or_init(|| {
            let mut system = vec![SystemMount::RoBind("/usr".into())];
            for alias in USR_ALIASES {
                let path = Path::new(alias);
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        if let Ok(target) = std::fs::read_link(path) {
                            system.push(SystemMount::Symlink {
                                target,
                                link: path.into(),
                            });
                        }
                    }
                    Ok(meta) if meta.is_dir() => system.push(SystemMount::RoBind(path.into())),
                    _ => {}
                }
            }
            system.push(SystemMount::RoBind("/etc".into()));
            if Path::new("/opt").is_dir() {
                system.push(SystemMount::RoBind("/opt".into()));
            }
            let resolv_conf = std::fs::canonicalize("/etc/resolv.conf")
                .ok()
                .filter(|p| !p.starts_with("/etc") && !p.starts_with("/usr"));
            let bwrap = find_in_path("bwrap");
            let disable_userns = bwrap.as_ref().is_some_and(|path| {
                run_with_timeout(Command::new(path).arg("--help"), Duration::from_secs(5))
                    .is_ok_and(|out| out.stdout.contains("--disable-userns"))
            });
            HostSystem {
                bwrap,
                disable_userns,
                cgroups: systemd_scope().clone(),
                system,
                masks: ALWAYS_MASKED
                    .iter()
                    .map(PathBuf::from)
                    .filter(|p| p.exists())
                    .collect(),
                resolv_conf,
            }
        })
    }
}

/// How the daemon enforces memory, pids and cpu limits: through cgroup v2 delegation where
/// its own cgroup allows it (set up here: this process moves into a leaf cgroup), else through
/// `systemd-run --user --scope`, else not, with the reason each way failed. Call it once, at
/// the daemon's start and before it spawns anything; `kaged doctor` uses [`inspect_cgroups`].
pub fn setup_cgroups() -> CgroupSupport {
    with_fallback(cgroup::delegatable_here().and_then(|dir| {
        cgroup::take_over(&dir)
            .map(|()| dir)
            .map_err(|e| format!("setting it up failed: {e}"))
    }))
}

/// What [`setup_cgroups`] would choose for this process, changing nothing.
pub fn inspect_cgroups() -> CgroupSupport {
    with_fallback(cgroup::delegatable_here())
}

fn with_fallback(delegation: Result<PathBuf, String>) -> CgroupSupport {
    match delegation {
        Ok(cgroup) => CgroupSupport::Delegated { cgroup },
        Err(why_not) => match systemd_scope() {
            CgroupSupport::Unavailable { reason } => CgroupSupport::Unavailable {
                reason: format!("no delegated cgroup v2 subtree: {why_not}; and {reason}"),
            },
            other => other.clone(),
        },
    }
}

/// Probes once whether `systemd-run --user --scope` can start a scope with memory, pids and
/// cpu limits whose controllers are actually delegated (a scope with an undelegated controller
/// accepts `MemoryMax=` and silently ignores it).
fn systemd_scope() -> &'static CgroupSupport {
    static SUPPORT: OnceLock<CgroupSupport> = OnceLock::new();
    SUPPORT.get_or_init(probe_systemd_scope)
}

fn probe_systemd_scope() -> CgroupSupport {
    let unavailable = |reason: String| CgroupSupport::Unavailable { reason };
    let Some(systemd_run) = find_in_path("systemd-run") else {
        return unavailable(
            "`systemd-run --user --scope` is not available: systemd-run is not installed".into(),
        );
    };
    let mut cmd = Command::new(&systemd_run);
    cmd.args([
        "--user",
        "--scope",
        "--quiet",
        "--collect",
        "-p",
        "MemoryMax=1G",
        "-p",
        "TasksMax=64",
        "-p",
        "CPUQuota=100%",
        "--",
        "cat",
        "/proc/self/cgroup",
    ]);
    let out = match run_with_timeout(&mut cmd, Duration::from_secs(5)) {
        Ok(out) => out,
        Err(e) => {
            return unavailable(format!(
                "`{} --user --scope` could not run: {e}",
                systemd_run.display()
            ));
        }
    };
    if !out.status.success() {
        return unavailable(format!(
            "`systemd-run --user --scope` failed ({}): {}; it needs a user systemd manager with a session bus (for a system service: `loginctl enable-linger`)",
            out.status,
            out.stderr.trim()
        ));
    }
    let Some(scope) = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
    else {
        return unavailable(format!(
            "a `systemd-run --user --scope` scope is not on the unified cgroup v2 hierarchy (its /proc/self/cgroup: {:?})",
            out.stdout.trim()
        ));
    };
    let parent = Path::new("/sys/fs/cgroup")
        .join(scope.trim_start_matches('/'))
        .parent()
        .map(|p| p.join("cgroup.subtree_control"));
    let subtree = parent
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let missing = missing_controllers(&subtree);
    if missing.is_empty() {
        CgroupSupport::SystemdScope { systemd_run }
    } else {
        unavailable(format!(
            "the user systemd manager does not delegate the {} cgroup controller(s) to `systemd-run --user --scope` (checked {}), so those limits would be ignored; enable delegation (`Delegate=pids memory cpu` for user@.service)",
            missing.join(", "),
            parent.map(|p| p.display().to_string()).unwrap_or_default()
        ))
    }
}

/// The controllers kaged's limits need that a cgroup's `cgroup.subtree_control` lacks.
fn missing_controllers(subtree_control: &str) -> Vec<&'static str> {
    let enabled: Vec<&str> = subtree_control.split_whitespace().collect();
    CONTROLLERS
        .into_iter()
        .filter(|c| !enabled.contains(c))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    #[error(
        "bubblewrap (`bwrap`) was not found in PATH ({searched}); install it (e.g. `apt-get install bubblewrap`) or start kaged with --no-sandbox"
    )]
    MissingBinary { searched: String },
    #[error(
        "{path} cannot create user namespaces: {reason}; enable unprivileged user namespaces (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, or an AppArmor profile allowing bwrap) or start kaged with --no-sandbox"
    )]
    NoUserNamespaces { path: PathBuf, reason: String },
    #[error(
        "{path} ({version}) does not support the options kaged needs (--bind-fd, --ro-bind-fd; bubblewrap 0.5 or newer): {stderr}; upgrade bubblewrap or start kaged with --no-sandbox"
    )]
    Unsupported {
        path: PathBuf,
        version: String,
        stderr: String,
    },
    #[error("the self-test cage of {path} failed ({status}): {stderr}")]
    Failed {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("could not run {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not create a temporary project for the bwrap self-test: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("could not compile the self-test cage: {0}")]
    Compile(#[from] CageError),
}

/// Runs a real default cage (`true` in a temporary project) with exactly the flags every
/// session uses, so a host that passes can run sessions and one that fails says why.
pub fn self_test() -> Result<BwrapInfo, SelfTestError> {
    let host = HostSystem::detect();
    let Some(path) = host.bwrap.clone() else {
        return Err(SelfTestError::MissingBinary {
            searched: std::env::var("PATH").unwrap_or_default(),
        });
    };
    let spawn_err = |source| SelfTestError::Spawn {
        path: path.clone(),
        source,
    };
    let version_out =
        run_with_timeout(Command::new(&path).arg("--version"), Duration::from_secs(5))
            .map_err(spawn_err)?;
    let version = version_out
        .stdout
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();

    let project = tempfile::Builder::new()
        .prefix("kaged-selftest-")
        .tempdir()
        .map_err(SelfTestError::TempDir)?;
    let policy = CagePolicy::default();
    let argv = ["true".to_owned()];
    let cage = compile_on(
        &CageRequest {
            project_root: project.path(),
            policy: &policy,
            argv: &argv,
            env_values: &[],
            deny: &[],
            scratch_dir: None,
            pty: false,
            cwd: None,
            egress: None,
            hook: None,
            linked_git: None,
            program: None,
        },
        host,
    )?;
    let out = run_with_timeout(&mut cage.command(), Duration::from_secs(10)).map_err(spawn_err)?;
    drop(cage);
    if out.status.success() {
        return Ok(BwrapInfo { path, version });
    }
    let stderr = out.stderr.trim().to_owned();
    if stderr.contains("Unknown option") || stderr.contains("Unknown action") {
        return Err(SelfTestError::Unsupported {
            path,
            version,
            stderr,
        });
    }
    if let Some(reason) = userns_blocker(&stderr) {
        return Err(SelfTestError::NoUserNamespaces { path, reason });
    }
    Err(SelfTestError::Failed {
        path,
        status: out.status.to_string(),
        stderr,
    })
}

/// Names why bwrap could not create its namespaces, preferring the sysctl that explains it.
fn userns_blocker(stderr: &str) -> Option<String> {
    let sysctl = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_owned())
    };
    if sysctl("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("sysctl user.max_user_namespaces is 0".into());
    }
    if sysctl("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("sysctl kernel.unprivileged_userns_clone is 0".into());
    }
    if sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
        && (stderr.contains("Permission denied") || stderr.contains("Operation not permitted"))
    {
        return Some(format!(
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): {stderr}"
        ));
    }
    let lower = stderr.to_ascii_lowercase();
    (lower.contains("namespace") || lower.contains("uid map") || lower.contains("uid_map"))
        .then(|| stderr.to_owned())
}

/// The first executable `name` on `PATH`, read once at start-up.
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| OsStr::new("/usr/local/bin:/usr/bin:/bin").to_owned());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub(crate) struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a short probe, killing it after `timeout` so a wedged user bus cannot hang start-up.
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Captured> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    Ok(Captured {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn missing_controllers_names_each_undelegated_one() {
        assert_eq!(
            missing_controllers("cpuset cpu io memory pids\n"),
            Vec::<&str>::new()
        );
        assert_eq!(missing_controllers("memory pids"), vec!["cpu"]);
        assert_eq!(missing_controllers(""), vec!["memory", "pids", "cpu"]);
    }

    #[test]
    fn userns_blocker_recognises_bwrap_namespace_errors() {
        // Only meaningful where the sysctls allow user namespaces, as on CI.
        if std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .is_ok_and(|v| v.trim() == "0")
        {
            return;
        }
        assert_eq!(
            userns_blocker("bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces."),
            Some("bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.".to_owned())
        );
        assert_eq!(
            userns_blocker("bwrap: execvp nope: No such file or directory"),
            None
        );
    }

    #[test]
    fn detected_host_mounts_usr_and_etc_read_only() {
        let host = HostSystem::detect();
        assert!(host.system.contains(&SystemMount::RoBind("/usr".into())));
        assert!(host.system.contains(&SystemMount::RoBind("/etc".into())));
    }
}
