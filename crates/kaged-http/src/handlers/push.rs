//! `GET /api/v1/push`, `POST /api/v1/push/subscriptions`,
//! `DELETE /api/v1/push/subscriptions/{id}`: the caller's Web Push devices.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use kaged_api::{PushInfo, PushRevoked, PushSubscribe, PushSubscriptionView};
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
