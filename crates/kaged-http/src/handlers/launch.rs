//! `GET /launch?token=…`: trades a one-time launch token (or the nonce) for the session cookie
//! and sends the browser to `/` so the token leaves the address bar and history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kaged_store::{AuditEvent, EventType};
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::state::AppState;

pub(crate) async fn launch(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(token) = q.get("token") else {
        return ApiError::new(
            Code::BadRequest,
            "missing ?token=; use the URL from `kaged auth open`",
        )
        .into_response();
    };
    match st.auth.redeem_launch(token) {
        Ok(cookie) => {
            st.audit(AuditEvent::new(
                EventType::AuthLaunchTokenUsed,
                Some(&st.info.user),
                json!({}),
            ))
            .await;
            let mut res = StatusCode::SEE_OTHER.into_response();
            let h = res.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                h.insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            st.audit(AuditEvent::new(
                EventType::AuthRejected,
                None,
                json!({"reason": e.reason(), "path": "/launch"}),
            ))
            .await;
            ApiError::new(Code::Unauthenticated, e.to_string()).into_response()
        }
    }
}
