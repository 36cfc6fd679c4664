//! `GET /api/v1/audit`: newest first, paged with `before`, filtered by type/actor/project/session.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use kaged_store::AuditQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    before: Option<i64>,
    limit: Option<u32>,
    #[serde(rename = "type")]
    kind: Option<String>,
    actor: Option<String>,
    project_id: Option<String>,
    session_id: Option<String>,
}

pub(crate) async fn list(
    State(st): State<Arc<AppState>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(p) = params.map_err(|e| {
        ApiError::new(
            Code::BadRequest,
            format!("{e}; allowed parameters: before, limit (1-1000), type, actor, project_id, session_id"),
        )
    })?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            Code::ValidationFailed,
            format!("limit={limit} is out of range; use 1 to 1000"),
        ));
    }
    // Read your own writes: events recorded before this request may still sit in the
    // writer's queue, and an operator who just deleted something expects to see it here.
    st.audit.flush().await.map_err(ApiError::internal)?;
    let rows = st
        .store
        .audit_query(AuditQuery {
            before: p.before,
            limit,
            kind: p.kind,
            actor: p.actor,
            project_id: p.project_id,
            session_id: p.session_id,
        })
        .await
        .map_err(ApiError::internal)?;
    let next_before = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({"events": rows, "next_before": next_before})))
}
