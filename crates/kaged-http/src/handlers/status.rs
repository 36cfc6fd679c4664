//! `GET /api/v1/status`: mode and why, "where's my data?", bind, auth, sandbox, uptime.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

pub(crate) async fn status(State(st): State<Arc<AppState>>) -> Json<Value> {
    let i = &st.info;
    let l = &i.layout;
    Json(json!({
        "mode": l.mode,
        "mode_reason": l.reason.to_string(),
        "paths": {
            "state": l.state_dir,
            "config": l.config_file,
            "config_loaded": i.settings.config_file.is_some(),
            "local": l.local_file,
            "runtime": l.runtime_dir,
            "runtime_note": l.runtime_note,
            "database": i.settings.database_path(),
            "audit": format!("{} (table audit_events)", i.settings.database_path().display()),
            "sessions": l.sessions_dir,
        },
        "bind": i.bind.to_string(),
        "url": i.base_url(),
        "allowed_hosts": st.access.hosts(),
        "auth_mode": i.settings.auth_mode.value,
        "insecure": i.settings.auth_mode.value == kaged_auth::AuthMode::Insecure,
        "insecure_reason": i.settings.insecure_reason.as_ref().map(|r| &r.value),
        "sandbox": i.sandbox,
        "local": {
            "model_aliases": st.local.models.keys().collect::<Vec<_>>(),
            // Whether each provider's key variable is set; never the key.
            "providers": st.local.providers.iter().map(|(name, p)| {
                (name.clone(), json!({"api_key_env": p.api_key_env,
                    "present": st.host.env.iter().any(|(k, v)| *k == p.api_key_env && !v.is_empty())}))
            }).collect::<serde_json::Map<_, _>>(),
            "registered_projects": st.local.projects.len(),
        },
        "warnings": st.warnings,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": i.pid,
        "started_at": i.started_at,
        "uptime_secs": i.started.elapsed().as_secs(),
        "settings": i.settings,
    }))
}
