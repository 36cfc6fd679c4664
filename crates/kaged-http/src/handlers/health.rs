//! Liveness, readiness and version: public (design §5), still behind the Host check.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kaged_api::{ErrorCode, Health, VersionInfo};

use crate::Http;
use crate::error::{ApiError, ApiResult};

pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

pub(crate) async fn readyz(State(http): State<Arc<Http>>) -> ApiResult<Json<Health>> {
    if http.daemon.is_ready() {
        Ok(Json(Health {
            status: "ready".to_owned(),
        }))
    } else {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "kaged is starting or shutting down",
        ))
    }
}

pub(crate) async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: "kaged".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}
