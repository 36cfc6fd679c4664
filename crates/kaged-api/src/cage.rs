//! Cage policy (design §7) as a project file, an API request and the sandbox compiler all
//! see it, plus the summary of a compiled cage. Policies carry no host paths: filesystem
//! grants are `project:/…` paths, resolved against a project root only by the sandbox.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ts_rs::TS;

use crate::egress::{EgressRules, HostPattern, HostPatternError};

/// Environment variable names: what a shell accepts, at most 128 characters.
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/// Either a cage policy or the explicit, audited opt-out `"disabled"`.
#[derive(Debug, Clone, PartialEq, TS)]
#[ts(type = "\"disabled\" | CagePolicy")]
pub enum Cage {
    Disabled,
    Policy(CagePolicy),
}

impl Default for Cage {
    fn default() -> Self {
        Cage::Policy(CagePolicy::default())
    }
}

impl Serialize for Cage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cage::Disabled => s.serialize_str("disabled"),
            Cage::Policy(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Cage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Policy(CagePolicy),
        }
        match Repr::deserialize(d)? {
            Repr::Word(w) if w == "disabled" => Ok(Cage::Disabled),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "cage must be a policy mapping or \"disabled\", not {w:?}"
            ))),
            Repr::Policy(p) => Ok(Cage::Policy(p)),
        }
    }
}

impl JsonSchema for Cage {
    fn schema_name() -> Cow<'static, str> {
        "Cage".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let policy = generator.subschema_for::<CagePolicy>();
        json_schema!({
            "description": "A cage policy, or \"disabled\" to run without a sandbox (audited).",
            "anyOf": [ { "const": "disabled" }, policy ]
        })
    }
}

/// What a cage lets through (design §7). The sandbox crate compiles this into bwrap argv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CagePolicy {
    /// Filesystem grants. Omitted: the whole project, read-write.
    #[serde(default = "default_fs")]
    pub fs: Vec<FsGrant>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub limits: Limits,
    /// Names of environment variables passed into the cage (values come from the daemon's
    /// environment at start; everything else is cleared). Omitted: the terminal and locale
    /// basics, [`DEFAULT_CAGE_ENV`] (the same default as the sandbox crate's).
    #[serde(default = "default_env")]
    #[schemars(inner(regex(pattern = ENV_NAME_PATTERN)))]
    pub env: Vec<String>,
    /// Lets the cage write the project's `.kaged/` and git's `config`, `hooks/` and `info/`,
    /// which are otherwise read-only in every cage: with them a cage could rewrite its own
    /// policy, or plant code that git runs on the host the next time the operator uses it.
    /// Audited when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub writable_policy_and_git_hooks: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl Default for CagePolicy {
    fn default() -> Self {
        CagePolicy {
            fs: default_fs(),
            network: Network::default(),
            state: State::default(),
            limits: Limits::default(),
            env: default_env(),
            writable_policy_and_git_hooks: false,
        }
    }
}

/// The environment allowlist of a cage whose policy does not say `env:`.
pub const DEFAULT_CAGE_ENV: [&str; 4] = ["TERM", "LANG", "COLORTERM", "LC_ALL"];

fn default_env() -> Vec<String> {
    DEFAULT_CAGE_ENV.iter().map(|s| s.to_string()).collect()
}

fn default_fs() -> Vec<FsGrant> {
    vec![FsGrant {
        path: PortablePath::project_root(),
        access: Access::Rw,
    }]
}

/// One filesystem entry made visible in the cage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct FsGrant {
    pub path: PortablePath,
    /// Omitted: read-only, the least that makes a grant useful.
    #[serde(default)]
    pub access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Ro,
    Rw,
}

/// `none` (the default), `host`, or `{allow, deny}`: a network namespace of its own with only
/// loopback, and an egress gateway on the host that lets through what the rules name.
#[derive(Debug, Clone, PartialEq, Eq, Default, TS)]
#[ts(type = "\"none\" | \"host\" | EgressRules")]
pub enum Network {
    /// A network namespace with only loopback: no connectivity at all.
    #[default]
    None,
    /// The host's network: the LAN, the host's loopback (kaged's own port included), anything.
    Host,
    /// Only loopback, plus an HTTP proxy on it that reaches what the rules allow.
    Filtered(EgressRules),
}

impl Network {
    /// The word or `filtered`, for messages and audit rows.
    pub fn kind(&self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Host => "host",
            Network::Filtered(_) => "filtered",
        }
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Network::None => s.serialize_str("none"),
            Network::Host => s.serialize_str("host"),
            Network::Filtered(rules) => rules.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Rules(EgressRules),
        }
        let bad = |e: HostPatternError| serde::de::Error::custom(e.to_string());
        match Repr::deserialize(d)? {
            Repr::Word(w) if w == "none" => Ok(Network::None),
            Repr::Word(w) if w == "host" => Ok(Network::Host),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "network must be \"none\", \"host\" or {{allow: [...], deny: [...]}}, not {w:?}"
            ))),
            Repr::Rules(rules) => {
                for entry in rules.allow.iter().chain(&rules.deny) {
                    HostPattern::parse(entry).map_err(bad)?;
                }
                Ok(Network::Filtered(rules))
            }
        }
    }
}

impl JsonSchema for Network {
    fn schema_name() -> Cow<'static, str> {
        "Network".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rules = generator.subschema_for::<EgressRules>();
        json_schema!({
            "description": "\"none\" (only loopback), \"host\" (the host's network, loud), or {allow, deny}: hosts with an optional port reached through the cage's egress gateway; `*.example.com` matches subdomains only; deny wins.",
            "anyOf": [ { "enum": ["none", "host"] }, rules ]
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Scratch space is thrown away when the session ends.
    #[default]
    Ephemeral,
    /// Scratch space survives across sessions of this project.
    Persistent,
}

/// Resource limits; each is optional. `walltime` is enforced by the session broker everywhere;
/// memory, pids and cpu need a cgroup, and where the host cannot give one, `enforce` (and the
/// operator's `sessions.limits`) decides whether the session is refused or runs without them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walltime: Option<Walltime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4_194_304))]
    pub pids: Option<u32>,
    /// CPUs, fractional allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 1024))]
    pub cpu: Option<f64>,
    /// What to do where memory, pids or cpu cannot be enforced. Omitted: `strict`.
    #[serde(default, skip_serializing_if = "LimitEnforcement::is_strict")]
    pub enforce: LimitEnforcement,
}

/// Whether a session may run when the host cannot enforce its memory, pids or cpu limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "kebab-case")]
pub enum LimitEnforcement {
    /// Refuse to start the session, saying which limit and why.
    #[default]
    Strict,
    /// Start it without them; the session's summary and the audit log say so.
    BestEffort,
}

impl LimitEnforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitEnforcement::Strict => "strict",
            LimitEnforcement::BestEffort => "best-effort",
        }
    }

    fn is_strict(&self) -> bool {
        *self == LimitEnforcement::Strict
    }
}

impl fmt::Display for LimitEnforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LimitEnforcement {
    type Err = crate::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(LimitEnforcement::Strict),
            "best-effort" => Ok(LimitEnforcement::BestEffort),
            other => Err(crate::UnknownValue {
                what: "limit enforcement",
                value: other.to_owned(),
                expected: "`strict` or `best-effort`",
            }),
        }
    }
}

impl Limits {
    /// Whether any limit needs a cgroup (walltime does not).
    pub fn needs_cgroup(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpu.is_some()
    }

    pub fn walltime_duration(&self) -> Option<std::time::Duration> {
        self.walltime
            .map(|w| std::time::Duration::from_secs(w.seconds()))
    }

    /// The cgroup limits as the policy would write them, e.g. `memory = 2G, cpu = 1.5`.
    pub fn describe_cgroup_limits(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.memory {
            parts.push(format!("memory = {m}"));
        }
        if let Some(p) = self.pids {
            parts.push(format!("pids = {p}"));
        }
        if let Some(c) = self.cpu {
            parts.push(format!("cpu = {c}"));
        }
        parts.join(", ")
    }
}

/// Largest `pids` limit (the kernel's `pid_max` ceiling).
pub const MAX_PIDS: i64 = 4_194_304;
/// Largest `cpu` limit.
pub const MAX_CPU: f64 = 1024.0;

/// A wall-clock limit in seconds. Written as seconds or `30s`/`10m`/`2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, TS)]
#[ts(type = "number | string")]
pub struct Walltime(pub u64);

impl Walltime {
    pub const PATTERN: &'static str = "^[0-9]+[smh]?$";

    pub fn seconds(self) -> u64 {
        self.0
    }

    /// Parses `90`, `90s`, `10m` or `2h`; `None` for anything else, zero or overflow.
    pub fn parse(s: &str) -> Option<Walltime> {
        let (digits, unit) = match s.strip_suffix(['s', 'm', 'h']) {
            Some(d) => (d, &s[d.len()..]),
            None => (s, "s"),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        let mult = match unit {
            "m" => 60,
            "h" => 3600,
            _ => 1,
        };
        n.checked_mul(mult).filter(|&v| v > 0).map(Walltime)
    }
}

/// A size in bytes. Written as bytes or with a binary suffix `K`/`M`/`G`/`T` (`2G`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, TS)]
#[ts(type = "number | string")]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const PATTERN: &'static str = "^[0-9]+[KMGT]?$";

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `1048576`, `512M`, `2G`; `None` for anything else, zero or overflow.
    pub fn parse(s: &str) -> Option<ByteSize> {
        let (digits, shift) = match s.strip_suffix(['K', 'M', 'G', 'T']) {
            Some(d) => (d, 10 * (1 + "KMGT".find(&s[d.len()..])?)),
            None => (s, 0),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        n.checked_mul(1u64 << shift)
            .filter(|&v| v > 0)
            .map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary suffix that divides it exactly (`2G`, `1536M`), else bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if self.0 >= 1 << shift && self.0.trailing_zeros() >= shift {
                return write!(f, "{}{suffix}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

macro_rules! number_or_string {
    ($ty:ident, $what:literal, $description:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$ty, E> {
                        if v == 0 {
                            return Err(E::custom(concat!($what, " must be at least 1")));
                        }
                        Ok($ty(v))
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$ty, E> {
                        let v = u64::try_from(v)
                            .map_err(|_| E::custom(concat!($what, " must be positive")))?;
                        self.visit_u64(v)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::parse(v).ok_or_else(|| {
                            E::custom(format!(concat!("invalid ", $what, ": {:?}"), v))
                        })
                    }
                }
                d.deserialize_any(V)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": $description,
                    "anyOf": [
                        { "type": "integer", "minimum": 1 },
                        { "type": "string", "pattern": $ty::PATTERN }
                    ]
                })
            }
        }
    };
}

number_or_string!(
    Walltime,
    "a walltime (seconds, or 30s/10m/2h)",
    "Wall-clock limit: seconds, or a number with s, m or h."
);
number_or_string!(
    ByteSize,
    "a size (bytes, or with K/M/G/T)",
    "Size: bytes, or a number with a binary suffix K, M, G or T."
);

/// The namespace a portable path lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathScheme {
    /// `project:/` — relative to the project root (the directory holding `.kaged/`).
    Project,
    /// `config:/` — relative to the operator's kaged config directory.
    Config,
}

/// A `project:/…` or `config:/…` path, lexically normalised (no `.`, `..` or `//`).
///
/// Host paths never appear in a project (ADR-0011); each operator's daemon resolves these
/// against its own directories with [`PortablePath::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, TS)]
#[serde(transparent)]
#[ts(type = "string")]
pub struct PortablePath(String);

impl PortablePath {
    pub const PATTERN: &'static str = "^(project|config):/";

    /// `project:/`, the whole project.
    pub fn project_root() -> PortablePath {
        PortablePath("project:/".into())
    }

    /// Parses and normalises `project:/…` or `config:/…`; `..` may not climb above the root.
    pub fn parse(s: &str) -> Result<PortablePath, PathError> {
        let (scheme, rest) = if let Some(r) = s.strip_prefix("project:") {
            ("project", r)
        } else if let Some(r) = s.strip_prefix("config:") {
            ("config", r)
        } else if s.starts_with('/') || s.starts_with('~') || looks_like_windows_path(s) {
            return Err(PathError::Absolute);
        } else {
            return Err(PathError::Naked);
        };
        let Some(rest) = rest.strip_prefix('/') else {
            return Err(PathError::Naked);
        };
        let mut parts: Vec<&str> = Vec::new();
        for c in rest.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::Escape);
                    }
                }
                c => parts.push(c),
            }
        }
        Ok(PortablePath(format!("{scheme}:/{}", parts.join("/"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn scheme(&self) -> PathScheme {
        if self.0.starts_with("config:") {
            PathScheme::Config
        } else {
            PathScheme::Project
        }
    }

    /// The path below its root, without a leading `/` (`""` for the root itself).
    pub fn relative(&self) -> &str {
        match self.scheme() {
            PathScheme::Project => &self.0["project:/".len()..],
            PathScheme::Config => &self.0["config:/".len()..],
        }
    }

    /// The host path on this operator's machine.
    pub fn resolve(&self, project_root: &Path, config_dir: &Path) -> PathBuf {
        let base = match self.scheme() {
            PathScheme::Project => project_root,
            PathScheme::Config => config_dir,
        };
        if self.relative().is_empty() {
            base.to_path_buf()
        } else {
            base.join(self.relative())
        }
    }
}

impl fmt::Display for PortablePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PortablePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PortablePath::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for PortablePath {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "PortablePath".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A portable path: project:/… (in the project) or config:/… (the \
                            operator's kaged config directory).",
            "type": "string",
            "pattern": PortablePath::PATTERN
        })
    }
}

fn looks_like_windows_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

/// Why a string is not a portable path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("an absolute host path is not portable; use project:/… or config:/…")]
    Absolute,
    #[error("a path needs the project:/ or config:/ prefix")]
    Naked,
    #[error("`..` climbs above the root")]
    Escape,
}

/// Why an environment variable name may not be allowlisted into a cage. This is the one rule,
/// used by the project file's checks, the session API and the cage compiler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvNameError {
    #[error(
        "{name:?} is not an environment variable name; use letters, digits and `_`, not starting with a digit (NAME only, never NAME=value)"
    )]
    Invalid { name: String },
    #[error("{name:?} may not enter a cage: {reason}")]
    Reserved { name: String, reason: &'static str },
}

pub fn check_env_name(name: &str) -> Result<(), EnvNameError> {
    let b = name.as_bytes();
    let shaped = (1..=128).contains(&b.len())
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_');
    if !shaped {
        return Err(EnvNameError::Invalid {
            name: name.to_owned(),
        });
    }
    let reason = if name.to_ascii_uppercase().starts_with("KAGED_") {
        "KAGED_* variables carry the daemon's secrets"
    } else if name == "HOME" {
        "the cage sets HOME to its own home directory"
    } else {
        return Ok(());
    };
    Err(EnvNameError::Reserved {
        name: name.to_owned(),
        reason,
    })
}

/// What a compiled cage can see and do, for the audit trail, the API and the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct CageSummary {
    pub grants: Vec<GrantSummary>,
    pub network: Network,
    pub state: State,
    /// As requested; `walltime` is enforced by the session broker, the rest as
    /// `cgroup_limits` says.
    pub limits: Limits,
    pub cgroup_limits: CgroupLimits,
    /// Names of the variables passed in (values are never recorded).
    pub env: Vec<String>,
    /// Host paths hidden by a mask inside the cage.
    #[ts(type = "Array<string>")]
    pub masked: Vec<PathBuf>,
    /// Paths the cage can read but not write, whatever its grants: the policy and git's
    /// config and hooks.
    #[ts(type = "Array<string>")]
    pub protected: Vec<PathBuf>,
    /// The policy said `writable_policy_and_git_hooks`: nothing is protected (audited).
    pub protection_lifted: bool,
    #[ts(type = "string")]
    pub cwd: PathBuf,
    pub pty: bool,
    /// Whether nested user namespaces are forbidden (needs bubblewrap ≥ 0.8).
    pub nested_userns_disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct GrantSummary {
    pub path: PortablePath,
    /// The real host path, which is also the path inside the cage.
    #[ts(type = "string")]
    pub host_path: PathBuf,
    pub access: Access,
}

/// What happened to a cage's memory, pids and cpu limits: the sandbox reports whether it could
/// enforce them, and the daemon decides whether a cage it could not is refused or runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CgroupLimits {
    /// The policy sets no memory, pids or cpu limit.
    NotRequested,
    /// Enforced by the kernel through a cgroup.
    Enforced {
        via: LimitMechanism,
        /// The session's own cgroup, when kaged created it (`delegated_cgroup`).
        #[ts(type = "string | null")]
        cgroup: Option<PathBuf>,
    },
    /// Requested but this host cannot enforce them: the sandbox's report. A session runs with
    /// it only as [`CgroupLimits::BestEffort`], or was recorded by an earlier kaged, which ran
    /// such cages anyway.
    NotEnforced { reason: String },
    /// Not enforced, and the session ran anyway because best-effort was allowed (audited as
    /// `cage.limits_not_enforced`).
    BestEffort {
        reason: String,
        /// Who allowed it: the policy's `limits.enforce` or the operator's `sessions.limits`.
        allowed_by: String,
    },
}

/// How a cage's cgroup limits are put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum LimitMechanism {
    /// A cgroup of its own in the cgroup v2 subtree delegated to the daemon.
    DelegatedCgroup,
    /// A transient `systemd-run --user --scope` unit around the cage.
    SystemdScope,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn env_names_follow_one_rule() {
        for ok in ["TERM", "_X1", "lower_case", "PATH"] {
            assert_eq!(check_env_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1X", "A=B", "A-B", "A\0", &"X".repeat(129)] {
            assert!(
                matches!(check_env_name(bad), Err(EnvNameError::Invalid { .. })),
                "{bad:?}"
            );
        }
        for reserved in ["KAGED_AUTH_NONCE", "kaged_x", "HOME"] {
            assert!(
                matches!(check_env_name(reserved), Err(EnvNameError::Reserved { .. })),
                "{reserved}"
            );
        }
    }

    #[test]
    fn policy_keys_left_out_take_the_safe_defaults() {
        let empty: CagePolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, CagePolicy::default());
        assert_eq!(empty.network, Network::None);
        assert_eq!(
            empty.fs,
            vec![FsGrant {
                path: PortablePath::project_root(),
                access: Access::Rw
            }]
        );
        let err = serde_json::from_str::<CagePolicy>(r#"{"netwrok":"host"}"#).unwrap_err();
        assert!(err.to_string().contains("netwrok"), "{err}");
    }

    #[test]
    fn limits_take_numbers_or_suffixed_strings_and_serialise_as_numbers() {
        let l: Limits =
            serde_json::from_str(r#"{"walltime":"10m","memory":"2G","pids":64,"cpu":1.5}"#)
                .unwrap();
        assert_eq!(
            l.walltime_duration(),
            Some(std::time::Duration::from_secs(600))
        );
        assert!(l.needs_cgroup());
        assert_eq!(l.enforce, LimitEnforcement::Strict);
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"walltime": 600, "memory": 2u64 << 30, "pids": 64, "cpu": 1.5})
        );
        assert_eq!(
            l.describe_cgroup_limits(),
            "memory = 2G, pids = 64, cpu = 1.5"
        );
    }

    #[test]
    fn enforce_is_strict_unless_a_policy_says_best_effort() {
        let l: Limits = serde_json::from_str(r#"{"memory":"1G","enforce":"best-effort"}"#).unwrap();
        assert_eq!(l.enforce, LimitEnforcement::BestEffort);
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"memory": 1u64 << 30, "enforce": "best-effort"})
        );
        let err = serde_json::from_str::<Limits>(r#"{"enforce":"lenient"}"#).unwrap_err();
        assert!(err.to_string().contains("lenient"), "{err}");
        assert_eq!(
            "best-effort".parse::<LimitEnforcement>(),
            Ok(LimitEnforcement::BestEffort)
        );
        assert!("Strict".parse::<LimitEnforcement>().is_err());
    }

    #[test]
    fn sizes_print_with_the_largest_exact_suffix() {
        for (bytes, text) in [
            (1u64, "1"),
            (1536, "1536"),
            (2048, "2K"),
            (1536 << 20, "1536M"),
            (2 << 30, "2G"),
            (3 << 40, "3T"),
        ] {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(ByteSize::parse(text), Some(ByteSize(bytes)));
        }
    }
}
