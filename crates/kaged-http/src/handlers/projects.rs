//! Projects: load a directory, list, inspect, unload. Loading and unloading are audited.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use kaged_auth::Authenticated;
use kaged_store::{AuditEvent, EventType};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Code};
use crate::projects::ProjectError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadBody {
    path: PathBuf,
}

pub(crate) async fn list(State(st): State<Arc<AppState>>) -> Json<Value> {
    let projects: Vec<Value> = st
        .projects
        .list()
        .iter()
        .map(|p| p.to_json(&st.local))
        .collect();
    Json(json!({ "projects": projects }))
}

pub(crate) async fn get(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = st
        .projects
        .get(&id)
        .ok_or_else(|| ApiError::not_found("project", &id))?;
    Ok(Json(p.to_json(&st.local)))
}

pub(crate) async fn load(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    body: Result<Json<LoadBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let body = super::sessions::body(body, "{\"path\": \"/absolute/project/dir\"}")?;
    let actor = &auth.identity.user_id;
    match st.projects.load(&st.store, &body.path, actor).await {
        Ok(p) => {
            st.audit(
                AuditEvent::new(
                    EventType::ProjectLoaded,
                    Some(actor),
                    json!({"root": p.root, "agents": p.project.agents().len(), "tasks": p.project.tasks.len()}),
                )
                .project(&p.id),
            )
            .await;
            Ok(Json(p.to_json(&st.local)))
        }
        Err(ProjectError::Invalid(diags)) => Err(ApiError::new(
            Code::DslInvalid,
            format!(
                "{} is not a valid kaged project: {} problem(s); run `kaged dsl validate {}` for the same list",
                body.path.display(),
                diags.len(),
                body.path.display()
            ),
        )
        .with_details(json!({ "diagnostics": diags.0 }))),
        Err(e @ ProjectError::Conflict { .. }) => Err(ApiError::new(Code::Conflict, e.to_string())),
        Err(e @ (ProjectError::NotAbsolute { .. } | ProjectError::Root { .. })) => {
            Err(ApiError::new(Code::ValidationFailed, e.to_string()))
        }
        Err(ProjectError::Store(e)) => Err(ApiError::internal(e)),
    }
}

pub(crate) async fn unload(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let running = st
        .sessions
        .list(Some(&id))
        .into_iter()
        .filter(|s| s.state != kaged_session::SessionState::Exited)
        .count();
    if running > 0 {
        return Err(ApiError::new(
            Code::Conflict,
            format!("project {id:?} has {running} running session(s); end them first"),
        ));
    }
    let removed = st
        .projects
        .unload(&st.store, &id)
        .await
        .map_err(ApiError::internal)?;
    if !removed {
        return Err(ApiError::not_found("project", &id));
    }
    st.audit(
        AuditEvent::new(
            EventType::ProjectUnloaded,
            Some(&auth.identity.user_id),
            json!({}),
        )
        .project(&id),
    )
    .await;
    Ok(Json(json!({"unloaded": id})))
}

/// `GET /api/v1/dsl/schema`: generated from the same Rust types the parser uses.
pub(crate) async fn schema() -> Json<Value> {
    Json(kaged_dsl::json_schema())
}
