//! Sessions: start in a project, list, inspect, end, signal, resize, send input.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kaged_api::{
    InputRequest, InputWritten, ResizeRequest, SessionInfo, SessionList, ShareRequest,
    SignalRequest, StartSession, TranscriptParams,
};
use kaged_auth::Authenticated;

use crate::Http;
use crate::error::{ApiResult, body, query};

type Body<T> = Result<Json<T>, JsonRejection>;

pub(crate) async fn list_all(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> Json<SessionList> {
    Json(http.daemon.all_sessions(&auth.identity))
}

pub(crate) async fn transcript(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    params: Result<Query<TranscriptParams>, QueryRejection>,
) -> ApiResult<Response> {
    let params = query(params, "allowed parameters: offset, limit (1 to 8388608)")?;
    let slice = http.daemon.transcript(&auth.identity, &id, params).await?;
    let mut res = slice.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert("x-kaged-offset", HeaderValue::from(slice.offset));
    h.insert("x-kaged-bytes-total", HeaderValue::from(slice.bytes_total));
    Ok(res)
}

pub(crate) async fn list_for_project(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionList>> {
    Ok(Json(http.daemon.sessions(&auth.identity, &id)?))
}

pub(crate) async fn create(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    req: Body<StartSession>,
) -> ApiResult<Json<SessionInfo>> {
    let req = body(
        req,
        "{\"argv\"?, \"agent\"?, \"task\"?, \"cols\"?, \"rows\"?, \"cage\"?, \"env\"?, \"workspace\"?: {\"kind\": \"project\"|\"worktree\"|\"existing\", \"base\"?, \"branch\"?, \"run\"?}}",
    )?;
    let d = &http.daemon;
    Ok(Json(d.start_session(&auth.identity, &id, req).await?))
}

pub(crate) async fn get(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionInfo>> {
    Ok(Json(http.daemon.session(&auth.identity, &id)?))
}

pub(crate) async fn share(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    req: Body<ShareRequest>,
) -> ApiResult<Json<SessionInfo>> {
    let req = body(
        req,
        "{\"user\": \"user id\", \"access\": \"read\"|\"write\"|null}",
    )?;
    let d = &http.daemon;
    Ok(Json(d.share_session(&auth.identity, &id, req).await?))
}

pub(crate) async fn end(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionInfo>> {
    Ok(Json(http.daemon.end_session(&auth.identity, &id).await?))
}

pub(crate) async fn signal(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    req: Body<SignalRequest>,
) -> ApiResult<Json<SessionInfo>> {
    let req = body(
        req,
        "{\"signal\": \"INT\"|\"TERM\"|\"HUP\"|\"KILL\"|\"QUIT\"|\"USR1\"|\"USR2\"|\"STOP\"|\"CONT\"|\"WINCH\"}",
    )?;
    let d = &http.daemon;
    Ok(Json(d.signal_session(&auth.identity, &id, req).await?))
}

pub(crate) async fn resize(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    req: Body<ResizeRequest>,
) -> ApiResult<Json<SessionInfo>> {
    let req = body(req, "{\"cols\": N, \"rows\": N}")?;
    Ok(Json(http.daemon.resize_session(
        &auth.identity,
        &id,
        req,
    )?))
}

pub(crate) async fn input(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    req: Body<InputRequest>,
) -> ApiResult<Json<InputWritten>> {
    let req = body(req, "{\"data\": \"text to type\"}")?;
    Ok(Json(
        http.daemon.send_input(&auth.identity, &id, req).await?,
    ))
}
