//! `GET /api/v1/status`: mode and why, "where's my data?", bind, auth, sandbox, uptime.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use kaged_api::Status;
use kaged_auth::Authenticated;

use crate::Http;

pub(crate) async fn status(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> Json<Status> {
    Json(http.daemon.status(&auth.identity))
}
