//! What sessions need from the host, captured once at start-up: nothing reads the process
//! environment after this.

use std::path::PathBuf;

use kaged_api::{AuthMode, CgroupSupport, LimitEnforcement, Sourced};
use kaged_config::{NonceSource, Settings};
use kaged_deploy::Layout;
use kaged_sandbox::HostSystem;

#[derive(Debug, Clone)]
pub struct HostFacts {
    pub sandbox_enabled: bool,
    /// `auth.mode = insecure`: the API answers anyone who reaches it (ADR-0007), so no cage
    /// may share the host's network.
    pub insecure_auth: bool,
    /// The operator's `sessions.limits`, when set (see [`kaged_config::SessionLimits`]).
    pub limits_enforcement: Option<Sourced<LimitEnforcement>>,
    /// What cages are compiled against: this host, with the cgroup support set up at start.
    pub cage_host: HostSystem,
    /// The operator's login shell, the default argv.
    pub shell: String,
    pub home: PathBuf,
    /// The daemon's environment minus `KAGED_*`: candidates for allowlisted names.
    pub env: Vec<(String, String)>,
    /// Never visible in a cage: runtime dir, state dir, config dir, database dir, a sidecar
    /// nonce file.
    pub deny: Vec<PathBuf>,
    /// Persistent cage scratch lives in `<scratch_root>/<project id>`.
    pub scratch_root: PathBuf,
    /// Each filtered-network cage's gateway socket lives here, in a directory named for its
    /// session (inside the runtime dir, which no cage sees; only that directory is bound into
    /// its cage).
    pub egress_dir: PathBuf,
    /// One directory per agent session, holding its agent (hook) socket.
    pub agent_dir: PathBuf,
    /// kaged's own binary, bound into filtered-network cages as their relay, or why it cannot
    /// be (such cages are then refused with the reason).
    pub relay_exe: Result<PathBuf, String>,
}

impl HostFacts {
    pub fn capture(layout: &Layout, settings: &Settings, cgroups: CgroupSupport) -> HostFacts {
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten();
        let shell = user
            .as_ref()
            .map(|u| u.shell.display().to_string())
            .filter(|s| !s.is_empty() && !s.ends_with("nologin") && !s.ends_with("false"))
            .unwrap_or_else(|| "/bin/sh".to_owned());
        let home = user
            .map(|u| u.dir)
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/"));
        let env = std::env::vars()
            .filter(|(k, _)| !k.starts_with("KAGED_") && k != "NOTIFY_SOCKET")
            .collect();
        HostFacts {
            sandbox_enabled: settings.sandbox_enabled.value,
            insecure_auth: settings.auth_mode.value == AuthMode::Insecure,
            limits_enforcement: settings.sessions.limits.clone(),
            cage_host: HostSystem {
                cgroups,
                ..HostSystem::detect().clone()
            },
            shell,
            home,
            env,
            deny: denied_paths(layout, settings),
            scratch_root: layout.state_dir.join("scratch"),
            egress_dir: layout.runtime_dir.join("egress"),
            agent_dir: layout.runtime_dir.join("agent"),
            relay_exe: std::env::current_exe()
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    // A binary replaced on disk while running reads as "<path> (deleted)".
                    if p.exists() {
                        Ok(p)
                    } else {
                        Err(format!(
                            "{} no longer exists (was kaged upgraded?)",
                            p.display()
                        ))
                    }
                }),
        }
    }

    /// The value of `name` in the daemon's environment, if set and not empty.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// The providers of local.toml that gateways route, each with its key from the daemon's
/// environment, and TLS for them (system roots plus `[egress] extra_ca_file`).
pub fn egress_providers(
    local: &kaged_dsl::LocalConfig,
    facts: &HostFacts,
) -> Result<kaged_egress::Providers, kaged_egress::EgressError> {
    use kaged_egress::{KeyHeader, ProviderRoute, Secret};
    let mut routes = Vec::new();
    for (name, p) in &local.providers {
        let Some(base) = p.upstream(name) else {
            continue;
        };
        let header = match p.auth_for(name) {
            kaged_dsl::ProviderAuth::XApiKey => KeyHeader::XApiKey,
            kaged_dsl::ProviderAuth::Bearer => KeyHeader::Bearer,
        };
        let key = facts
            .env_value(&p.api_key_env)
            .map(|k| Secret::new(k.to_owned()));
        routes.push(ProviderRoute::new(
            name,
            &base,
            header,
            &p.api_key_env,
            key,
        )?);
    }
    if routes.is_empty() {
        return Ok(kaged_egress::Providers::default());
    }
    let extra = local.egress.extra_ca_file.as_deref();
    let (tls, tls_error) = match kaged_egress::tls_config(extra) {
        Ok(t) => (Some(t), None),
        // A CA file the operator named and kaged cannot use is a config error; say so now.
        Err(e @ kaged_egress::EgressError::CaFile { .. }) => return Err(e),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(kaged_egress::Providers {
        routes,
        tls,
        tls_error,
    })
}

/// The paths no cage may ever see: everything that holds the daemon's secrets or state.
fn denied_paths(layout: &Layout, settings: &Settings) -> Vec<PathBuf> {
    let mut deny = vec![layout.runtime_dir.clone(), layout.state_dir.clone()];
    deny.extend(layout.config_file.parent().map(ToOwned::to_owned));
    if let Some(NonceSource::File(p)) = settings.sidecar_nonce.as_ref().map(|s| &s.value) {
        deny.push(p.clone());
    }
    deny.extend(settings.database_path().parent().map(ToOwned::to_owned));
    deny.retain(|p| p.exists());
    deny.sort();
    deny.dedup();
    deny
}
