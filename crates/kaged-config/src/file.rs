//! The on-disk `config.toml` shape. Every table denies unknown keys so a typo is an error that
//! names the key and the file, not a silently ignored setting.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ConfigError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    #[serde(default)]
    pub auth: AuthTable,
    #[serde(default)]
    pub sandbox: SandboxTable,
    #[serde(default)]
    pub storage: StorageTable,
    #[serde(default)]
    pub sessions: SessionsTable,
    #[serde(default)]
    pub server: ServerTable,
    #[serde(default)]
    pub log: LogTable,
    #[serde(default)]
    pub push: PushTable,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTable {
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthTable {
    pub mode: Option<String>,
    pub allowed_hosts: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub sidecar_nonce: Option<String>,
    pub sidecar_nonce_file: Option<PathBuf>,
    pub insecure_reason: Option<String>,
    pub admin_group: Option<String>,
    pub launch_token_ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxTable {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageTable {
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsTable {
    pub max_per_project: Option<usize>,
    pub max_per_operator: Option<usize>,
    pub scrollback_bytes: Option<usize>,
    pub limits: Option<String>,
    pub on_stop: Option<String>,
    pub agent_idle_ms: Option<u64>,
    pub approval_timeout_secs: Option<u64>,
    pub approval_default: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTable {
    pub header_read_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_pending_per_peer: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogTable {
    pub level: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let config: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: redacted_message(&text, &e),
        })?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(ConfigError::Writable {
                path: path.to_owned(),
                mode,
            });
        }
        if config.auth.sidecar_nonce.is_some() && mode & 0o077 != 0 {
            return Err(ConfigError::SecretReadable {
                path: path.to_owned(),
                key: "auth.sidecar_nonce",
                mode,
            });
        }
        Ok(config)
    }
}

/// `line L, column C: message`, without the source excerpt `toml`'s `Display` adds and without the
/// values its messages quote: the offending line may hold `sidecar_nonce`. Key names stay,
/// because an unknown or missing key is what the operator must see to fix the file.
fn redacted_message(text: &str, e: &toml::de::Error) -> String {
    // Serde's type and value errors quote the value; key and syntax errors quote key names
    // and expected tokens, which the operator needs.
    let message = e.message().trim_end();
    let about_a_value = ["invalid type", "invalid value", "invalid length"]
        .iter()
        .any(|k| message.starts_with(k));
    let message = if about_a_value {
        redact_quoted(message)
    } else {
        message.to_owned()
    };
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Replaces what sits between backticks or double quotes with `…`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '`' || c == '"' {
                    open = Some(c);
                }
            }
        }
    }
    out
}
