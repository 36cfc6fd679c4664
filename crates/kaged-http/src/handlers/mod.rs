//! One file per resource, pueue-style: finding the code for a route is a directory listing.
//! Each handler extracts, calls one daemon method and returns its typed answer.

pub(crate) mod agent;
pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod launch;
pub(crate) mod me;
pub(crate) mod openapi;
pub(crate) mod projects;
pub(crate) mod pty;
pub(crate) mod push;
pub(crate) mod sessions;
pub(crate) mod status;
pub(crate) mod web;
pub(crate) mod worktrees;

use axum::http::Uri;

use crate::error::ApiError;

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found("route", uri.path())
}
