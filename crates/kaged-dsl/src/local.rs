//! `local.toml`: everything operator-local that a portable project refers to (ADR-0011) —
//! model aliases, provider credentials *by environment variable name*, and the project
//! registry. Per-user it is `$XDG_CONFIG_HOME/kaged/local.toml`, system-wide
//! `/etc/kaged/local.toml`; the caller picks the path.
//!
//! The file never holds a key value, so nothing here can print one. The one place a key
//! value exists in memory is [`ApiKey`], whose `Debug` and `Display` are redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use kaged_api::UnknownAlias;
use kaged_api::{EnvNameError, check_env_name};

use crate::Project;
use crate::decode::is_name;
use crate::portability::secret_kind;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Model alias → concrete id, e.g. `fast = "anthropic:claude-haiku"`.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Provider name → how to find its credential.
    #[serde(default)]
    pub providers: BTreeMap<String, Provider>,
    /// Projects this operator has registered, by absolute path.
    #[serde(default)]
    pub projects: Vec<RegisteredProject>,
    /// What the cages' egress gateways may do beyond a project's own rules.
    #[serde(default)]
    pub egress: LocalEgress,
    /// Where runs' git worktrees live and how long their leftovers are kept.
    #[serde(default)]
    pub worktrees: LocalWorktrees,
    /// The file this was read from, for messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// The NAME of the environment variable holding the key, e.g. `ANTHROPIC_API_KEY`.
    pub api_key_env: String,
    /// Where the egress gateway forwards `/p/<name>/...` (https only). Defaults for
    /// `anthropic` and `openai`; a provider without one is not reachable through gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// How the key is sent: `x-api-key` (Anthropic's header) or `bearer`
    /// (`Authorization: Bearer`). Default: `x-api-key` for `anthropic`, else `bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ProviderAuth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderAuth {
    #[serde(rename = "x-api-key")]
    XApiKey,
    #[serde(rename = "bearer")]
    Bearer,
}

/// `[egress]`: operator-only exceptions for the gateways. A project file can never say these:
/// a portable project may be someone else's, and private addresses are the operator's LAN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalEgress {
    /// `host:port` pairs (a name or an IP literal, always with a port) that a gateway may
    /// connect to although they are loopback, private, link-local, ... The project's `allow`
    /// must still name them.
    #[serde(default)]
    pub allow_private: Vec<String>,
    /// A PEM file of extra CA certificates the gateways trust for provider upstreams, on top
    /// of the system's roots (a private CA, or a test's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_ca_file: Option<PathBuf>,
}

/// `[worktrees]`: operator-level, because where files go on this host and how long they are
/// kept is no project's business.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalWorktrees {
    /// An absolute directory for the worktrees, outside every repository. Default:
    /// `worktrees/` in the state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// How long a snapshot ref is kept (`90d`, `12h`, seconds, or `"forever"`). Default 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_retention: Option<String>,
    /// How long a worktree whose sessions all ended stays before the sweep removes it, through
    /// the same snapshot-first path as a manual cleanup (`"never"` keeps them). Default 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_idle: Option<String>,
}

pub const DEFAULT_SNAPSHOT_RETENTION: u64 = 30 * 86_400;
pub const DEFAULT_SWEEP_IDLE: u64 = 7 * 86_400;

impl LocalWorktrees {
    /// Seconds a snapshot is kept; `None` keeps them forever.
    pub fn snapshot_retention(&self) -> Option<u64> {
        match &self.snapshot_retention {
            None => Some(DEFAULT_SNAPSHOT_RETENTION),
            Some(s) => parse_keep(s, "forever"),
        }
    }

    /// Seconds an ended run's worktree stays; `None` never sweeps.
    pub fn sweep_idle(&self) -> Option<u64> {
        match &self.sweep_idle {
            None => Some(DEFAULT_SWEEP_IDLE),
            Some(s) => parse_keep(s, "never"),
        }
    }

    fn check(&self) -> Result<(), String> {
        if let Some(dir) = &self.dir
            && !dir.is_absolute()
        {
            return Err(format!(
                "[worktrees] dir {} is relative; give an absolute directory outside your \
                 repositories",
                dir.display()
            ));
        }
        for (key, value, off) in [
            ("snapshot_retention", &self.snapshot_retention, "forever"),
            ("sweep_idle", &self.sweep_idle, "never"),
        ] {
            if let Some(v) = value
                && v != off
                && parse_duration(v).is_none()
            {
                return Err(format!(
                    "[worktrees] {key} = {v:?} is not a duration; write e.g. \"30d\", \"12h\", \
                     \"45m\" or seconds, or \"{off}\""
                ));
            }
        }
        Ok(())
    }
}

fn parse_keep(s: &str, off: &str) -> Option<u64> {
    if s == off { None } else { parse_duration(s) }
}

/// `90`, `90s`, `10m`, `2h` or `30d`; zero and overflow are refused.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (digits, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86_400),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(mult)
        .filter(|v| *v > 0)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredProject {
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalConfigError {
    #[error("cannot read {path}: {source}; check the file exists and is readable")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The message comes from the TOML parser and names the line, column and key.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl LocalConfig {
    /// Reads `path`. A missing file is an empty config: local.toml is optional, and an
    /// operator without one simply has no aliases yet.
    pub fn load(path: &Path) -> Result<LocalConfig, LocalConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => LocalConfig::from_toml_str(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalConfig {
                source: Some(path.to_path_buf()),
                ..LocalConfig::default()
            }),
            Err(source) => Err(LocalConfigError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<LocalConfig, LocalConfigError> {
        let mut cfg: LocalConfig = toml::from_str(text).map_err(|e| LocalConfigError::Parse {
            path: path.to_path_buf(),
            message: toml_message(text, &e),
        })?;
        cfg.source = Some(path.to_path_buf());
        let invalid = |message: String| LocalConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for (alias, id) in &cfg.models {
            if !is_name(alias) {
                return Err(invalid(format!(
                    "[models] alias {alias:?} may only use 1–64 letters, digits, `.`, `_` or `-`"
                )));
            }
            if id.trim().is_empty() {
                return Err(invalid(format!(
                    "[models] {alias} is empty; set it to a concrete id such as \
                     \"anthropic:claude-haiku\""
                )));
            }
        }
        for (name, p) in &cfg.providers {
            if secret_kind(&p.api_key_env).is_some() {
                // Never echo it: it may be the key itself.
                return Err(invalid(format!(
                    "[providers.{name}] api_key_env looks like a key, not a variable name; it \
                     must hold the NAME of the environment variable (e.g. ANTHROPIC_API_KEY). \
                     Remove the key from this file and rotate it"
                )));
            }
            if let Some(url) = &p.base_url
                && !(url.starts_with("https://") && url.len() > "https://".len())
            {
                return Err(invalid(format!(
                    "[providers.{name}] base_url {url:?} must be an https:// URL: the gateway \
                     sends the key upstream, and only over TLS"
                )));
            }
            // The shape rule only: this names a variable of the daemon, never of a cage.
            if let Err(EnvNameError::Invalid { .. }) = check_env_name(&p.api_key_env) {
                return Err(invalid(format!(
                    "[providers.{name}] api_key_env must be an environment variable NAME such as \
                     ANTHROPIC_API_KEY (letters, digits and `_`)"
                )));
            }
        }
        for pair in &cfg.egress.allow_private {
            match kaged_api::HostPattern::parse(pair) {
                Ok(p)
                    if p.port.is_some()
                        && !matches!(p.host, kaged_api::HostMatch::Subdomains(_)) => {}
                Ok(_) => {
                    return Err(invalid(format!(
                        "[egress] allow_private entry {pair:?} must name one host and a port, \
                         e.g. \"10.0.0.5:5432\"; a wildcard or a missing port would open more \
                         than one service"
                    )));
                }
                Err(e) => return Err(invalid(format!("[egress] allow_private: {e}"))),
            }
        }
        cfg.worktrees.check().map_err(invalid)?;
        for p in &cfg.projects {
            if !p.path.is_absolute() {
                return Err(invalid(format!(
                    "[[projects]] path {} is relative; registry paths must be absolute",
                    p.path.display()
                )));
            }
        }
        Ok(cfg)
    }

    /// Maps every model alias the project uses to its concrete id, or lists each alias
    /// this config does not define (with the agent that uses it).
    pub fn resolve_models(
        &self,
        project: &Project,
    ) -> Result<BTreeMap<String, String>, UnknownAliases> {
        let (resolved, missing) = self.resolve_models_partially(project);
        if missing.is_empty() {
            Ok(resolved)
        } else {
            Err(UnknownAliases {
                file: self.source.clone(),
                missing,
            })
        }
    }

    /// What resolves, and what does not: a project view shows both.
    pub fn resolve_models_partially(
        &self,
        project: &Project,
    ) -> (BTreeMap<String, String>, Vec<UnknownAlias>) {
        let mut resolved = BTreeMap::new();
        let mut missing = Vec::new();
        for (agent, spec) in project.agents() {
            let Some(alias) = &spec.model else { continue };
            match self.models.get(alias) {
                Some(id) => {
                    resolved.insert(alias.clone(), id.clone());
                }
                None => missing.push(UnknownAlias {
                    agent,
                    alias: alias.clone(),
                }),
            }
        }
        (resolved, missing)
    }
}

/// `line:col: message` without the source excerpt `toml`'s `Display` adds: that excerpt
/// would print whatever sits on the line, and an operator may have pasted a key there.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = e.message().trim_end().to_string();
    if secret_kind(&message).is_some() {
        message = "invalid value (not shown: it looks like a credential)".into();
    }
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{line}:{column}: {message}")
        }
        None => message,
    }
}

impl Provider {
    /// Where `/p/<name>/...` goes, if anywhere.
    pub fn upstream(&self, name: &str) -> Option<String> {
        self.base_url.clone().or_else(|| match name {
            "anthropic" => Some("https://api.anthropic.com".to_owned()),
            "openai" => Some("https://api.openai.com/v1".to_owned()),
            _ => None,
        })
    }

    pub fn auth_for(&self, name: &str) -> ProviderAuth {
        self.auth.unwrap_or(if name == "anthropic" {
            ProviderAuth::XApiKey
        } else {
            ProviderAuth::Bearer
        })
    }

    /// Looks the key up through `lookup` (the daemon's captured environment; nothing here
    /// reads the process environment). `None` if the variable is unset or empty.
    pub fn api_key(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<ApiKey> {
        lookup(&self.api_key_env)
            .filter(|v| !v.is_empty())
            .map(ApiKey)
    }
}

/// A provider credential in memory. It prints as `<redacted>` so it cannot leak through
/// logs, error chains or `{:?}` of a containing struct.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key itself, for the one place that sends it to the provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Aliases a project uses that the operator's local.toml does not define.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct UnknownAliases {
    pub file: Option<PathBuf>,
    pub missing: Vec<UnknownAlias>,
}

impl fmt::Display for UnknownAliases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "local.toml".to_string(), |p| p.display().to_string());
        for (i, m) in self.missing.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "agent `{}` uses model alias `{}`, which {file} does not define; add \
                 `{} = \"provider:model\"` under [models]",
                m.agent, m.alias, m.alias
            )?;
        }
        Ok(())
    }
}
