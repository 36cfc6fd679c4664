//! `GET /api/v1/status` and `GET /api/v1/me`: what the daemon is, where its data lives
//! (ADR-0010's "where's my data?"), and who the caller is.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::settings::{AuthMode, Mode, SettingsReport};
use crate::timestamp::Timestamp;

/// A danger state, announced on every response as `X-Kaged-Warning` and in the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "kebab-case")]
pub enum Warning {
    InsecureMode,
    NoSandbox,
}

impl Warning {
    pub fn as_str(self) -> &'static str {
        match self {
            Warning::InsecureMode => "insecure-mode",
            Warning::NoSandbox => "no-sandbox",
        }
    }
}

/// The resolved paths of this deployment mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Paths {
    #[ts(type = "string")]
    pub state: PathBuf,
    #[ts(type = "string")]
    pub config: PathBuf,
    /// Whether the config file exists (and was read, for a running daemon).
    pub config_loaded: bool,
    /// The operator's `local.toml`.
    #[ts(type = "string")]
    pub local: PathBuf,
    #[ts(type = "string")]
    pub runtime: PathBuf,
    /// Why the runtime dir is not the mode's usual one, if it is not.
    pub runtime_note: Option<String>,
    #[ts(type = "string")]
    pub database: PathBuf,
    /// Where the audit log is (a table in the database).
    pub audit: String,
    #[ts(type = "string")]
    pub sessions: PathBuf,
}

/// The bwrap binary that passed the start-up self-test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct BwrapInfo {
    #[ts(type = "string")]
    pub path: PathBuf,
    pub version: String,
}

/// Whether, and how, memory, pids and cpu limits can be enforced on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CgroupSupport {
    /// The daemon's own cgroup v2 subtree is delegated to it: each cage gets a child cgroup.
    Delegated {
        #[ts(type = "string")]
        cgroup: PathBuf,
    },
    /// Each cage runs in a transient `systemd-run --user --scope` unit.
    SystemdScope {
        #[ts(type = "string")]
        systemd_run: PathBuf,
    },
    /// Neither works; the reason names what each lacks.
    Unavailable { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SandboxStatus {
    /// False under `--no-sandbox`.
    pub enabled: bool,
    /// Present when the sandbox is enabled.
    pub bwrap: Option<BwrapInfo>,
    pub cgroups: CgroupSupport,
}

/// A provider from `local.toml`: whether its key variable is set, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct ProviderKey {
    pub api_key_env: String,
    pub present: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct LocalSummary {
    pub model_aliases: Vec<String>,
    pub providers: BTreeMap<String, ProviderKey>,
    pub registered_projects: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Status {
    pub mode: Mode,
    /// The rule of design §3 that decided the mode.
    pub mode_reason: String,
    pub paths: Paths,
    pub bind: String,
    /// The URL local clients use.
    pub url: String,
    pub allowed_hosts: Vec<String>,
    pub auth_mode: AuthMode,
    pub insecure: bool,
    pub insecure_reason: Option<String>,
    pub sandbox: SandboxStatus,
    pub local: LocalSummary,
    pub warnings: Vec<Warning>,
    pub version: String,
    pub pid: u32,
    pub started_at: Timestamp,
    pub uptime_secs: u64,
    pub settings: SettingsReport,
    /// The running sessions the caller may see, and which of them this daemon adopted.
    pub sessions: SessionsSummary,
}

/// Running sessions at a glance, for `kaged status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SessionsSummary {
    pub running: u64,
    /// Running sessions this daemon took over from their holders after a restart, an
    /// upgrade or a crash of the daemon before it (design §6).
    pub adopted: Vec<crate::SessionInfo>,
}

/// The one identity every handler sees, whatever the auth mode (ADR-0007's table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Identity {
    pub user_id: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub mode: AuthMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Me {
    pub identity: Identity,
    /// Send it as `X-Kaged-CSRF` on every state-changing request (or `?csrf=` on a WebSocket
    /// upgrade). It is bound to this session and worthless without it.
    pub csrf_token: String,
    pub warnings: Vec<Warning>,
}

/// `POST /api/v1/auth/launch-token`: a fresh one-time launch URL (loopback mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct LaunchUrl {
    pub url: String,
    pub expires_in_secs: u64,
}

/// `GET /api/v1/healthz` and `GET /api/v1/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Health {
    /// `ok` (alive) or `ready` (serving).
    pub status: String,
}

/// `GET /api/v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
}

/// `POST /api/v1/auth/logout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SignedOut {
    /// Whether a browser session (a cookie) was signed out; other credentials have none.
    pub browser_session: bool,
}

/// `POST /api/v1/auth/revoke`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Revoked {
    /// Every browser session is signed out; the CLI's nonce still works.
    pub revoked: bool,
}
