//! Worktrees: list a project's runs and the worktrees kaged does not know, review a run,
//! merge it, clean it up (snapshot first), restore its snapshot, delete its branch.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use kaged_api::{
    BranchDeleted, MergeWorktree, RemoveWorktreeParams, RestoreWorktree, UnknownWorktreeList,
    WorktreeList, WorktreeMerged, WorktreeRemoved, WorktreeReview, WorktreeRun,
};
use kaged_auth::Authenticated;

use crate::Http;
use crate::error::{ApiResult, body, query};

type Body<T> = Result<Json<T>, JsonRejection>;

pub(crate) async fn list(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorktreeList>> {
    Ok(Json(http.daemon.worktrees(&auth.identity, &id).await?))
}

pub(crate) async fn unknown(
    State(http): State<Arc<Http>>,
    Path(id): Path<String>,
) -> ApiResult<Json<UnknownWorktreeList>> {
    Ok(Json(http.daemon.unknown_worktrees(&id).await?))
}

pub(crate) async fn review(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(run): Path<String>,
) -> ApiResult<Json<WorktreeReview>> {
    Ok(Json(
        http.daemon.worktree_review(&auth.identity, &run).await?,
    ))
}

pub(crate) async fn remove(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(run): Path<String>,
    params: Result<Query<RemoveWorktreeParams>, QueryRejection>,
) -> ApiResult<Json<WorktreeRemoved>> {
    let params = query(params, "the one parameter is discard_ignored=true|false")?;
    Ok(Json(
        http.daemon
            .remove_worktree(&auth.identity, &run, params.discard_ignored)
            .await?,
    ))
}

pub(crate) async fn restore(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(run): Path<String>,
    req: Body<RestoreWorktree>,
) -> ApiResult<Json<WorktreeRun>> {
    let req = body(req, "{\"branch\"?: \"new branch name\"}")?;
    let d = &http.daemon;
    Ok(Json(d.restore_worktree(&auth.identity, &run, req).await?))
}

pub(crate) async fn merge(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(run): Path<String>,
    req: Body<MergeWorktree>,
) -> ApiResult<Json<WorktreeMerged>> {
    let req = body(
        req,
        "{\"mode\"?: \"auto\"|\"fast_forward\"|\"merge_commit\"}",
    )?;
    let d = &http.daemon;
    Ok(Json(d.merge_worktree(&auth.identity, &run, req).await?))
}

pub(crate) async fn delete_branch(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(run): Path<String>,
) -> ApiResult<Json<BranchDeleted>> {
    let d = &http.daemon;
    Ok(Json(d.delete_worktree_branch(&auth.identity, &run).await?))
}
