//! `GET /api/v1/push`, `POST /api/v1/push/subscriptions`,
//! `DELETE /api/v1/push/subscriptions/{id}`: the caller's Web Push devices. And
//! `GET`/`PUT /api/v1/me/keybar`: their key bar on every device.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use kaged_api::{KeyBarChoice, PushInfo, PushRevoked, PushSubscribe, PushSubscriptionView};
use kaged_auth::Authenticated;

use crate::Http;
use crate::error::{ApiResult, body};

pub(crate) async fn info(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> ApiResult<Json<PushInfo>> {
    Ok(Json(http.daemon.push_info(&auth.identity).await?))
}

pub(crate) async fn subscribe(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    req: Result<Json<PushSubscribe>, JsonRejection>,
) -> ApiResult<Json<PushSubscriptionView>> {
    let req = body(
        req,
        "send PushSubscription.toJSON(): {endpoint, keys: {p256dh, auth}}, and optionally a label",
    )?;
    Ok(Json(http.daemon.subscribe_push(&auth.identity, req).await?))
}

pub(crate) async fn revoke(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<PushRevoked>> {
    Ok(Json(http.daemon.revoke_push(&auth.identity, &id).await?))
}

pub(crate) async fn keybar(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> ApiResult<Json<KeyBarChoice>> {
    Ok(Json(http.daemon.keybar(&auth.identity).await?))
}

pub(crate) async fn set_keybar(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    req: Result<Json<KeyBarChoice>, JsonRejection>,
) -> ApiResult<Json<KeyBarChoice>> {
    let req = body(
        req,
        "send {\"keys\": [...]} with keys among esc, tab, stab, ctrl, alt, left, up, down, \
         right, pgup, pgdn, ctrlc, paste, copy",
    )?;
    Ok(Json(http.daemon.set_keybar(&auth.identity, req).await?))
}
