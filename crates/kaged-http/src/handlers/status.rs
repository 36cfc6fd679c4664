//! `GET /api/v1/status`: mode and why, "where's my data?", bind, auth, sandbox, uptime.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use kaged_api::Status;

use crate::Http;

pub(crate) async fn status(State(http): State<Arc<Http>>) -> Json<Status> {
    Json(http.daemon.status())
}
