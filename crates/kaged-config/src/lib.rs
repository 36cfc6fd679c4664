//! `config` owns the daemon's settings: `config.toml` < `KAGED_*` env < flags, merged once at
//! start-up with the source of every value recorded (design §3, §4). Nothing reads the process
//! environment after this; callers hand it a captured [`Env`]. It validates shape and
//! cross-field rules, but never touches the network or secrets' contents beyond loading them.

mod file;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kaged_deploy::Layout;
use serde::Serialize;

pub use file::FileConfig;

pub use kaged_api::{AuthMode, LimitEnforcement, SessionsOnStop, Source, Sourced};

fn parse_auth_mode(value: &str, origin: &str) -> Result<AuthMode, ConfigError> {
    value
        .parse()
        .map_err(|e: kaged_api::UnknownValue| ConfigError::Invalid {
            origin: origin.to_owned(),
            value: value.to_owned(),
            expected: e.expected,
        })
}

/// Where the sidecar nonce comes from (design §4). The value itself is read by `auth`.
#[derive(Clone, PartialEq, Eq)]
pub enum NonceSource {
    /// `KAGED_AUTH_SIDECAR_NONCE` or `auth.sidecar_nonce`; kept out of `Debug`.
    Inline(String),
    File(PathBuf),
}

impl fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NonceSource::Inline(_) => f.write_str("Inline([redacted])"),
            NonceSource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "config {path} holds a secret (`{key}`) but is readable by group or others (mode {mode:04o}); run `chmod 600 {path}` or move the secret to KAGED_AUTH_SIDECAR_NONCE / auth.sidecar_nonce_file"
    )]
    SecretReadable {
        path: PathBuf,
        key: &'static str,
        mode: u32,
    },
    #[error(
        "config {path} is writable by group or others (mode {mode:04o}), so anyone could change kaged's auth; run `chmod go-w {path}`"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error("{origin}: invalid value {value:?}; expected {expected}")]
    Invalid {
        origin: String,
        value: String,
        expected: &'static str,
    },
    #[error("{first} and {second} contradict each other; drop one of them")]
    Conflict { first: String, second: String },
    #[error("config file {path} was given with --config but does not exist")]
    Missing { path: PathBuf },
}

/// The `KAGED_*` variables captured once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    pub fn capture() -> Self {
        Env(std::env::vars()
            .filter(|(k, _)| k.starts_with("KAGED_"))
            .collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.get(key)
            .map(|v| parse_bool(v, &format!("env {key}")))
            .transpose()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Env(iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }
}

/// What the command line said; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub bind: Option<SocketAddr>,
    pub auth_mode: Option<String>,
    pub insecure: bool,
    pub no_sandbox: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionLimits {
    pub max_per_project: Sourced<usize>,
    pub max_per_operator: Sourced<usize>,
    pub scrollback_bytes: Sourced<usize>,
    /// `sessions.limits`: the operator's word on cage limits the host cannot enforce. Unset,
    /// each cage's own `limits.enforce` decides (strict unless it says best-effort). Set, it
    /// decides for every cage, whatever the cage says: the operator is the principal, and a
    /// project file (portable, possibly someone else's) may not relax what the operator
    /// demands. A project's best-effort never weakens more than leaving its limits out would.
    pub limits: Option<Sourced<LimitEnforcement>>,
    /// `sessions.on_stop`: `auto` (keep sessions unless systemd stops the unit for good),
    /// `keep` or `end`.
    pub on_stop: Sourced<SessionsOnStop>,
    /// `sessions.agent_idle_ms`: an agent whose screen has not changed for this long is
    /// waiting for the operator.
    pub agent_idle: Sourced<Duration>,
    /// `sessions.approval_timeout_secs`: how long an agent's held tool call waits for the
    /// operator before `approval_default` applies.
    pub approval_timeout: Sourced<Duration>,
    /// `sessions.approval_default`: `deny`, or `ask` (fall through to the CLI's own prompt).
    pub approval_default: Sourced<kaged_api::ApprovalDefault>,
}

/// How the listener treats slow and numerous clients; the daemon's `server` module explains
/// the policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerLimits {
    /// A connection must deliver a complete request head this soon after it starts waiting
    /// for one, which also bounds how long an idle keep-alive connection stays open.
    pub header_read_timeout: Sourced<Duration>,
    /// Open connections of every kind, WebSockets included.
    pub max_connections: Sourced<usize>,
    /// Connections from one address that have not yet delivered their first request head.
    pub max_pending_per_peer: Sourced<usize>,
}

/// The merged settings. Tests build these through [`Settings::resolve`] with a fake [`Env`].
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    pub bind: Sourced<SocketAddr>,
    pub auth_mode: Sourced<AuthMode>,
    pub allowed_hosts: Sourced<Vec<String>>,
    pub allowed_origins: Sourced<Vec<String>>,
    #[serde(skip)]
    pub sidecar_nonce: Option<Sourced<NonceSource>>,
    pub insecure_reason: Option<Sourced<String>>,
    /// Operators in this group (as the sidecar's `X-Kaged-User-Groups` names them) see and
    /// steer every session and may run uncaged; everyone else only their own.
    pub admin_group: Option<Sourced<String>>,
    pub insecure_bind: Sourced<bool>,
    pub launch_token_ttl: Sourced<Duration>,
    pub sandbox_enabled: Sourced<bool>,
    pub storage_url: Sourced<String>,
    pub sessions: SessionLimits,
    pub server: ServerLimits,
    pub log_level: Sourced<String>,
    /// `push.contact`: the VAPID `sub` claim (RFC 8292), a `mailto:` or `https:` URL push
    /// services may use to reach the operator.
    pub push_contact: Sourced<String>,
}

impl Settings {
    /// The settings as `kaged status` reports them: every value with its source, and nothing
    /// about the sidecar nonce.
    pub fn report(&self) -> kaged_api::SettingsReport {
        let count = |n: &usize| *n as u64;
        kaged_api::SettingsReport {
            config_file: self.config_file.as_ref().map(|p| p.display().to_string()),
            bind: self.bind.map(ToString::to_string),
            auth_mode: self.auth_mode.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            allowed_origins: self.allowed_origins.clone(),
            insecure_reason: self.insecure_reason.clone(),
            admin_group: self.admin_group.clone(),
            insecure_bind: self.insecure_bind.clone(),
            launch_token_ttl_secs: self.launch_token_ttl.map(Duration::as_secs),
            sandbox_enabled: self.sandbox_enabled.clone(),
            storage_url: self.storage_url.clone(),
            sessions: kaged_api::SessionLimitsReport {
                max_per_project: self.sessions.max_per_project.map(count),
                max_per_operator: self.sessions.max_per_operator.map(count),
                scrollback_bytes: self.sessions.scrollback_bytes.map(count),
                limits: self.sessions.limits.clone(),
                on_stop: self.sessions.on_stop.clone(),
                agent_idle_ms: self.sessions.agent_idle.map(|d| d.as_millis() as u64),
                approval_timeout_secs: self.sessions.approval_timeout.map(Duration::as_secs),
                approval_default: self.sessions.approval_default.clone(),
            },
            server: kaged_api::ServerLimitsReport {
                header_read_timeout_secs: self.server.header_read_timeout.map(Duration::as_secs),
                max_connections: self.server.max_connections.map(count),
                max_pending_per_peer: self.server.max_pending_per_peer.map(count),
            },
            log_level: self.log_level.clone(),
            push_contact: self.push_contact.clone(),
        }
    }

    /// Merges file < env < flags. The config file is `--config`, else the mode's path if it
    /// exists.
    // Long on purpose: one `pick` per setting, each a few lines, in the order of
    // docs/configuration.md; the logic is `pick`, the length is the number of settings.
    pub fn resolve(layout: &Layout, env: &Env, flags: &Flags) -> Result<Settings, ConfigError> {
        let (path, explicit) = match &flags.config {
            Some(p) => (p.clone(), true),
            None => (layout.config_file.clone(), false),
        };
        let file = match FileConfig::load(&path) {
            Ok(f) => Some(f),
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !explicit =>
            {
                None
            }
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(ConfigError::Missing { path });
            }
            Err(e) => return Err(e),
        };
        let fsrc = || Source::File(path.display().to_string());
        let fc = file.clone().unwrap_or_default();
        let mode = layout.mode;

        let bind = pick(
            Sourced::new(kaged_deploy::default_bind(mode), Source::Mode),
            fc.bind
                .as_deref()
                .map(|v| parse_addr(v, &format!("{}: bind", path.display())))
                .transpose()?
                .map(|v| Sourced::new(v, fsrc())),
            env.get("KAGED_BIND")
                .map(|v| parse_addr(v, "env KAGED_BIND"))
                .transpose()?
                .map(|v| Sourced::new(v, Source::Env("KAGED_BIND".into()))),
            flags
                .bind
                .map(|v| Sourced::new(v, Source::Flag("--bind".into()))),
        );

        let auth_mode = pick(
            Sourced::new(AuthMode::default_for(mode), Source::Mode),
            fc.auth
                .mode
                .as_deref()
                .map(|v| parse_auth_mode(v, &format!("{}: auth.mode", path.display())))
                .transpose()?
                .map(|v| Sourced::new(v, fsrc())),
            auth_from_env(env)?,
            auth_from_flags(flags)?,
        );

        let allowed_hosts = pick(
            Sourced::new(Vec::new(), Source::Default),
            fc.auth
                .allowed_hosts
                .clone()
                .map(|v| Sourced::new(v, fsrc())),
            env.get("KAGED_ALLOWED_HOSTS")
                .map(|v| Sourced::new(split_list(v), Source::Env("KAGED_ALLOWED_HOSTS".into()))),
            None,
        );
        let allowed_origins = pick(
            Sourced::new(Vec::new(), Source::Default),
            fc.auth
                .allowed_origins
                .clone()
                .map(|v| Sourced::new(v, fsrc())),
            env.get("KAGED_ALLOWED_ORIGINS")
                .map(|v| Sourced::new(split_list(v), Source::Env("KAGED_ALLOWED_ORIGINS".into()))),
            None,
        );
        for origin in &allowed_origins.value {
            if origin == "null"
                || !(origin.starts_with("http://") || origin.starts_with("https://"))
            {
                return Err(ConfigError::Invalid {
                    origin: format!("{}: auth.allowed_origins", allowed_origins.source),
                    value: origin.clone(),
                    expected: "a full origin such as `https://kaged.example.com`",
                });
            }
        }

        let sidecar_nonce = match env.get("KAGED_AUTH_SIDECAR_NONCE") {
            Some(v) => Some(Sourced::new(
                NonceSource::Inline(v.to_owned()),
                Source::Env("KAGED_AUTH_SIDECAR_NONCE".into()),
            )),
            None => match (&fc.auth.sidecar_nonce, &fc.auth.sidecar_nonce_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Conflict {
                        first: format!("{}: auth.sidecar_nonce", path.display()),
                        second: "auth.sidecar_nonce_file".into(),
                    });
                }
                (Some(v), None) => Some(Sourced::new(NonceSource::Inline(v.clone()), fsrc())),
                (None, Some(p)) => Some(Sourced::new(NonceSource::File(p.clone()), fsrc())),
                (None, None) => None,
            },
        };

        let insecure_reason = env
            .get("KAGED_INSECURE_REASON")
            .map(|v| Sourced::new(v.to_owned(), Source::Env("KAGED_INSECURE_REASON".into())))
            .or_else(|| {
                fc.auth
                    .insecure_reason
                    .clone()
                    .map(|v| Sourced::new(v, fsrc()))
            });

        let admin_group = env
            .get("KAGED_ADMIN_GROUP")
            .map(|v| Sourced::new(v.to_owned(), Source::Env("KAGED_ADMIN_GROUP".into())))
            .or_else(|| fc.auth.admin_group.clone().map(|v| Sourced::new(v, fsrc())));
        if let Some(g) = &admin_group
            && (g.value.trim().is_empty() || g.value.contains(','))
        {
            return Err(ConfigError::Invalid {
                origin: format!("{}: auth.admin_group", g.source),
                value: g.value.clone(),
                expected: "one group name, as the sidecar sends it in X-Kaged-User-Groups",
            });
        }

        let insecure_bind = match env.flag("KAGED_INSECURE_BIND")? {
            Some(v) => Sourced::new(v, Source::Env("KAGED_INSECURE_BIND".into())),
            None => Sourced::new(false, Source::Default),
        };

        // A number of seconds from the file, within `range`.
        let secs = |v: Option<u64>,
                    range: std::ops::RangeInclusive<u64>,
                    default: u64,
                    key: &str,
                    expected: &'static str|
         -> Result<Sourced<Duration>, ConfigError> {
            match v {
                Some(s) if !range.contains(&s) => Err(ConfigError::Invalid {
                    origin: format!("{}: {key}", path.display()),
                    value: s.to_string(),
                    expected,
                }),
                Some(s) => Ok(Sourced::new(Duration::from_secs(s), fsrc())),
                None => Ok(Sourced::new(Duration::from_secs(default), Source::Default)),
            }
        };
        let launch_token_ttl = secs(
            fc.auth.launch_token_ttl_secs,
            1..=3600,
            120,
            "auth.launch_token_ttl_secs",
            "a number of seconds between 1 and 3600 (launch URLs must be short-lived)",
        )?;

        let sandbox_enabled = pick(
            Sourced::new(true, Source::Default),
            fc.sandbox.enabled.map(|v| Sourced::new(v, fsrc())),
            env.flag("KAGED_NO_SANDBOX")?
                .map(|v| Sourced::new(!v, Source::Env("KAGED_NO_SANDBOX".into()))),
            flags
                .no_sandbox
                .then(|| Sourced::new(false, Source::Flag("--no-sandbox".into()))),
        );

        let default_url = format!("sqlite://{}", layout.database.display());
        let storage_url = pick(
            Sourced::new(default_url, Source::Mode),
            fc.storage.url.clone().map(|v| Sourced::new(v, fsrc())),
            env.get("KAGED_STORAGE_URL")
                .map(|v| Sourced::new(v.to_owned(), Source::Env("KAGED_STORAGE_URL".into()))),
            None,
        );
        if !storage_url.value.starts_with("sqlite://") {
            return Err(ConfigError::Invalid {
                origin: format!("{}: storage.url", storage_url.source),
                value: storage_url.value.clone(),
                expected: "a `sqlite:///absolute/path.db` URL (postgres:// is not supported yet)",
            });
        }

        let num =
            |v: Option<usize>, default: usize, key: &str| -> Result<Sourced<usize>, ConfigError> {
                match v {
                    Some(0) => Err(ConfigError::Invalid {
                        origin: format!("{}: {key}", path.display()),
                        value: "0".into(),
                        expected: "a positive number",
                    }),
                    Some(n) => Ok(Sourced::new(n, fsrc())),
                    None => Ok(Sourced::new(default, Source::Default)),
                }
            };
        let sessions = SessionLimits {
            max_per_project: num(fc.sessions.max_per_project, 16, "sessions.max_per_project")?,
            max_per_operator: num(
                fc.sessions.max_per_operator,
                64,
                "sessions.max_per_operator",
            )?,
            scrollback_bytes: num(
                fc.sessions.scrollback_bytes,
                4 * 1024 * 1024,
                "sessions.scrollback_bytes",
            )?,
            limits: env
                .get("KAGED_SESSIONS_LIMITS")
                .map(|v| {
                    let v = parse_enforcement(v, "env KAGED_SESSIONS_LIMITS")?;
                    Ok(Sourced::new(v, Source::Env("KAGED_SESSIONS_LIMITS".into())))
                })
                .or_else(|| {
                    fc.sessions.limits.as_deref().map(|v| {
                        let origin = format!("{}: sessions.limits", path.display());
                        Ok(Sourced::new(parse_enforcement(v, &origin)?, fsrc()))
                    })
                })
                .transpose()?,
            on_stop: match env.get("KAGED_SESSIONS_ON_STOP") {
                Some(v) => Sourced::new(
                    parse_on_stop(v, "env KAGED_SESSIONS_ON_STOP")?,
                    Source::Env("KAGED_SESSIONS_ON_STOP".into()),
                ),
                None => match fc.sessions.on_stop.as_deref() {
                    Some(v) => {
                        let origin = format!("{}: sessions.on_stop", path.display());
                        Sourced::new(parse_on_stop(v, &origin)?, fsrc())
                    }
                    None => Sourced::new(SessionsOnStop::Auto, Source::Default),
                },
            },
            agent_idle: match fc.sessions.agent_idle_ms {
                Some(ms @ 200..=3_600_000) => Sourced::new(Duration::from_millis(ms), fsrc()),
                Some(ms) => {
                    return Err(ConfigError::Invalid {
                        origin: format!("{}: sessions.agent_idle_ms", path.display()),
                        value: ms.to_string(),
                        expected: "milliseconds between 200 and 3600000",
                    });
                }
                None => Sourced::new(Duration::from_secs(5), Source::Default),
            },
            approval_timeout: match fc.sessions.approval_timeout_secs {
                Some(secs @ 1..=86_400) => Sourced::new(Duration::from_secs(secs), fsrc()),
                Some(secs) => {
                    return Err(ConfigError::Invalid {
                        origin: format!("{}: sessions.approval_timeout_secs", path.display()),
                        value: secs.to_string(),
                        expected: "seconds between 1 and 86400",
                    });
                }
                None => Sourced::new(Duration::from_secs(600), Source::Default),
            },
            approval_default: match fc.sessions.approval_default.as_deref() {
                None => Sourced::new(kaged_api::ApprovalDefault::Deny, Source::Default),
                Some("deny") => Sourced::new(kaged_api::ApprovalDefault::Deny, fsrc()),
                Some("ask") => Sourced::new(kaged_api::ApprovalDefault::Ask, fsrc()),
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        origin: format!("{}: sessions.approval_default", path.display()),
                        value: other.to_owned(),
                        expected: "`deny` or `ask`",
                    });
                }
            },
        };

        let header_read_timeout = secs(
            fc.server.header_read_timeout_secs,
            1..=300,
            10,
            "server.header_read_timeout_secs",
            "a number of seconds between 1 and 300",
        )?;
        let server = ServerLimits {
            header_read_timeout,
            max_connections: num(fc.server.max_connections, 4096, "server.max_connections")?,
            max_pending_per_peer: num(
                fc.server.max_pending_per_peer,
                256,
                "server.max_pending_per_peer",
            )?,
        };

        let log_level = pick(
            Sourced::new("info".to_owned(), Source::Default),
            fc.log.level.clone().map(|v| Sourced::new(v, fsrc())),
            env.get("KAGED_LOG")
                .map(|v| Sourced::new(v.to_owned(), Source::Env("KAGED_LOG".into()))),
            None,
        );

        let push_contact = match fc.push.contact.clone() {
            Some(c) if c.starts_with("mailto:") || c.starts_with("https://") => {
                Sourced::new(c, fsrc())
            }
            Some(c) => {
                return Err(ConfigError::Invalid {
                    origin: format!("{}: push.contact", path.display()),
                    value: c,
                    expected: "a `mailto:you@example.com` or `https://` URL (RFC 8292's subject)",
                });
            }
            None => Sourced::new("mailto:kaged@localhost".to_owned(), Source::Default),
        };

        // `--insecure` keeps the loopback bind unless --bind says otherwise (ADR-0007), which
        // the precedence above already guarantees: nothing here widens the bind.
        Ok(Settings {
            config_file: file.map(|_| path),
            bind,
            auth_mode,
            allowed_hosts,
            allowed_origins,
            sidecar_nonce,
            insecure_reason,
            admin_group,
            insecure_bind,
            launch_token_ttl,
            sandbox_enabled,
            storage_url,
            sessions,
            server,
            log_level,
            push_contact,
        })
    }

    /// The SQLite file named by `storage.url`.
    pub fn database_path(&self) -> &Path {
        Path::new(
            self.storage_url
                .value
                .strip_prefix("sqlite://")
                .unwrap_or(&self.storage_url.value),
        )
    }
}

/// Later layers win: default < file < env < flag.
fn pick<T>(
    default: Sourced<T>,
    file: Option<Sourced<T>>,
    env: Option<Sourced<T>>,
    flag: Option<Sourced<T>>,
) -> Sourced<T> {
    flag.or(env).or(file).unwrap_or(default)
}

fn auth_from_env(env: &Env) -> Result<Option<Sourced<AuthMode>>, ConfigError> {
    let explicit = env
        .get("KAGED_AUTH_MODE")
        .map(|v| parse_auth_mode(v, "env KAGED_AUTH_MODE"))
        .transpose()?;
    let insecure = env.flag("KAGED_INSECURE")?.unwrap_or(false);
    match (explicit, insecure) {
        (Some(m), true) if m != AuthMode::Insecure => Err(ConfigError::Conflict {
            first: "KAGED_INSECURE=1".into(),
            second: format!("KAGED_AUTH_MODE={m}"),
        }),
        (Some(m), _) => Ok(Some(Sourced::new(m, Source::Env("KAGED_AUTH_MODE".into())))),
        (None, true) => Ok(Some(Sourced::new(
            AuthMode::Insecure,
            Source::Env("KAGED_INSECURE".into()),
        ))),
        (None, false) => Ok(None),
    }
}

fn auth_from_flags(flags: &Flags) -> Result<Option<Sourced<AuthMode>>, ConfigError> {
    let explicit = flags
        .auth_mode
        .as_deref()
        .map(|v| parse_auth_mode(v, "flag --auth-mode"))
        .transpose()?;
    match (explicit, flags.insecure) {
        (Some(m), true) if m != AuthMode::Insecure => Err(ConfigError::Conflict {
            first: "--insecure".into(),
            second: format!("--auth-mode {m}"),
        }),
        (Some(m), _) => Ok(Some(Sourced::new(m, Source::Flag("--auth-mode".into())))),
        (None, true) => Ok(Some(Sourced::new(
            AuthMode::Insecure,
            Source::Flag("--insecure".into()),
        ))),
        (None, false) => Ok(None),
    }
}

fn parse_enforcement(value: &str, origin: &str) -> Result<LimitEnforcement, ConfigError> {
    value
        .parse()
        .map_err(|e: kaged_api::UnknownValue| ConfigError::Invalid {
            origin: origin.to_owned(),
            value: value.to_owned(),
            expected: e.expected,
        })
}

fn parse_on_stop(value: &str, origin: &str) -> Result<SessionsOnStop, ConfigError> {
    value
        .parse()
        .map_err(|e: kaged_api::UnknownValue| ConfigError::Invalid {
            origin: origin.to_owned(),
            value: value.to_owned(),
            expected: e.expected,
        })
}

fn parse_addr(value: &str, origin: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        origin: origin.to_owned(),
        value: value.to_owned(),
        expected: "an IP:PORT address such as `127.0.0.1:7777`",
    })
}

fn parse_bool(value: &str, origin: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            value: value.to_owned(),
            expected: "`1` or `0`",
        }),
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests;
