//! Memory, pids and cpu limits through cgroup v2 delegation (design §7: "where cgroups
//! allow").
//!
//! When the daemon's own cgroup is delegated to its UID (a systemd unit with `Delegate=yes`,
//! or a container cgroup it has to itself), the daemon moves itself into a leaf `daemon/` (a
//! cgroup that enables controllers for its children may hold no processes itself) and every
//! cage gets a child `cage-<pid>-<n>/` with `memory.max`, `memory.swap.max`, `pids.max` and
//! `cpu.max` written. The cage's first process joins it between fork and exec
//! ([`kaged_pty::join_cgroup`]), so nothing the cage starts ever runs outside it.
//!
//! rlimits are not used, because none of them is the limit a policy states: `RLIMIT_NPROC`
//! counts every process of the UID (the daemon and every other cage included, and root
//! ignores it), `RLIMIT_AS` caps address space rather than memory use (JIT runtimes reserve
//! far more than they touch, while tmpfs and the page cache escape it), and `RLIMIT_CPU` is CPU
//! seconds per process, not a share of the machine.
//!
//! Everything here takes the cgroup filesystem's paths and `/proc` texts as arguments, so the
//! rules are unit-tested against a fake tree in a temporary directory.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kaged_api::cage::Limits;

/// The controllers kaged's limits need, in the order they are reported.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The leaf the daemon moves itself into.
const DAEMON_LEAF: &str = "daemon";
/// Prefix of the cgroups made for cages.
const CAGE_PREFIX: &str = "cage-";
/// `cpu.max` period, in microseconds (the kernel's default).
const CPU_PERIOD: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The cgroup v2 directory of the process whose `/proc/<pid>/cgroup` and
/// `/proc/<pid>/mountinfo` these are, or why it has none.
pub(crate) fn own_cgroup_dir(proc_cgroup: &str, mountinfo: &str) -> Result<PathBuf, String> {
    let Some(path) = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Err(
            "this process is in no cgroup v2 hierarchy (/proc/self/cgroup has no `0::` line)"
                .into(),
        );
    };
    let path = Path::new(path.trim());
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.get(dash + 1) != Some(&"cgroup2") || fields.len() < 5 {
            continue;
        }
        let (root, mount_point) = (unescape(fields[3]), unescape(fields[4]));
        if let Ok(rel) = path.strip_prefix(&root) {
            return Ok(if rel.as_os_str().is_empty() {
                PathBuf::from(mount_point)
            } else {
                Path::new(&mount_point).join(rel)
            });
        }
    }
    Err(format!(
        "no cgroup2 filesystem that holds this process's cgroup {} is mounted",
        path.display()
    ))
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why `dir`, this process's cgroup, cannot be kaged's delegated subtree: it must offer the
/// memory, pids and cpu controllers, belong to kaged's UID (systemd hands a `Delegate=yes`
/// unit's cgroup to its `User=`) and hold no process but this one, so that moving "everyone"
/// into the leaf moves only kaged. `proc_cgroup` is only read to explain a hybrid host.
pub(crate) fn check_delegated(
    dir: &Path,
    proc_cgroup: &str,
    euid: u32,
    own_pid: u32,
) -> Result<(), String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("cannot read {}: {e}", dir.join(name).display()))
    };
    let available = read("cgroup.controllers")?;
    let available: Vec<&str> = available.split_whitespace().collect();
    let missing: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| !available.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(lacking(dir, &available, &missing, proc_cgroup));
    }
    if let Ok(kind) = std::fs::read_to_string(dir.join("cgroup.type"))
        && kind.trim() != "domain"
    {
        return Err(format!(
            "{} is a `{}` cgroup; kaged needs a domain cgroup",
            dir.display(),
            kind.trim()
        ));
    }
    if euid != 0 {
        let files = ["cgroup.procs", "cgroup.subtree_control"].map(|f| dir.join(f));
        for path in std::iter::once(dir.to_owned()).chain(files) {
            let owner = std::fs::metadata(&path)
                .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?
                .uid();
            if owner != euid {
                return Err(format!(
                    "{} belongs to uid {owner}, not to kaged's uid {euid}, so it is not delegated to kaged",
                    path.display()
                ));
            }
        }
    }
    let procs = read("cgroup.procs")?;
    let own_pid = own_pid.to_string();
    let others: Vec<&str> = procs.split_whitespace().filter(|p| *p != own_pid).collect();
    if let Some(first) = others.first() {
        return Err(format!(
            "{} also holds {} other process(es) (pid {first}{}), so it is not kaged's own",
            dir.display(),
            others.len(),
            if others.len() > 1 { ", …" } else { "" }
        ));
    }
    Ok(())
}

/// Which controllers `dir` lacks, and, on a hybrid host, that cgroup v1 holds them.
fn lacking(dir: &Path, available: &[&str], missing: &[&str], proc_cgroup: &str) -> String {
    let in_v1: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|c| {
            proc_cgroup.lines().any(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|list| list.split(',').any(|x| x == *c))
            })
        })
        .collect();
    let what = if available.is_empty() {
        format!("cgroup2 at {} has no controllers", dir.display())
    } else {
        format!(
            "cgroup2 at {} lacks the {} controller(s) (it has {})",
            dir.display(),
            missing.join(", "),
            available.join(", ")
        )
    };
    if in_v1.is_empty() {
        what
    } else {
        format!(
            "{what}; {} are bound to cgroup v1 hierarchies (a hybrid cgroup layout)",
            in_v1.join(", ")
        )
    }
}

/// Makes the checked `dir` ready for cage cgroups: its processes (only this one, as
/// [`check_delegated`] made sure) move into the leaf `daemon/`, then the controllers are
/// enabled for its children. Empty cage cgroups an earlier daemon left behind are removed.
pub(crate) fn take_over(dir: &Path) -> Result<(), CgroupError> {
    let leaf = dir.join(DAEMON_LEAF);
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create", &leaf)(e)),
    }
    let procs_file = dir.join("cgroup.procs");
    let procs = std::fs::read_to_string(&procs_file).map_err(io_err("read", &procs_file))?;
    let leaf_procs = leaf.join("cgroup.procs");
    for pid in procs.split_whitespace() {
        std::fs::write(&leaf_procs, pid).map_err(io_err("move this process into", &leaf_procs))?;
    }
    let subtree = dir.join("cgroup.subtree_control");
    let enable: Vec<String> = CONTROLLERS.iter().map(|c| format!("+{c}")).collect();
    std::fs::write(&subtree, enable.join(" "))
        .map_err(io_err("enable controllers in", &subtree))?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(CAGE_PREFIX) {
                // Fails, as it should, on one that still holds processes.
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
    Ok(())
}

/// One cage's cgroup, with its limits written. Dropping it removes the directory (for a cage
/// that never started); a cage that ran is removed with [`CageCgroup::remove`].
#[derive(Debug)]
pub struct CageCgroup {
    path: PathBuf,
    /// `cgroup.procs`, open for writing: the cage's first process writes `0` to it.
    procs: Option<OwnedFd>,
    removed: bool,
}

impl CageCgroup {
    /// Creates a fresh child of the delegated `parent` and writes the limits the policy sets.
    pub(crate) fn create(parent: &Path, limits: &Limits) -> Result<CageCgroup, CgroupError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("{CAGE_PREFIX}{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => break path,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        };
        let mut cgroup = CageCgroup {
            path,
            procs: None,
            removed: false,
        };
        for (knob, value) in knobs(limits) {
            let file = cgroup.path.join(knob);
            // Swap accounting may be off; then there is no swap to limit either.
            if knob == "memory.swap.max" && !file.exists() {
                continue;
            }
            std::fs::write(&file, value).map_err(io_err("write", &file))?;
        }
        let procs = cgroup.path.join("cgroup.procs");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&procs)
            .map_err(io_err("open", &procs))?;
        cgroup.procs = Some(file.into());
        Ok(cgroup)
    }

    /// The cgroup of a cage an earlier daemon started, for a daemon that adopted the session:
    /// it removes the cgroup once the cage ends, as the one that created it would have.
    pub fn existing(path: PathBuf) -> CageCgroup {
        CageCgroup {
            path,
            procs: None,
            // Never removed just by dropping: the cage in it may still run.
            removed: true,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open `cgroup.procs`, for a spawner that joins the child itself (see
    /// [`kaged_pty::join_cgroup`]).
    pub fn take_procs(&mut self) -> Option<OwnedFd> {
        self.procs.take()
    }

    pub(crate) fn procs_fd(&self) -> Option<RawFd> {
        self.procs.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Once the cage's leader has exited: kills whatever it left running in the cgroup
    /// (`cgroup.kill`, Linux 5.14+), then removes the directory, waiting up to `patience` for
    /// the killed processes to be gone.
    pub fn remove(mut self, patience: Duration) -> Result<(), CgroupError> {
        self.removed = true;
        let kill = self.path.join("cgroup.kill");
        if kill.exists() {
            let _ = std::fs::write(&kill, "1");
        }
        let deadline = Instant::now() + patience;
        loop {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(io_err("remove", &self.path)(e)),
            }
        }
    }
}

impl Drop for CageCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// The interface files a policy's limits are written to. Memory means memory: swap is
/// limited to nothing, or a capped cage would just page out.
fn knobs(limits: &Limits) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = limits.memory {
        out.push(("memory.max", m.bytes().to_string()));
        out.push(("memory.swap.max", "0".to_owned()));
    }
    if let Some(p) = limits.pids {
        out.push(("pids.max", p.to_string()));
    }
    if let Some(c) = limits.cpu {
        let quota = ((c * CPU_PERIOD as f64).round() as u64).max(1000);
        out.push(("cpu.max", format!("{quota} {CPU_PERIOD}")));
    }
    out
}

/// This process's cgroup, when it can be kaged's delegated subtree (see
/// [`check_delegated`]); nothing is changed.
pub(crate) fn delegatable_here() -> Result<PathBuf, String> {
    let read =
        |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let proc_cgroup = read("/proc/self/cgroup")?;
    let dir = own_cgroup_dir(&proc_cgroup, &read("/proc/self/mountinfo")?)?;
    let euid = nix::unistd::geteuid().as_raw();
    check_delegated(&dir, &proc_cgroup, euid, std::process::id())?;
    Ok(dir)
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
