//! `GET /api/v1/me` (identity + CSRF token) and `POST /api/v1/auth/launch-token`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use kaged_api::{LaunchUrl, Me};
use kaged_auth::Authenticated;

use crate::Http;
use crate::error::ApiResult;

pub(crate) async fn me(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> Json<Me> {
    Json(http.daemon.me(&auth))
}

pub(crate) async fn launch_token(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> ApiResult<Json<LaunchUrl>> {
    Ok(Json(http.daemon.issue_launch_url(&auth.identity).await?))
}
