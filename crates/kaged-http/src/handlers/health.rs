//! Liveness, readiness and version: public (design §5), still behind the Host check.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn readyz(State(st): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    if st.is_ready() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::new(
            Code::Unavailable,
            "kaged is starting or shutting down",
        ))
    }
}

pub(crate) async fn version() -> Json<Value> {
    Json(json!({"name": "kaged", "version": env!("CARGO_PKG_VERSION")}))
}
