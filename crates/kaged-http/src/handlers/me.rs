//! `GET /api/v1/me` (identity + CSRF token) and `POST /api/v1/auth/launch-token`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use kaged_api::{LaunchUrl, Me, Revoked, SignedOut};
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

/// `POST /api/v1/auth/logout`: signs this browser session out and clears its cookie.
pub(crate) async fn logout(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let cleared = http.daemon.sign_out(&auth).await;
    let mut res = Json(SignedOut {
        browser_session: cleared.is_some(),
    })
    .into_response();
    if let Some(v) = cleared.and_then(|c| axum::http::HeaderValue::from_str(&c).ok()) {
        res.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
    res
}

/// `POST /api/v1/auth/revoke`: signs every browser out (`kaged auth revoke`).
pub(crate) async fn revoke(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> ApiResult<Json<Revoked>> {
    http.daemon.revoke_browser_sessions(&auth.identity).await?;
    Ok(Json(Revoked { revoked: true }))
}
