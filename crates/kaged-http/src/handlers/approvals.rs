//! `GET /api/v1/approvals`, `POST /api/v1/approvals/{id}`: agents' tool calls held for the
//! operator, and the answers to them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, header};
use axum::{Extension, Json};
use kaged_api::{ApprovalAnswer, ApprovalList, ApprovalOutcome};
use kaged_auth::Authenticated;

use crate::Http;
use crate::error::{ApiResult, body};

pub(crate) async fn list(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
) -> ApiResult<Json<ApprovalList>> {
    Ok(Json(http.daemon.approvals(&auth.identity)))
}

pub(crate) async fn answer(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    req: Result<Json<ApprovalAnswer>, JsonRejection>,
) -> ApiResult<Json<ApprovalOutcome>> {
    let req = body(
        req,
        "{\"verdict\": \"approve\"|\"deny\", \"note\"?: \"text for the agent\"}",
    )?;
    // Where the answer came from, for the audit: the peer (the sidecar, behind one) and the
    // browser's own description of itself.
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no user agent");
    let agent: String = agent.chars().take(200).collect();
    let from = format!("{peer} ({agent})");
    let d = &http.daemon;
    Ok(Json(
        d.answer_approval(&auth.identity, &id, req, &from).await?,
    ))
}
