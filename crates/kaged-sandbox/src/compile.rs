//! Policy → bwrap argv (design §7).
//!
//! Decisions worth knowing:
//! - **Project paths keep their host path inside the cage.** Virtualenv shebangs, build caches
//!   and `compile_commands.json` embed absolute paths; keeping them equal means what a cage
//!   writes works outside and the paths an agent prints are the ones the operator sees. The
//!   cost, revealing the directory name, is small next to that. Grants mount at their *real*
//!   path (symlinks resolved).
//! - **Grants are bound by file descriptor.** Each grant is opened with `openat2(O_PATH,
//!   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from the project root's fd and handed to bwrap as
//!   `--bind-fd`/`--ro-bind-fd`, so swapping a path component for a symlink after compile
//!   cannot redirect the mount.
//! - **`/etc` is read-only and whole.** Shells, NSS, TLS roots and Debian's alternatives live
//!   there; whatever in it the daemon's UID can read, that UID's processes can already read.
//!   The exception is kaged's own `/etc/kaged`, which is masked.
//! - **`$HOME` is `/home/cage`**, a tmpfs (ephemeral) or the daemon-provided scratch directory
//!   (persistent). Nothing of the operator's home is mounted unless a grant names it.
//! - **Denied paths** (runtime dir, nonce files, state dir) are masked by an empty read-only
//!   tmpfs (directories) or `/dev/null` (files) wherever a read-only mount would show them.
//!   Under a *writable* grant they are refused instead: a cage that can write an ancestor can
//!   rename it, the mask moves with the dentry, and the next cage compiled against the old
//!   path would see the secret unmasked.
//! - **Walltime is not enforced here.** It is returned in [`CompiledCage::walltime`] for the
//!   session broker, which owns the process. Memory, pids and cpu go into a cgroup of the
//!   cage's own in the daemon's delegated subtree (created here, joined by the cage's first
//!   process before exec), or through a `systemd-run --user --scope` wrapper, as the host's
//!   [`CgroupSupport`] says. Where neither works the summary says
//!   [`CgroupLimits::NotEnforced`] and why; refusing such a cage is the caller's decision.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2};

use kaged_api::cage::{
    Access, CagePolicy, CageSummary, CgroupLimits, EnvNameError, GrantSummary, LimitMechanism,
    Limits, Network, PathScheme, PortablePath, State, check_env_name,
};

use crate::cgroup::CageCgroup;
use crate::host::{CgroupSupport, HostSystem, SystemMount};
use crate::linked_git::{LinkedBind, LinkedGit, linked_git_binds};

use kaged_api::project::PROJECT_DIR;

/// The cage's `$HOME`.
pub const CAGE_HOME: &str = "/home/cage";
/// The cage's hostname, so prompts and logs say where a shell runs.
pub const CAGE_HOSTNAME: &str = "kaged-cage";
/// `PATH` inside the cage unless the policy lets the caller's `PATH` through.
pub const CAGE_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// Where a filtered-network cage finds its way out: the relay (kaged's own binary) and the
/// gateway's socket are bound here, in a directory no host path shares.
pub const EGRESS_DIR: &str = "/run/kaged-egress";
/// The host directory holding the gateway's socket is bound read-only here. A directory, not
/// the socket file: a daemon that adopts the cage after a restart binds a fresh socket in the
/// same host directory, and the cage sees it (design §7).
pub const EGRESS_GATEWAY_DIR: &str = "/run/kaged-egress/gateway";
/// The gateway socket's file name, in the host directory and in [`EGRESS_GATEWAY_DIR`].
pub const EGRESS_SOCKET_NAME: &str = "gateway.sock";
/// The gateway's Unix socket inside the cage.
pub const EGRESS_SOCKET: &str = "/run/kaged-egress/gateway/gateway.sock";
/// kaged's binary inside the cage, run as the relay.
pub const EGRESS_RELAY: &str = "/run/kaged-egress/kaged";
/// The hidden argument that makes kaged's binary the in-cage relay:
/// `kaged __egress-relay <port> <socket> -- <argv>...`.
pub const EGRESS_RELAY_ARG: &str = "__egress-relay";
/// The relay's port on the cage's own loopback; each cage has its own network namespace, so
/// one fixed port serves them all.
pub const EGRESS_PORT: u16 = 3128;

/// Where an agent's cage reaches the daemon: kaged's binary as the hook helper, and the host
/// directory of the session's agent socket, bound read-only like the gateway's so a daemon
/// adopting the cage after a restart binds a fresh socket there and the cage sees it.
pub const AGENT_DIR: &str = "/run/kaged-agent";
/// The agent socket's directory inside the cage.
pub const AGENT_SOCKET_DIR: &str = "/run/kaged-agent/hook";
/// kaged's binary inside the cage, run as `kaged __hook <event>`.
pub const AGENT_HOOK: &str = "/run/kaged-agent/kaged";

/// Where an agent CLI installed outside the cage's view (`~/.local/bin/claude`, the native
/// installers' default) is bound read-only, one file per program, so that a declared
/// `command: [claude]` runs the operator's own CLI without granting their home.
pub const AGENT_BIN_DIR: &str = "/run/kaged-agent/bin";

/// An agent CLI's executable on the host, bound read-only at [`AGENT_BIN_DIR`]`/<name>`; the
/// cage's argv names it there ([`ProgramBind::in_cage`]).
#[derive(Debug, Clone, Copy)]
pub struct ProgramBind<'a> {
    /// The executable itself, symlinks resolved.
    pub host: &'a Path,
    /// The program's name as declared (`claude`): the file name inside the cage.
    pub name: &'a str,
}

impl ProgramBind<'_> {
    /// The program's path inside the cage.
    pub fn in_cage(&self) -> String {
        format!("{AGENT_BIN_DIR}/{}", self.name)
    }
}

/// The host side of an agent's hook channel.
#[derive(Debug, Clone, Copy)]
pub struct HookPlumbing<'a> {
    /// Holds the socket, named `kaged_api::hook::HOOK_SOCKET_NAME`.
    pub socket_dir: &'a Path,
    /// kaged's own binary.
    pub helper: &'a Path,
}

/// The host side of a filtered-network cage: the directory of the gateway socket the daemon
/// listens on for this cage, and kaged's own binary for the relay.
#[derive(Debug, Clone, Copy)]
pub struct EgressPlumbing<'a> {
    /// Holds the socket, named [`EGRESS_SOCKET_NAME`].
    pub socket_dir: &'a Path,
    pub relay: &'a Path,
    /// Set in the cage after the proxy variables, whatever the allowlist passed: provider
    /// base URLs on the relay and their dummy keys.
    pub env: &'a [(String, String)],
}

/// Everything `compile` needs for one cage. The caller (the daemon) supplies host facts; the
/// policy supplies intent.
#[derive(Debug, Clone, Copy)]
pub struct CageRequest<'a> {
    /// The project directory; grants are resolved beneath it.
    pub project_root: &'a Path,
    pub policy: &'a CagePolicy,
    /// The command to run inside the cage; looked up in the cage's `PATH`.
    pub argv: &'a [String],
    /// Candidate environment; only names allowlisted by the policy pass.
    pub env_values: &'a [(String, String)],
    /// Host paths that must never be visible (daemon runtime dir, nonce files, state dir).
    pub deny: &'a [PathBuf],
    /// The directory mounted as `$HOME` for [`State::Persistent`].
    pub scratch_dir: Option<&'a Path>,
    /// The cage runs on a PTY the broker made its controlling terminal: no `--new-session`.
    pub pty: bool,
    /// Working directory as a `project:/` path; defaults to the project root.
    pub cwd: Option<&'a PortablePath>,
    /// Required for `network: {allow, deny}`; ignored otherwise.
    pub egress: Option<EgressPlumbing<'a>>,
    /// A declared agent's hook channel to the daemon.
    pub hook: Option<HookPlumbing<'a>>,
    /// When the project root is a linked git worktree: its git dirs, which lie outside it.
    pub linked_git: Option<&'a LinkedGit>,
    /// An agent CLI that lives where the cage cannot see it.
    pub program: Option<ProgramBind<'a>>,
}

/// A ready-to-spawn cage. Keep it alive until the child is spawned: `keep_fds` are the grants
/// the argv refers to by number, and dropping them closes them.
#[derive(Debug)]
pub struct CompiledCage {
    /// `bwrap`, or `systemd-run` when cgroup limits wrap it.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// O_PATH descriptors of the grants, opened close-on-exec so that no *other* child of the
    /// daemon inherits them; the spawner must let exactly these through (see
    /// [`CompiledCage::command`] or `kaged_pty::inherit_only`). bwrap closes them after
    /// mounting.
    pub keep_fds: Vec<OwnedFd>,
    pub summary: CageSummary,
    /// The session broker kills the cage after this long; the cage itself does not.
    pub walltime: Option<Duration>,
    /// Empty stand-ins bwrap creates on the host for protected paths that did not exist (a
    /// `.git` in a project that is no repository). Remove them, if still empty, once no cage
    /// of the project runs: [`remove_mountpoints`].
    pub mountpoints: Vec<PathBuf>,
    /// The cage's own cgroup (delegated hosts, when the policy sets memory, pids or cpu). The
    /// cage's first process must join it before exec ([`CompiledCage::command`] does); keep it
    /// until the cage has ended, then [`CageCgroup::remove`] it.
    pub cgroup: Option<CageCgroup>,
}

impl CompiledCage {
    /// A `Command` for the cage with `keep_fds` inheritable in the child. The caller adds stdio
    /// and, for a PTY, its own `pre_exec` (setsid + TIOCSCTTY); a tokio `Command` can be built
    /// from it with `From`.
    ///
    /// Spawn from a thread that lives as long as the cage should: `--die-with-parent` is
    /// `PR_SET_PDEATHSIG`, which fires when the *thread* that forked bwrap exits (an idle
    /// `spawn_blocking` thread, say), not only when the daemon does.
    pub fn command(&self) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        let fds = self.raw_fds();
        let cgroup = self.cgroup.as_ref().and_then(CageCgroup::procs_fd);
        // SAFETY: the closure only makes syscalls (write, fcntl, close_range, getrlimit), which
        // are async-signal-safe, on descriptors that `self` keeps open until the caller spawned.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(procs) = cgroup {
                    kaged_pty::join_cgroup(procs)?;
                }
                kaged_pty::inherit_only(&fds)
            });
        }
        cmd
    }

    /// The descriptor numbers in `keep_fds`, sorted, for spawners that fork themselves (pass
    /// them to `kaged_pty::inherit_only` in the child).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self.keep_fds.iter().map(AsRawFd::as_raw_fd).collect();
        fds.sort_unstable();
        fds
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CageError {
    #[error(
        "grant path {path:?} is not a project path; write it as `project:/relative/path` (host paths are not portable)"
    )]
    NotAProjectPath { path: String },
    #[error("path {path:?} contains a NUL byte")]
    NulInPath { path: String },
    #[error("project root {path}: {source}; check that the project directory exists")]
    ProjectRoot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "grant {path:?} names {host}, which cannot be resolved: {source}; create it or drop the grant"
    )]
    GrantMissing {
        path: String,
        host: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "grant {path:?} resolves to {resolved}, outside the project root {root}; a symlink points out of the project, so remove it or grant a path inside"
    )]
    GrantEscapes {
        path: String,
        resolved: PathBuf,
        root: PathBuf,
    },
    #[error(
        "grant {path:?} ({host}) could not be opened without following symlinks: {source}; it changed while the cage was compiled, or a component is a symlink"
    )]
    GrantOpen {
        path: String,
        host: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("grants {first:?} and {second:?} both resolve to {host}; keep one of them")]
    DuplicateGrant {
        first: String,
        second: String,
        host: PathBuf,
    },
    #[error(
        "{what} {path} lies inside the denied path {denied}; it must never be visible in a cage"
    )]
    InsideDenied {
        what: &'static str,
        path: PathBuf,
        denied: PathBuf,
    },
    #[error(
        "the denied path {denied} lies inside the writable {what} {path}; a cage could move it out from under its mask, so grant that part read-only or move the project"
    )]
    DeniedUnderWritable {
        denied: PathBuf,
        what: &'static str,
        path: PathBuf,
    },
    #[error("denied path {path}: {source}")]
    DenyPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "environment name {name:?} may not enter a cage: {reason}; remove it from the policy's env list"
    )]
    ReservedEnvName { name: String, reason: &'static str },
    #[error("environment name {name:?} is not a valid variable name")]
    InvalidEnvName { name: String },
    #[error("the value of environment variable {name:?} contains a NUL byte")]
    NulInEnvValue { name: String },
    #[error(
        "agent program {path}: {reason}; install the CLI under /usr or /opt, or declare its full path"
    )]
    BadProgram { path: PathBuf, reason: String },
    #[error("the cage command is empty; give at least a program name")]
    EmptyArgv,
    #[error("cage command argument {index} ({arg:?}) contains a NUL byte")]
    NulInArgv { index: usize, arg: String },
    #[error(
        "a cage with `network: {{allow, deny}}` needs an egress gateway; the daemon must pass one"
    )]
    EgressRequired,
    #[error("a persistent-state cage needs a scratch directory; the daemon must pass one")]
    ScratchDirRequired,
    #[error("scratch directory {path}: {source}")]
    ScratchDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "working directory {cwd:?} ({host}) is not inside any grant; grant it or choose another"
    )]
    CwdNotGranted { cwd: String, host: PathBuf },
    #[error("working directory {cwd:?}: {source}")]
    Cwd {
        cwd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("limit {key} = {value} is invalid: {reason}")]
    InvalidLimit {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("bubblewrap (`bwrap`) was not found in PATH; install it or run without a sandbox")]
    BwrapNotFound,
    #[error(
        "{path} could not be opened to protect it (read-only in every cage): {source}; check it is a plain file or directory"
    )]
    Protect {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot inspect the project's git metadata at {path}: {source}")]
    GitDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is a symlink; a cage could repoint it at a git dir with hooks. Make it a directory or a `gitdir:` file, or set writable_policy_and_git_hooks"
    )]
    GitSymlink { path: PathBuf },
}

/// Compiles a cage for this host.
pub fn compile(req: &CageRequest<'_>) -> Result<CompiledCage, CageError> {
    compile_on(req, HostSystem::detect())
}

/// A grant after resolution, bound by `fd` at `dest`.
struct Bound {
    spec: PortablePath,
    dest: PathBuf,
    access: Access,
    fd: OwnedFd,
}

/// Compiles a cage against explicit host facts (what [`compile`] detects).
// Long on purpose: after the checks, the argv is written top to bottom in the order bwrap
// applies it, which is how a reader checks it against design §7.
pub fn compile_on(req: &CageRequest<'_>, host: &HostSystem) -> Result<CompiledCage, CageError> {
    let policy = req.policy;
    let bwrap = host.bwrap.clone().ok_or(CageError::BwrapNotFound)?;
    check_argv(req.argv)?;
    check_limits(&policy.limits)?;
    let env = allowlisted_env(&policy.env, req.env_values)?;

    let root_err = |source| CageError::ProjectRoot {
        path: req.project_root.to_owned(),
        source,
    };
    let root = std::fs::canonicalize(req.project_root).map_err(root_err)?;
    let root_fd = open_no_symlinks(AT_FDCWD, &root, OFlag::O_DIRECTORY, ResolveFlag::empty())
        .map_err(|e| root_err(e.into()))?;

    let grants = bind_grants(policy, &root, &root_fd)?;
    let protected = if policy.writable_policy_and_git_hooks {
        Vec::new()
    } else {
        protected_paths(&root, &root_fd, &grants)?
    };
    let scratch = scratch_home(policy, req.scratch_dir)?;
    let masked = masks_for_denied(req.deny, &host.masks, &grants, scratch.as_ref(), host)?;
    let linked = match req.linked_git {
        Some(git) => linked_git_binds(git, req.deny)?,
        None => Vec::new(),
    };
    let cwd = cage_cwd(req.cwd, &root, &grants)?;

    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
        args.extend(items.iter().map(|i| i.as_ref().to_owned()));
    };
    push(&[&"--die-with-parent", &"--unshare-all"]);
    // Explicit so root-run daemons get a user namespace too, which --disable-userns needs.
    push(&[&"--unshare-user"]);
    // `none` and a filtered network both get bwrap's own namespace with only loopback up.
    let egress = match (&policy.network, req.egress) {
        (Network::None, _) => None,
        (Network::Host, _) => {
            push(&[&"--share-net"]);
            None
        }
        (Network::Filtered(_), Some(e)) => Some(e),
        (Network::Filtered(_), None) => return Err(CageError::EgressRequired),
    };
    // No nested user namespaces: a frequent kernel attack surface no cage needs.
    if host.disable_userns {
        push(&[&"--disable-userns"]);
    }
    push(&[&"--cap-drop", &"ALL"]);
    if !req.pty {
        push(&[&"--new-session"]);
    }
    push(&[&"--hostname", &CAGE_HOSTNAME, &"--clearenv"]);
    push(&[&"--setenv", &"HOME", &CAGE_HOME]);
    if !env.iter().any(|(name, _)| name == "PATH") {
        push(&[&"--setenv", &"PATH", &CAGE_PATH]);
    }
    let env = with_egress_env(env, egress)?;
    for (name, value) in &env {
        push(&[&"--setenv", name, value]);
    }
    let env_names: Vec<String> = env.into_iter().map(|(name, _)| name).collect();
    for mount in &host.system {
        match mount {
            SystemMount::RoBind(p) => push(&[&"--ro-bind", p, p]),
            SystemMount::Symlink { target, link } => push(&[&"--symlink", target, link]),
        }
    }
    if let (Network::Host, Some(resolv)) = (&policy.network, &host.resolv_conf) {
        push(&[&"--ro-bind-try", resolv, resolv]);
    }
    push(&[&"--proc", &"/proc", &"--dev", &"/dev", &"--tmpfs", &"/tmp"]);
    if let Some(e) = egress {
        push(&[&"--ro-bind", &e.relay, &EGRESS_RELAY]);
        // Read-only: the cage can connect to the socket but not replace or remove it.
        push(&[&"--ro-bind", &e.socket_dir, &EGRESS_GATEWAY_DIR]);
    }
    if let Some(h) = req.hook {
        push(&[&"--ro-bind", &h.helper, &AGENT_HOOK]);
        // Read-only, as the gateway's: connect, never replace.
        push(&[&"--ro-bind", &h.socket_dir, &AGENT_SOCKET_DIR]);
    }
    if let Some(p) = req.program {
        check_program(&p)?;
        push(&[&"--ro-bind", &p.host, &p.in_cage()]);
    }
    let mut keep_fds = Vec::new();
    match scratch {
        None => push(&[&"--tmpfs", &CAGE_HOME]),
        Some((_, fd)) => {
            push(&[&"--bind-fd", &fd.as_raw_fd().to_string(), &CAGE_HOME]);
            keep_fds.push(fd);
        }
    }
    let mut grant_summaries = Vec::with_capacity(grants.len());
    for bound in grants {
        let flag = match bound.access {
            Access::Ro => "--ro-bind-fd",
            Access::Rw => "--bind-fd",
        };
        push(&[&flag, &bound.fd.as_raw_fd().to_string(), &bound.dest]);
        keep_fds.push(bound.fd);
        grant_summaries.push(GrantSummary {
            path: bound.spec,
            host_path: bound.dest,
            access: bound.access,
        });
    }
    let mut protected_summary = Vec::with_capacity(protected.len());
    let mut mountpoints = Vec::new();
    // A linked worktree's git dirs are bound the same way, after the project's own.
    for p in protected
        .into_iter()
        .chain(linked.into_iter().map(Protected::from))
    {
        match p {
            Protected::Existing { path, fd } => {
                push(&[&"--ro-bind-fd", &fd.as_raw_fd().to_string(), &path]);
                keep_fds.push(fd);
                protected_summary.push(path);
            }
            Protected::Pinned { path, fd } => {
                push(&[&"--bind-fd", &fd.as_raw_fd().to_string(), &path]);
                keep_fds.push(fd);
            }
            Protected::Missing { path, dir } => {
                if dir {
                    push(&[&"--tmpfs", &path, &"--remount-ro", &path]);
                } else {
                    push(&[&"--ro-bind", &"/dev/null", &path]);
                }
                mountpoints.push(path.clone());
                protected_summary.push(path);
            }
        }
    }
    for (path, is_dir) in &masked {
        if *is_dir {
            push(&[&"--tmpfs", path, &"--remount-ro", path]);
        } else {
            push(&[&"--ro-bind", &"/dev/null", path]);
        }
    }
    // The cage's root is bwrap's tmpfs; nothing should add to it once the mounts are set up.
    push(&[&"--remount-ro", &"/", &"--chdir", &cwd, &"--"]);
    if egress.is_some() {
        // The relay binds its port, forks itself away from the terminal, and execs the argv.
        push(&[
            &EGRESS_RELAY,
            &EGRESS_RELAY_ARG,
            &EGRESS_PORT.to_string(),
            &EGRESS_SOCKET,
            &"--",
        ]);
    }
    args.extend(req.argv.iter().map(OsString::from));

    let (program, args, cgroup_limits, cgroup) = enforce_limits(bwrap, args, &policy.limits, host);

    Ok(CompiledCage {
        program,
        args,
        keep_fds,
        summary: CageSummary {
            grants: grant_summaries,
            network: policy.network.clone(),
            state: policy.state,
            limits: policy.limits.clone(),
            cgroup_limits,
            env: env_names,
            masked: masked.into_iter().map(|(p, _)| p).collect(),
            protected: protected_summary,
            protection_lifted: policy.writable_policy_and_git_hooks,
            cwd,
            pty: req.pty,
            nested_userns_disabled: host.disable_userns,
        },
        walltime: policy.limits.walltime_duration(),
        mountpoints,
        cgroup,
    })
}

/// Resolves and opens every grant beneath the project root, parents before children so a
/// read-only grant inside a writable one wins.
fn bind_grants(
    policy: &CagePolicy,
    root: &Path,
    root_fd: &OwnedFd,
) -> Result<Vec<Bound>, CageError> {
    let mut grants: Vec<Bound> = Vec::with_capacity(policy.fs.len());
    for grant in &policy.fs {
        let rel = project_relative(&grant.path)?;
        let host_path = root.join(&rel);
        let real = std::fs::canonicalize(&host_path).map_err(|source| CageError::GrantMissing {
            path: grant.path.to_string(),
            host: host_path.clone(),
            source,
        })?;
        let Ok(rel_real) = real.strip_prefix(root) else {
            return Err(CageError::GrantEscapes {
                path: grant.path.to_string(),
                resolved: real,
                root: root.to_owned(),
            });
        };
        let rel_real = if rel_real.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel_real
        };
        let fd = open_no_symlinks(
            root_fd.as_fd(),
            rel_real,
            OFlag::O_NOFOLLOW,
            ResolveFlag::RESOLVE_BENEATH,
        )
        .map_err(|source| CageError::GrantOpen {
            path: grant.path.to_string(),
            host: real.clone(),
            source,
        })?;
        if let Some(other) = grants.iter().find(|b| b.dest == real) {
            return Err(CageError::DuplicateGrant {
                first: other.spec.to_string(),
                second: grant.path.to_string(),
                host: real,
            });
        }
        grants.push(Bound {
            spec: grant.path.clone(),
            dest: real,
            access: grant.access,
            fd,
        });
    }
    grants.sort_by_key(|b| b.dest.components().count());
    Ok(grants)
}

/// The persistent home's directory, opened once so the mount is the directory checked.
fn scratch_home(
    policy: &CagePolicy,
    scratch_dir: Option<&Path>,
) -> Result<Option<(PathBuf, OwnedFd)>, CageError> {
    Ok(match policy.state {
        State::Ephemeral => None,
        State::Persistent => {
            let dir = scratch_dir.ok_or(CageError::ScratchDirRequired)?;
            let scratch_err = |source| CageError::ScratchDir {
                path: dir.to_owned(),
                source,
            };
            let real = std::fs::canonicalize(dir).map_err(scratch_err)?;
            let fd = open_no_symlinks(AT_FDCWD, &real, OFlag::O_DIRECTORY, ResolveFlag::empty())
                .map_err(|e| scratch_err(e.into()))?;
            Some((real, fd))
        }
    })
}

/// Memory, pids and cpu limits need a cgroup: one of the cage's own in the delegated subtree,
/// or a `systemd-run --user --scope` around bwrap; where neither works, or setting one up
/// fails, the reason is reported and the cage is compiled without.
fn enforce_limits(
    bwrap: PathBuf,
    args: Vec<OsString>,
    limits: &Limits,
    host: &HostSystem,
) -> (PathBuf, Vec<OsString>, CgroupLimits, Option<CageCgroup>) {
    if !limits.needs_cgroup() {
        return (bwrap, args, CgroupLimits::NotRequested, None);
    }
    match &host.cgroups {
        CgroupSupport::Delegated { cgroup } => match CageCgroup::create(cgroup, limits) {
            Ok(own) => {
                let enforced = CgroupLimits::Enforced {
                    via: LimitMechanism::DelegatedCgroup,
                    cgroup: Some(own.path().to_owned()),
                };
                (bwrap, args, enforced, Some(own))
            }
            Err(e) => {
                let reason = format!("the cage's cgroup could not be set up: {e}");
                (bwrap, args, CgroupLimits::NotEnforced { reason }, None)
            }
        },
        CgroupSupport::SystemdScope { systemd_run } => {
            let mut wrapped: Vec<OsString> = ["--user", "--scope", "--quiet", "--collect"]
                .map(OsString::from)
                .into();
            for property in cgroup_properties(limits) {
                wrapped.extend(["-p".into(), property.into()]);
            }
            wrapped.extend(["--".into(), bwrap.into_os_string()]);
            wrapped.extend(args);
            let enforced = CgroupLimits::Enforced {
                via: LimitMechanism::SystemdScope,
                cgroup: None,
            };
            (systemd_run.clone(), wrapped, enforced, None)
        }
        CgroupSupport::Unavailable { reason } => (
            bwrap,
            args,
            CgroupLimits::NotEnforced {
                reason: reason.clone(),
            },
            None,
        ),
    }
}

/// A path every cage may read but never write, whatever its grants (design §7).
enum Protected {
    /// Bound read-only over itself, by the descriptor that was checked.
    Existing { path: PathBuf, fd: OwnedFd },
    /// Bound over itself as it is (writable): a mount point cannot be renamed or removed, so
    /// a cage cannot move a git dir aside and put one with hooks in its place.
    Pinned { path: PathBuf, fd: OwnedFd },
    /// An empty read-only stand-in, so the cage cannot create it.
    Missing { path: PathBuf, dir: bool },
}

impl From<LinkedBind> for Protected {
    fn from(bind: LinkedBind) -> Protected {
        match bind {
            LinkedBind::Ro { path, fd } => Protected::Existing { path, fd },
            LinkedBind::Rw { path, fd } => Protected::Pinned { path, fd },
            LinkedBind::Missing { path, dir } => Protected::Missing { path, dir },
        }
    }
}

impl Protected {
    fn path(&self) -> &Path {
        match self {
            Protected::Existing { path, .. }
            | Protected::Pinned { path, .. }
            | Protected::Missing { path, .. } => path,
        }
    }
}

/// What a cage that can write the project could use to escape: its own policy (`.kaged/`,
/// read at the next load, where it could say `cage: disabled`), and what git runs on the
/// host when the operator next uses the repository (`config` with `core.hooksPath` or
/// `core.fsmonitor`, `hooks/`, `info/`): for the repository, a worktree's `.git` file and
/// the git dir it points to, and each submodule's git dir. Objects and refs stay writable,
/// so agents can still commit. Only paths under a writable grant need it; the rest is
/// read-only or invisible already.
fn protected_paths(
    root: &Path,
    root_fd: &OwnedFd,
    grants: &[Bound],
) -> Result<Vec<Protected>, CageError> {
    // (path, is a directory, pin it writable instead of making it read-only)
    let mut wanted: Vec<(PathBuf, bool, bool)> = vec![(root.join(PROJECT_DIR), true, false)];
    match git_layout(root)? {
        Git::None(dotgit) => wanted.push((dotgit, true, false)),
        Git::Dirs { pointer, dirs } => {
            wanted.extend(pointer.map(|p| (p, false, false)));
            for dir in dirs {
                wanted.extend([
                    (dir.clone(), true, true),
                    (dir.join("config"), false, false),
                    (dir.join("hooks"), true, false),
                    (dir.join("info"), true, false),
                ]);
            }
        }
    }
    // Grants are sorted parents first, so the last one containing a path decides.
    let writable = |p: &Path| {
        grants
            .iter()
            .rev()
            .find(|b| p.starts_with(&b.dest))
            .is_some_and(|b| b.access == Access::Rw)
    };
    let mut out: Vec<Protected> = Vec::new();
    for (path, dir, pin) in wanted {
        if !writable(&path) || out.iter().any(|p| p.path() == path) {
            continue;
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let opened = open_no_symlinks(
            root_fd.as_fd(),
            rel,
            OFlag::O_NOFOLLOW,
            ResolveFlag::RESOLVE_BENEATH,
        );
        match opened {
            Ok(fd) if pin => out.push(Protected::Pinned { path, fd }),
            Ok(fd) => out.push(Protected::Existing { path, fd }),
            Err(Errno::ENOENT) if pin => {}
            Err(Errno::ENOENT) => out.push(Protected::Missing { path, dir }),
            Err(source) => return Err(CageError::Protect { path, source }),
        }
    }
    Ok(out)
}

/// How the project's git metadata is laid out.
enum Git {
    /// No `.git`: an empty read-only one stands in, so a cage cannot `git init` a repository
    /// with hooks.
    None(PathBuf),
    /// The git dirs whose config and hooks matter, and a worktree's `.git` pointer file.
    Dirs {
        pointer: Option<PathBuf>,
        dirs: Vec<PathBuf>,
    },
}

fn git_layout(root: &Path) -> Result<Git, CageError> {
    let dotgit = root.join(".git");
    let io = |source| CageError::GitDir {
        path: dotgit.clone(),
        source,
    };
    let meta = match std::fs::symlink_metadata(&dotgit) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Git::None(dotgit)),
        Err(e) => return Err(io(e)),
    };
    if meta.file_type().is_symlink() {
        return Err(CageError::GitSymlink { path: dotgit });
    }
    let (pointer, gitdir) = if meta.is_dir() {
        (None, Some(dotgit))
    } else {
        // A worktree: `gitdir: <path>`. A git dir outside the project is invisible anyway.
        let text = std::fs::read_to_string(&dotgit).map_err(io)?;
        let target = text
            .trim()
            .strip_prefix("gitdir:")
            .and_then(|t| std::fs::canonicalize(root.join(t.trim())).ok())
            .filter(|t| t.starts_with(root));
        (Some(dotgit), target)
    };
    let mut dirs = Vec::new();
    if let Some(gitdir) = gitdir {
        let common = std::fs::read_to_string(gitdir.join("commondir"))
            .ok()
            .and_then(|c| std::fs::canonicalize(gitdir.join(c.trim())).ok())
            .filter(|c| c.starts_with(root));
        dirs.extend(common);
        if let Ok(modules) = std::fs::read_dir(gitdir.join("modules")) {
            dirs.extend(modules.flatten().map(|m| m.path()).filter(|p| p.is_dir()));
        }
        dirs.push(gitdir);
    }
    Ok(Git::Dirs { pointer, dirs })
}

/// Removes the empty stand-ins a cage's protection left on the host (see
/// [`CompiledCage::mountpoints`]); whatever is no longer empty is left alone.
pub fn remove_mountpoints(paths: &[PathBuf]) {
    for p in paths {
        let empty_file = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0);
        // `remove_dir` fails, as it should, on anything but an empty directory.
        let _ = if empty_file {
            std::fs::remove_file(p)
        } else {
            std::fs::remove_dir(p)
        };
    }
}

/// `project:/a/b` → `a/b`. Portable paths are already normalised (no `..` above the root);
/// only the project's own namespace can be granted.
fn project_relative(path: &PortablePath) -> Result<PathBuf, CageError> {
    if path.scheme() != PathScheme::Project {
        return Err(CageError::NotAProjectPath {
            path: path.to_string(),
        });
    }
    if path.as_str().contains('\0') {
        return Err(CageError::NulInPath {
            path: path.to_string(),
        });
    }
    Ok(PathBuf::from(path.relative()))
}

/// O_PATH open that fails on any symlink in `path`, so what is opened is what was checked.
pub(crate) fn open_no_symlinks<Fd: AsFd>(
    dir: Fd,
    path: &Path,
    extra: OFlag,
    resolve: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    openat2(
        dir,
        path,
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
            .resolve(
                resolve | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            ),
    )
}

/// Which denied paths need a mask inside the cage (with whether each is a directory), or an
/// error when a denied path cannot be hidden safely.
fn masks_for_denied(
    deny: &[PathBuf],
    always: &[PathBuf],
    grants: &[Bound],
    scratch: Option<&(PathBuf, OwnedFd)>,
    host: &HostSystem,
) -> Result<Vec<(PathBuf, bool)>, CageError> {
    let mut masks: Vec<(PathBuf, bool)> = Vec::new();
    for path in deny.iter().chain(always) {
        let denied = match std::fs::canonicalize(path) {
            Ok(p) => p,
            // Nothing to hide yet; the daemon creates its directories before any cage.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CageError::DenyPath {
                    path: path.clone(),
                    source,
                });
            }
        };
        for bound in grants {
            if bound.dest.starts_with(&denied) {
                return Err(CageError::InsideDenied {
                    what: "grant",
                    path: bound.dest.clone(),
                    denied,
                });
            }
            if bound.access == Access::Rw && denied.starts_with(&bound.dest) {
                return Err(CageError::DeniedUnderWritable {
                    denied,
                    what: "grant",
                    path: bound.dest.clone(),
                });
            }
        }
        if let Some((scratch_dir, _)) = scratch.filter(|(dir, _)| denied.starts_with(dir)) {
            return Err(CageError::DeniedUnderWritable {
                denied,
                what: "scratch directory",
                path: scratch_dir.clone(),
            });
        }
        let system_ro = host.system.iter().any(|m| match m {
            SystemMount::RoBind(dir) => denied.starts_with(dir),
            SystemMount::Symlink { .. } => false,
        });
        let visible = system_ro || grants.iter().any(|b| denied.starts_with(&b.dest));
        if visible && !masks.iter().any(|(p, _)| p == &denied) {
            masks.push((denied.clone(), denied.is_dir()));
        }
    }
    Ok(masks)
}

/// The cage's working directory: the requested project path, else the project root when it is
/// granted, else `$HOME`.
fn cage_cwd(
    cwd: Option<&PortablePath>,
    root: &Path,
    grants: &[Bound],
) -> Result<PathBuf, CageError> {
    let granted = |p: &Path| grants.iter().any(|b| p.starts_with(&b.dest));
    let Some(spec) = cwd else {
        return Ok(if granted(root) {
            root.to_owned()
        } else {
            PathBuf::from(CAGE_HOME)
        });
    };
    let host = root.join(project_relative(spec)?);
    let real = std::fs::canonicalize(&host).map_err(|source| CageError::Cwd {
        cwd: spec.to_string(),
        source,
    })?;
    if !granted(&real) {
        return Err(CageError::CwdNotGranted {
            cwd: spec.to_string(),
            host: real,
        });
    }
    Ok(real)
}

/// A bound program is one plain executable file, named by a plain file name: nothing that
/// could put it elsewhere in the cage, or bind a directory of the operator's.
fn check_program(p: &ProgramBind<'_>) -> Result<(), CageError> {
    let bad = |reason: &str| CageError::BadProgram {
        path: p.host.to_owned(),
        reason: reason.to_owned(),
    };
    if p.name.is_empty() || p.name.contains('/') || p.name.contains('\0') || p.name.starts_with('.')
    {
        return Err(bad("its name must be a plain file name"));
    }
    if !p.host.is_absolute() {
        return Err(bad("the path must be absolute"));
    }
    match std::fs::metadata(p.host) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(bad("it is not a regular file")),
        Err(e) => Err(bad(&e.to_string())),
    }
}

fn check_argv(argv: &[String]) -> Result<(), CageError> {
    if argv.is_empty() {
        return Err(CageError::EmptyArgv);
    }
    if let Some((index, arg)) = argv.iter().enumerate().find(|(_, a)| a.contains('\0')) {
        return Err(CageError::NulInArgv {
            index,
            arg: arg.clone(),
        });
    }
    Ok(())
}

fn check_limits(limits: &Limits) -> Result<(), CageError> {
    let invalid = |key, value: String, reason| CageError::InvalidLimit { key, value, reason };
    if limits.walltime.is_some_and(|w| w.seconds() == 0) {
        return Err(invalid(
            "walltime",
            "0".into(),
            "must be at least one second",
        ));
    }
    if limits.memory.is_some_and(|m| m.bytes() == 0) {
        return Err(invalid("memory", "0".into(), "must be positive"));
    }
    if limits.pids == Some(0) {
        return Err(invalid("pids", "0".into(), "must be positive"));
    }
    if let Some(cpu) = limits.cpu.filter(|c| !c.is_finite() || *c < 0.01) {
        return Err(invalid(
            "cpu",
            cpu.to_string(),
            "must be at least 0.01 CPUs",
        ));
    }
    Ok(())
}

/// systemd properties for the scope; `cpu` is in CPUs, `CPUQuota` in percent of one CPU.
fn cgroup_properties(limits: &Limits) -> Vec<String> {
    let mut props = Vec::new();
    if let Some(memory) = limits.memory {
        // As in a delegated cgroup: memory means memory, not memory plus swap.
        props.push(format!("MemoryMax={}", memory.bytes()));
        props.push("MemorySwapMax=0".to_owned());
    }
    if let Some(pids) = limits.pids {
        props.push(format!("TasksMax={pids}"));
    }
    if let Some(cpu) = limits.cpu {
        props.push(format!(
            "CPUQuota={}%",
            (cpu * 100.0).round().max(1.0) as u64
        ));
    }
    props
}

/// The cage's environment with what a filtered network sets replacing any allowlisted value
/// of the same name: the proxy variables in both spellings (so a host's own proxy settings
/// cannot point around the gateway) and the provider variables. Replaced, not overridden by a
/// later `--setenv`: bwrap's argv is recorded, and an allowlisted provider key must not be.
fn with_egress_env(
    mut env: Vec<(String, String)>,
    egress: Option<EgressPlumbing<'_>>,
) -> Result<Vec<(String, String)>, CageError> {
    let Some(egress) = egress else {
        return Ok(env);
    };
    let proxy = format!("http://127.0.0.1:{EGRESS_PORT}");
    let mut set: Vec<(String, String)> = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"] {
        let value = if name == "NO_PROXY" {
            "localhost,127.0.0.1".to_owned()
        } else {
            proxy.clone()
        };
        set.push((name.to_owned(), value.clone()));
        set.push((name.to_ascii_lowercase(), value));
    }
    for (name, value) in egress.env {
        check_env_name(name).map_err(|_| CageError::InvalidEnvName { name: name.clone() })?;
        if value.contains('\0') {
            return Err(CageError::NulInEnvValue { name: name.clone() });
        }
        set.push((name.clone(), value.clone()));
    }
    env.retain(|(name, _)| !set.iter().any(|(n, _)| n == name));
    env.extend(set);
    Ok(env)
}

/// The allowlisted `(name, value)` pairs, in policy order, under the one env-name rule
/// (`KAGED_*` carries the daemon's secrets; the cage owns `HOME`).
fn allowlisted_env(
    names: &[String],
    candidates: &[(String, String)],
) -> Result<Vec<(String, String)>, CageError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for name in names {
        match check_env_name(name) {
            Ok(()) => {}
            Err(EnvNameError::Invalid { .. }) => {
                return Err(CageError::InvalidEnvName { name: name.clone() });
            }
            Err(EnvNameError::Reserved { reason, .. }) => {
                return Err(CageError::ReservedEnvName {
                    name: name.clone(),
                    reason,
                });
            }
        }
        if out.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some((_, value)) = candidates.iter().rev().find(|(n, _)| n == name) {
            if value.contains('\0') {
                return Err(CageError::NulInEnvValue { name: name.clone() });
            }
            out.push((name.clone(), value.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
