//! Projects: load a directory, list, inspect, unload; and the project file's schema.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use kaged_api::{LoadProject, ProjectList, ProjectView, Unloaded};
use kaged_auth::Authenticated;

use crate::Http;
use crate::error::{ApiResult, body};

pub(crate) async fn list(State(http): State<Arc<Http>>) -> Json<ProjectList> {
    Json(http.daemon.projects())
}

pub(crate) async fn get(
    State(http): State<Arc<Http>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    Ok(Json(http.daemon.project(&id)?))
}

pub(crate) async fn load(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    req: Result<Json<LoadProject>, JsonRejection>,
) -> ApiResult<Json<ProjectView>> {
    let req = body(req, "{\"path\": \"/absolute/project/dir\"}")?;
    Ok(Json(http.daemon.load_project(&auth.identity, req).await?))
}

pub(crate) async fn unload(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<Unloaded>> {
    Ok(Json(http.daemon.unload_project(&auth.identity, &id).await?))
}

/// `GET /api/v1/dsl/schema`: generated from the same Rust types the parser uses.
pub(crate) async fn schema() -> Json<serde_json::Value> {
    Json(kaged_dsl::json_schema())
}
