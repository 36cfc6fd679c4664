//! `status` and `me`: what the daemon is, where its data lives, and who is asking.

use kaged_api::{
    Identity, LocalSummary, Me, Paths, ProviderKey, SessionInfo, SessionState, SessionsSummary,
    Status,
};
use kaged_auth::{AuthMode, Authenticated};
use kaged_deploy::Layout;

use crate::Daemon;

/// "Where's my data?" (ADR-0010), for a running daemon and for `kaged status` without one.
pub fn paths(layout: &Layout, config_loaded: bool) -> Paths {
    Paths {
        state: layout.state_dir.clone(),
        config: layout.config_file.clone(),
        config_loaded,
        local: layout.local_file.clone(),
        runtime: layout.runtime_dir.clone(),
        runtime_note: layout.runtime_note.clone(),
        database: layout.database.clone(),
        audit: format!("{} (table audit_events)", layout.database.display()),
        sessions: layout.sessions_dir.clone(),
    }
}

impl Daemon {
    /// The daemon's status, with the running sessions `who` may see.
    pub fn status(&self, who: &Identity) -> Status {
        let i = &self.inner;
        let running: Vec<SessionInfo> = self
            .all_sessions(who)
            .sessions
            .into_iter()
            .filter(|s| s.state != SessionState::Exited)
            .collect();
        let s = &i.settings;
        let mut paths = paths(&i.layout, s.config_file.is_some());
        // `[storage] url` may move the database away from the mode's default.
        paths.database = s.database_path().to_owned();
        paths.audit = format!("{} (table audit_events)", paths.database.display());
        Status {
            mode: i.layout.mode,
            mode_reason: i.layout.reason.to_string(),
            paths,
            bind: i.bind.to_string(),
            url: self.base_url(),
            allowed_hosts: i.access.hosts(),
            auth_mode: s.auth_mode.value,
            insecure: s.auth_mode.value == AuthMode::Insecure,
            insecure_reason: s.insecure_reason.as_ref().map(|r| r.value.clone()),
            sandbox: i.sandbox.clone(),
            local: LocalSummary {
                model_aliases: i.local.models.keys().cloned().collect(),
                providers: i
                    .local
                    .providers
                    .iter()
                    .map(|(name, p)| {
                        let present = i.host.env_value(&p.api_key_env).is_some();
                        let key = ProviderKey {
                            api_key_env: p.api_key_env.clone(),
                            present,
                        };
                        (name.clone(), key)
                    })
                    .collect(),
                registered_projects: i.local.projects.len() as u64,
            },
            warnings: i.warnings.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            started_at: i.started_at,
            uptime_secs: i.started.elapsed().as_secs(),
            settings: s.report(),
            sessions: SessionsSummary {
                running: running.len() as u64,
                adopted: running
                    .into_iter()
                    .filter(|s| s.adopted_at.is_some())
                    .collect(),
            },
        }
    }

    /// The caller's identity and the CSRF token bound to its credential.
    pub fn me(&self, auth: &Authenticated) -> Me {
        Me {
            identity: auth.identity.clone(),
            csrf_token: self.inner.auth.csrf_token(auth),
            warnings: self.inner.warnings.clone(),
        }
    }
}
