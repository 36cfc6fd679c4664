//! `GET /api/v1/me` (identity + CSRF token) and `POST /api/v1/auth/launch-token`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use kaged_auth::{AuthMode, Authenticated};
use kaged_store::{AuditEvent, EventType};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

pub(crate) async fn me(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Json<Value> {
    Json(json!({
        "identity": auth.identity,
        "csrf_token": st.auth.csrf_token(&auth),
        "warnings": st.warnings,
    }))
}

/// A fresh one-time launch URL, for `kaged auth open` (which proves itself with the nonce).
pub(crate) async fn launch_token(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> ApiResult<Json<Value>> {
    if st.auth.mode() != AuthMode::Loopback {
        return Err(ApiError::new(
            Code::Conflict,
            format!(
                "launch URLs exist only in loopback auth mode; this daemon runs in {} mode",
                st.auth.mode()
            ),
        ));
    }
    let token = st.auth.issue_launch_token().map_err(ApiError::internal)?;
    st.audit(AuditEvent::new(
        EventType::AuthLaunchTokenIssued,
        Some(&auth.identity.user_id),
        json!({"ttl_secs": st.info.settings.launch_token_ttl.value.as_secs()}),
    ))
    .await;
    Ok(Json(json!({
        "url": format!("{}/launch?token={token}", st.info.base_url()),
        "expires_in_secs": st.info.settings.launch_token_ttl.value.as_secs(),
    })))
}
