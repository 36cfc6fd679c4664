//! `deploy` owns the answer to "which mode am I in, and where does my data live?" (ADR-0010,
//! design §3). It is a pure function of a [`Probe`] of the process environment; it never reads
//! config files, opens sockets or decides auth policy beyond naming the mode's default.

mod dirs;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use dirs::{DirError, ensure_private_dir};

pub use kaged_api::Mode;

/// Default bind per design §3: per-user lets the OS pick a free port.
pub fn default_bind(mode: Mode) -> SocketAddr {
    match mode {
        Mode::User => SocketAddr::from(([127, 0, 0, 1], 0)),
        Mode::System => SocketAddr::from(([127, 0, 0, 1], 7777)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    BadMode(#[from] kaged_api::UnknownValue),
    #[error(
        "cannot resolve per-user paths: neither $XDG_DATA_HOME nor $HOME is set; set HOME or KAGED_HOME"
    )]
    NoHome,
}

/// Everything mode detection looks at, captured once at start-up so detection is a pure
/// function that tests can drive directly.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// `--mode` on the command line.
    pub mode_flag: Option<String>,
    /// `KAGED_MODE`.
    pub mode_env: Option<String>,
    /// `KAGED_HOME`.
    pub kaged_home: Option<PathBuf>,
    pub uid: u32,
    pub username: Option<String>,
    pub home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
}

impl Probe {
    /// Reads the real process environment. Only the binary's edge calls this.
    pub fn from_env(mode_flag: Option<String>) -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let uid = nix::unistd::getuid();
        let username = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name);
        Probe {
            mode_flag,
            mode_env: var("KAGED_MODE").map(|v| v.to_string_lossy().into_owned()),
            kaged_home: var("KAGED_HOME").map(PathBuf::from),
            uid: uid.as_raw(),
            username,
            home: var("HOME").map(PathBuf::from),
            xdg_data_home: var("XDG_DATA_HOME").map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
        }
    }

    fn user_data_dir(&self) -> Option<PathBuf> {
        self.xdg_data_home
            .clone()
            .filter(|p| p.is_absolute())
            .or_else(|| self.home.as_ref().map(|h| h.join(".local/share")))
            .map(|d| d.join("kaged"))
    }

    fn user_config_dir(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .filter(|p| p.is_absolute())
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("kaged"))
    }
}

/// Which rule of design §3 decided the mode; shown at start-up and by `kaged status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ModeReason {
    Flag,
    Env,
    Root,
    KagedUser,
    DataDirExists { path: PathBuf },
    Fallback,
}

impl fmt::Display for ModeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeReason::Flag => f.write_str("--mode flag"),
            ModeReason::Env => f.write_str("KAGED_MODE is set"),
            ModeReason::Root => f.write_str("running as UID 0"),
            ModeReason::KagedUser => f.write_str("running as the `kaged` user"),
            ModeReason::DataDirExists { path } => write!(f, "{} exists", path.display()),
            ModeReason::Fallback => f.write_str(
                "no system-wide indicator and no per-user data dir; per-user is the fallback",
            ),
        }
    }
}

/// The resolved layout: every path the daemon will touch, per design §3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub mode: Mode,
    pub reason: ModeReason,
    /// Set when `KAGED_HOME` moved the state directory.
    pub kaged_home: bool,
    pub state_dir: PathBuf,
    pub config_file: PathBuf,
    /// `local.toml`: model aliases, providers, project registry (design §9).
    pub local_file: PathBuf,
    pub runtime_dir: PathBuf,
    /// Why the runtime dir is not the mode's usual one, if it is not.
    pub runtime_note: Option<String>,
    pub database: PathBuf,
    pub lock_file: PathBuf,
    pub sessions_dir: PathBuf,
}

impl Layout {
    /// Applies design §3 in order; the first rule that decides wins.
    pub fn resolve(probe: &Probe) -> Result<Layout, DeployError> {
        let (mode, reason) = detect(probe)?;
        let state_dir = match (&probe.kaged_home, mode) {
            (Some(home), _) => home.clone(),
            (None, Mode::System) => PathBuf::from("/var/lib/kaged"),
            (None, Mode::User) => probe.user_data_dir().ok_or(DeployError::NoHome)?,
        };
        let config_dir = match mode {
            Mode::System => PathBuf::from("/etc/kaged"),
            Mode::User => probe.user_config_dir().ok_or(DeployError::NoHome)?,
        };
        let (runtime_dir, runtime_note) = runtime_dir(mode, probe, &state_dir);
        Ok(Layout {
            mode,
            reason,
            kaged_home: probe.kaged_home.is_some(),
            database: state_dir.join("kaged.db"),
            lock_file: state_dir.join("kaged.lock"),
            sessions_dir: state_dir.join("sessions"),
            config_file: config_dir.join("config.toml"),
            local_file: config_dir.join("local.toml"),
            state_dir,
            runtime_dir,
            runtime_note,
        })
    }

    pub fn auth_cookie_file(&self) -> PathBuf {
        self.runtime_dir.join("auth-cookie")
    }

    pub fn sidecar_nonce_file(&self) -> PathBuf {
        self.runtime_dir.join("sidecar-nonce")
    }

    /// Where a running daemon publishes its address for `kaged status` and `kaged auth open`.
    pub fn endpoint_file(&self) -> PathBuf {
        self.runtime_dir.join("endpoint.json")
    }

    /// Creates the state and runtime directories with mode 0700, refusing ones owned by someone
    /// else or open to group/other.
    pub fn create_dirs(&self) -> Result<(), DirError> {
        ensure_private_dir(&self.state_dir)?;
        ensure_private_dir(&self.sessions_dir)?;
        ensure_private_dir(&self.runtime_dir)?;
        Ok(())
    }
}

fn detect(probe: &Probe) -> Result<(Mode, ModeReason), DeployError> {
    if let Some(flag) = &probe.mode_flag {
        return Ok((flag.parse()?, ModeReason::Flag));
    }
    if let Some(env) = &probe.mode_env {
        return Ok((env.parse()?, ModeReason::Env));
    }
    // Rule 2 (KAGED_HOME) only moves the state dir; the mode comes from the rules below.
    if probe.uid == 0 {
        return Ok((Mode::System, ModeReason::Root));
    }
    if probe.username.as_deref() == Some("kaged") {
        return Ok((Mode::System, ModeReason::KagedUser));
    }
    if let Some(dir) = probe.user_data_dir()
        && dir.is_dir()
    {
        return Ok((Mode::User, ModeReason::DataDirExists { path: dir }));
    }
    Ok((Mode::User, ModeReason::Fallback))
}

fn runtime_dir(mode: Mode, probe: &Probe, state_dir: &Path) -> (PathBuf, Option<String>) {
    if probe.kaged_home.is_some() {
        // Two daemons with different KAGED_HOMEs must not share nonce files.
        return (
            state_dir.join("run"),
            Some("KAGED_HOME is set, so runtime files live under it".to_owned()),
        );
    }
    match mode {
        Mode::System => (PathBuf::from("/run/kaged"), None),
        Mode::User => match probe.xdg_runtime_dir.as_ref().filter(|p| p.is_absolute()) {
            Some(dir) => (dir.join("kaged"), None),
            None => (
                state_dir.join("run"),
                Some("XDG_RUNTIME_DIR is unset (su or a non-login shell?), so runtime files fall back to the state dir".to_owned()),
            ),
        },
    }
}

#[cfg(test)]
mod tests;
