//! The cage policy as the operator (or a project's DSL) states it. These types carry no host
//! paths: filesystem grants are `project:/…` paths, resolved against a project root only by
//! [`crate::compile`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a cage may see and do (design §7). A key left out of a serialized policy takes its
/// value from [`CagePolicy::default`], so `{}` is the safe default cage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CagePolicy {
    /// Filesystem entries of the project that are visible inside the cage.
    pub fs: Vec<Grant>,
    pub network: Network,
    pub state: StateKind,
    pub limits: Limits,
    /// Names of environment variables that may pass from the daemon's candidates into the cage.
    /// `KAGED_*` names and `HOME` are refused by the compiler.
    pub env: Vec<String>,
}

/// The project read-write, no network, ephemeral home, and only the terminal and locale
/// variables a shell needs to render correctly.
impl Default for CagePolicy {
    fn default() -> Self {
        Self {
            fs: vec![Grant {
                path: "project:/".to_owned(),
                access: Access::Rw,
            }],
            network: Network::None,
            state: StateKind::Ephemeral,
            limits: Limits::default(),
            env: ["TERM", "LANG", "COLORTERM", "LC_ALL"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// One visible filesystem entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A `project:/relative/path`; host paths are refused because projects must stay portable.
    pub path: String,
    pub access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Ro,
    Rw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A private network namespace with only loopback: nothing on the host, including the
    /// daemon's port, is reachable.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    /// The cage's home is a tmpfs that vanishes with the cage.
    #[default]
    Ephemeral,
    /// The cage's home is a scratch directory the daemon keeps between sessions.
    Persistent,
}

/// Resource limits. `walltime` is enforced by whoever runs the cage (the session broker);
/// the rest through a cgroup scope when [`crate::cgroup_support`] says that works.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(
        default,
        rename = "walltime_secs",
        with = "opt_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub walltime: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
    /// CPUs worth of time, e.g. `1.5` is 150 % of one CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
}

impl Limits {
    /// Whether any limit needs a cgroup (walltime does not).
    pub fn needs_cgroup(&self) -> bool {
        self.memory_bytes.is_some() || self.pids.is_some() || self.cpu.is_some()
    }
}

/// Walltime travels as whole seconds, which is what operators write and read.
mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn policy_round_trips_through_json_with_walltime_in_seconds() {
        let policy = CagePolicy {
            fs: vec![Grant {
                path: "project:/docs".into(),
                access: Access::Ro,
            }],
            network: Network::Host,
            state: StateKind::Persistent,
            limits: Limits {
                walltime: Some(Duration::from_secs(90)),
                memory_bytes: Some(1 << 30),
                pids: Some(256),
                cpu: Some(1.5),
            },
            env: vec!["TERM".into()],
        };
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "fs": [{"path": "project:/docs", "access": "ro"}],
                "network": "host",
                "state": "persistent",
                "limits": {"walltime_secs": 90, "memory_bytes": 1073741824u64, "pids": 256, "cpu": 1.5},
                "env": ["TERM"],
            })
        );
        let back: CagePolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, policy);
    }

    #[test]
    fn missing_policy_keys_take_the_safe_defaults() {
        let empty: CagePolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, CagePolicy::default());
        let only_docs: CagePolicy =
            serde_json::from_str(r#"{"fs":[{"path":"project:/docs","access":"ro"}],"env":[]}"#)
                .unwrap();
        assert_eq!(
            only_docs,
            CagePolicy {
                fs: vec![Grant {
                    path: "project:/docs".into(),
                    access: Access::Ro,
                }],
                env: vec![],
                ..CagePolicy::default()
            }
        );
    }

    #[test]
    fn unknown_policy_keys_are_errors() {
        let err = serde_json::from_str::<CagePolicy>(r#"{"fs":[],"netwrok":"host"}"#).unwrap_err();
        assert!(err.to_string().contains("netwrok"), "{err}");
    }
}
