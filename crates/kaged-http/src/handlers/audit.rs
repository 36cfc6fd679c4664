//! `GET /api/v1/audit`: newest first, paged with `before`, filtered by type/actor/project/session.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use kaged_api::{AuditPage, AuditParams};
use kaged_auth::Authenticated;

use crate::Http;
use crate::error::{ApiResult, query};

pub(crate) async fn list(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let params = query(
        params,
        "allowed parameters: before, limit (1-1000), type, actor, project_id, session_id",
    )?;
    Ok(Json(http.daemon.audit_page(&auth.identity, params).await?))
}
