//! The deployment and auth modes (ADR-0010, ADR-0007), and the daemon's settings as
//! `kaged status` reports them: every value with where it came from, secrets left out.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A value that is not one of a setting's allowed words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: use {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// The two first-class deployment modes of ADR-0010.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    User,
    System,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::User => "user",
            Mode::System => "system",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" | "per-user" => Ok(Mode::User),
            "system" | "system-wide" => Ok(Mode::System),
            other => Err(UnknownValue {
                what: "deployment mode",
                value: other.to_owned(),
                expected: "`user` or `system`",
            }),
        }
    }
}

/// `auth.mode` of ADR-0007's per-user amendment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Loopback,
    Sidecar,
    Insecure,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Loopback => "loopback",
            AuthMode::Sidecar => "sidecar",
            AuthMode::Insecure => "insecure",
        }
    }

    /// ADR-0010: per-user defaults to the loopback cookie, system-wide to the sidecar.
    pub fn default_for(mode: Mode) -> AuthMode {
        match mode {
            Mode::User => AuthMode::Loopback,
            Mode::System => AuthMode::Sidecar,
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthMode {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "loopback" => Ok(AuthMode::Loopback),
            "sidecar" => Ok(AuthMode::Sidecar),
            "insecure" => Ok(AuthMode::Insecure),
            other => Err(UnknownValue {
                what: "auth mode",
                value: other.to_owned(),
                expected: "one of `loopback`, `sidecar`, `insecure`",
            }),
        }
    }
}

/// Where a setting's value came from; `kaged status` shows it so "why is it like this?" has an
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Source {
    Default,
    /// The deployment mode's default (design §3 table).
    Mode,
    /// A config file, by path.
    File(String),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Mode => f.write_str("deployment mode default"),
            Source::File(p) => f.write_str(p),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(v) => write!(f, "flag {v}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }

    pub fn map<U>(&self, f: impl FnOnce(&T) -> U) -> Sourced<U> {
        Sourced {
            value: f(&self.value),
            source: self.source.clone(),
        }
    }
}

/// The merged settings as reported: each value with its source. The sidecar nonce is never
/// part of it, not even its source's path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SettingsReport {
    /// The config file that was read, if any.
    pub config_file: Option<String>,
    pub bind: Sourced<String>,
    pub auth_mode: Sourced<AuthMode>,
    pub allowed_hosts: Sourced<Vec<String>>,
    pub allowed_origins: Sourced<Vec<String>>,
    pub insecure_reason: Option<Sourced<String>>,
    /// Operators in this group see and steer every session.
    pub admin_group: Option<Sourced<String>>,
    pub insecure_bind: Sourced<bool>,
    pub launch_token_ttl_secs: Sourced<u64>,
    pub sandbox_enabled: Sourced<bool>,
    pub storage_url: Sourced<String>,
    pub sessions: SessionLimitsReport,
    pub server: ServerLimitsReport,
    pub log_level: Sourced<String>,
    /// `push.contact`: the VAPID subject push services see.
    pub push_contact: Sourced<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SessionLimitsReport {
    pub max_per_project: Sourced<u64>,
    pub max_per_operator: Sourced<u64>,
    pub scrollback_bytes: Sourced<u64>,
    /// `sessions.limits`; unset, each cage's own `limits.enforce` decides.
    pub limits: Option<Sourced<crate::LimitEnforcement>>,
    /// `sessions.on_stop`: whether a graceful stop leaves sessions running for the next daemon.
    pub on_stop: Sourced<crate::SessionsOnStop>,
    /// `sessions.agent_idle_ms`: quiet this long after output, an agent is waiting.
    pub agent_idle_ms: Sourced<u64>,
    /// `sessions.approval_timeout_secs`: how long a held tool call waits for the operator.
    pub approval_timeout_secs: Sourced<u64>,
    /// `sessions.approval_default`: what applies when nobody answers in time.
    pub approval_default: Sourced<crate::hook::ApprovalDefault>,
}

/// How the listener treats slow and numerous clients (`server.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct ServerLimitsReport {
    pub header_read_timeout_secs: Sourced<u64>,
    pub max_connections: Sourced<u64>,
    pub max_pending_per_peer: Sourced<u64>,
}
