//! The one route table (design §5). Every route the daemon serves is a row here, with its auth
//! and CSRF flags and the wire types it speaks: the gate looks the flags up by method and
//! matched path, the OpenAPI document is generated from the rows, and tests walk them.
//! Anything that is not a row (fallback, wrong method) is treated as authenticated and, when
//! it changes state, CSRF-checked.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};
use kaged_api::*;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::Http;
use crate::handlers;

/// Renders one type's schema into the document's components.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a successful answer is.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// 200 with this JSON body.
    Json(SchemaFn),
    /// 303 to `/`, setting the session cookie.
    Redirect,
    /// 200 with an HTML page or a static asset of the web UI.
    Page,
    /// 200 with a JSON document that is itself a schema (JSON Schema, OpenAPI).
    Document,
    /// 200 with raw bytes (a transcript); `X-Kaged-Offset` and `X-Kaged-Bytes-Total` say
    /// where they start and how much output there is.
    Bytes,
    /// 101: a WebSocket whose text frames are this type.
    Upgrade(SchemaFn),
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    /// False only for the unauthenticated list of design §5.
    pub auth: bool,
    /// True for every state-changing method and every WebSocket upgrade.
    pub csrf: bool,
    pub websocket: bool,
    pub summary: &'static str,
    pub query: Option<SchemaFn>,
    pub body: Option<SchemaFn>,
    pub answer: Answer,
}

/// Anything not in the table needs auth; the gate adds Origin and CSRF checks for any
/// state-changing method or upgrade whatever the table says.
pub(crate) const FALLBACK: RouteSpec = RouteSpec {
    method: Method::GET,
    path: "*",
    auth: true,
    csrf: false,
    websocket: false,
    summary: "",
    query: None,
    body: None,
    answer: Answer::Page,
};

type Handler = MethodRouter<Arc<Http>>;

fn row(method: Method, path: &'static str, summary: &'static str, answer: Answer) -> RouteSpec {
    let websocket = matches!(answer, Answer::Upgrade(_));
    RouteSpec {
        csrf: method != Method::GET || websocket,
        method,
        path,
        auth: true,
        websocket,
        summary,
        query: None,
        body: None,
        answer,
    }
}

fn public<T: JsonSchema>(path: &'static str, summary: &'static str) -> RouteSpec {
    RouteSpec {
        auth: false,
        ..row(Method::GET, path, summary, Answer::Json(schema::<T>))
    }
}

fn read<T: JsonSchema>(path: &'static str, summary: &'static str) -> RouteSpec {
    row(Method::GET, path, summary, Answer::Json(schema::<T>))
}

fn write<B: JsonSchema, T: JsonSchema>(
    method: Method,
    path: &'static str,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        body: Some(schema::<B>),
        ..row(method, path, summary, Answer::Json(schema::<T>))
    }
}

/// A state-changing request without a body.
fn act<T: JsonSchema>(method: Method, path: &'static str, summary: &'static str) -> RouteSpec {
    row(method, path, summary, Answer::Json(schema::<T>))
}

fn socket<T: JsonSchema>(path: &'static str, summary: &'static str) -> RouteSpec {
    row(Method::GET, path, summary, Answer::Upgrade(schema::<T>))
}

// Long on purpose: this is data, one row per route, so the whole API reads at a glance.
fn table() -> Vec<(RouteSpec, Handler)> {
    use handlers::*;
    vec![
        (
            public::<Health>("/api/v1/healthz", "Liveness"),
            get(health::healthz),
        ),
        (
            public::<Health>(
                "/api/v1/readyz",
                "Readiness: 503 while starting or stopping",
            ),
            get(health::readyz),
        ),
        (
            public::<VersionInfo>("/api/v1/version", "The daemon's version"),
            get(health::version),
        ),
        (
            RouteSpec {
                auth: false,
                ..row(
                    Method::GET,
                    "/launch",
                    "Trades a one-time launch token for the session cookie (loopback mode)",
                    Answer::Redirect,
                )
            },
            get(launch::launch),
        ),
        (
            RouteSpec {
                auth: false,
                ..row(
                    Method::GET,
                    "/api/v1/dsl/schema",
                    "The JSON Schema of .kaged/project.yaml",
                    Answer::Document,
                )
            },
            get(projects::schema),
        ),
        (
            row(Method::GET, "/", "The web UI", Answer::Page),
            get(web::index),
        ),
        (
            row(
                Method::GET,
                "/assets/{*path}",
                "The web UI's assets",
                Answer::Page,
            ),
            get(web::asset),
        ),
        (
            row(
                Method::GET,
                "/sw.js",
                "The web UI's service worker: shows push notifications, opens the session on a tap",
                Answer::Page,
            ),
            get(web::service_worker),
        ),
        (
            row(
                Method::GET,
                "/manifest.webmanifest",
                "The web app manifest, so the UI installs as an app (push on iOS needs it)",
                Answer::Page,
            ),
            get(web::manifest),
        ),
        (
            read::<Status>(
                "/api/v1/status",
                "Mode and why, where the data lives, settings",
            ),
            get(status::status),
        ),
        (
            row(
                Method::GET,
                "/api/v1/openapi.json",
                "This document",
                Answer::Document,
            ),
            get(openapi::openapi),
        ),
        (
            read::<Me>("/api/v1/me", "The caller's identity and CSRF token"),
            get(me::me),
        ),
        (
            read::<KeyBarChoice>(
                "/api/v1/me/keybar",
                "The keys the caller's key bar shows on touch screens, on every device",
            ),
            get(push::keybar),
        ),
        (
            write::<KeyBarChoice, KeyBarChoice>(
                Method::PUT,
                "/api/v1/me/keybar",
                "Chooses the caller's key bar keys; kept in bar order, each once",
            ),
            put(push::set_keybar),
        ),
        (
            act::<LaunchUrl>(
                Method::POST,
                "/api/v1/auth/launch-token",
                "A fresh one-time launch URL (loopback mode)",
            ),
            post(me::launch_token),
        ),
        (
            act::<SignedOut>(
                Method::POST,
                "/api/v1/auth/logout",
                "Signs this browser session out",
            ),
            post(me::logout),
        ),
        (
            act::<Revoked>(
                Method::POST,
                "/api/v1/auth/revoke",
                "Signs every browser out (a new cookie key); the CLI's nonce still works",
            ),
            post(me::revoke),
        ),
        (
            RouteSpec {
                query: Some(schema::<AuditParams>),
                ..read::<AuditPage>("/api/v1/audit", "The audit log, newest first")
            },
            get(audit::list),
        ),
        (
            socket::<DaemonEvent>("/api/v1/events", "Daemon events"),
            get(events::events),
        ),
        (
            read::<ProjectList>("/api/v1/projects", "Loaded projects"),
            get(projects::list),
        ),
        (
            write::<LoadProject, ProjectView>(
                Method::POST,
                "/api/v1/projects",
                "Loads the project in a directory",
            ),
            post(projects::load),
        ),
        (
            read::<ProjectView>("/api/v1/projects/{id}", "One project"),
            get(projects::get),
        ),
        (
            act::<Unloaded>(Method::DELETE, "/api/v1/projects/{id}", "Unloads a project"),
            delete(projects::unload),
        ),
        (
            read::<SessionList>("/api/v1/projects/{id}/sessions", "A project's sessions"),
            get(sessions::list_for_project),
        ),
        (
            write::<StartSession, SessionInfo>(
                Method::POST,
                "/api/v1/projects/{id}/sessions",
                "Starts a session: the shell, a declared agent or task, or an argv",
            ),
            post(sessions::create),
        ),
        (
            read::<WorktreeList>(
                "/api/v1/projects/{id}/worktrees",
                "The runs with a worktree in a project's repository, and its snapshots",
            ),
            get(worktrees::list),
        ),
        (
            read::<UnknownWorktreeList>(
                "/api/v1/projects/{id}/worktrees/unknown",
                "Worktrees git knows in the project's repository that kaged did not make",
            ),
            get(worktrees::unknown),
        ),
        (
            read::<WorktreeReview>(
                "/api/v1/worktrees/{id}",
                "A run's review: commits on its branch, diff against base, uncommitted changes",
            ),
            get(worktrees::review),
        ),
        (
            RouteSpec {
                query: Some(schema::<RemoveWorktreeParams>),
                ..act::<WorktreeRemoved>(
                    Method::DELETE,
                    "/api/v1/worktrees/{id}",
                    "Removes a run's worktree, first snapshotting whatever removing would lose; \
                     refused while it holds ignored files, unless discard_ignored=true",
                )
            },
            delete(worktrees::remove),
        ),
        (
            write::<RestoreWorktree, WorktreeRun>(
                Method::POST,
                "/api/v1/worktrees/{id}/restore",
                "Restores a run's snapshot into a new run's worktree on a new branch",
            ),
            post(worktrees::restore),
        ),
        (
            write::<MergeWorktree, WorktreeMerged>(
                Method::POST,
                "/api/v1/worktrees/{id}/merge",
                "Merges a run's branch into its base in the main checkout (409 when dirty there)",
            ),
            post(worktrees::merge),
        ),
        (
            act::<BranchDeleted>(
                Method::DELETE,
                "/api/v1/worktrees/{id}/branch",
                "Deletes a removed run's branch, refused while it holds unkept work",
            ),
            delete(worktrees::delete_branch),
        ),
        (
            read::<SessionList>("/api/v1/sessions", "Every session of every project"),
            get(sessions::list_all),
        ),
        (
            read::<SessionInfo>("/api/v1/sessions/{id}", "One session"),
            get(sessions::get),
        ),
        (
            RouteSpec {
                query: Some(schema::<TranscriptParams>),
                ..row(
                    Method::GET,
                    "/api/v1/sessions/{id}/transcript",
                    "Part of a session's transcript: every byte it wrote",
                    Answer::Bytes,
                )
            },
            get(sessions::transcript),
        ),
        (
            act::<SessionInfo>(
                Method::DELETE,
                "/api/v1/sessions/{id}",
                "Ends a session: HUP, then TERM, then KILL",
            ),
            delete(sessions::end),
        ),
        (
            write::<SignalRequest, SessionInfo>(
                Method::POST,
                "/api/v1/sessions/{id}/signal",
                "Signals a session's process group",
            ),
            post(sessions::signal),
        ),
        (
            write::<ResizeRequest, SessionInfo>(
                Method::POST,
                "/api/v1/sessions/{id}/resize",
                "Resizes a session's terminal",
            ),
            post(sessions::resize),
        ),
        (
            write::<InputRequest, InputWritten>(
                Method::POST,
                "/api/v1/sessions/{id}/input",
                "Types into a session",
            ),
            post(sessions::input),
        ),
        (
            write::<ShareRequest, SessionInfo>(
                Method::POST,
                "/api/v1/sessions/{id}/shares",
                "Shares a session with another operator, or takes the share back",
            ),
            post(sessions::share),
        ),
        (
            socket::<DaemonEvent>(
                "/api/v1/sessions/{id}/agent",
                "An agent run's stream: its state now, then state changes until run.ended",
            ),
            get(agent::agent),
        ),
        (
            read::<ApprovalList>(
                "/api/v1/approvals",
                "Agents' tool calls held for an answer, in the sessions the caller sees",
            ),
            get(approvals::list),
        ),
        (
            write::<ApprovalAnswer, ApprovalOutcome>(
                Method::POST,
                "/api/v1/approvals/{id}",
                "Approves or denies a held tool call, with an optional note to the agent; only \
                 the session's owner or an admin",
            ),
            post(approvals::answer),
        ),
        (
            read::<PushInfo>(
                "/api/v1/push",
                "The VAPID public key to subscribe with, and the caller's push subscriptions",
            ),
            get(push::info),
        ),
        (
            write::<PushSubscribe, PushSubscriptionView>(
                Method::POST,
                "/api/v1/push/subscriptions",
                "Stores this browser's push subscription for the caller",
            ),
            post(push::subscribe),
        ),
        (
            act::<PushRevoked>(
                Method::DELETE,
                "/api/v1/push/subscriptions/{id}",
                "Revokes one of the caller's push subscriptions",
            ),
            delete(push::revoke),
        ),
        (
            socket::<ServerControl>(
                "/api/v1/sessions/{id}/pty",
                "A session's terminal: binary frames are bytes, text frames control",
            ),
            get(pty::pty),
        ),
    ]
}

/// The table as data, for the OpenAPI document, the router walk test and docs.
pub fn route_specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(s, _)| s).collect()
}

pub(crate) fn build(http: Arc<Http>) -> Router {
    let mut router = Router::new();
    for (spec, handler) in table() {
        router = router.route(spec.path, handler);
    }
    router.fallback(handlers::not_found).with_state(http)
}

pub(crate) struct RouteIndex(HashMap<(Method, &'static str), RouteSpec>);

impl RouteIndex {
    pub(crate) fn new() -> Self {
        RouteIndex(
            route_specs()
                .into_iter()
                .map(|s| ((s.method.clone(), s.path), s))
                .collect(),
        )
    }

    pub(crate) fn lookup(&self, method: &Method, path: Option<&str>) -> RouteSpec {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        path.and_then(|p| self.0.get(&(method.clone(), p)).cloned())
            .unwrap_or(FALLBACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_flag_matches_the_method_rule() {
        for s in route_specs() {
            let unsafe_method = !matches!(s.method, Method::GET | Method::HEAD | Method::OPTIONS);
            assert_eq!(s.csrf, unsafe_method || s.websocket, "{s:?}");
            if !s.auth {
                assert!(
                    !s.csrf && !s.websocket,
                    "public routes are read-only: {s:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_design_list_is_public() {
        let design = [
            "/api/v1/healthz",
            "/api/v1/readyz",
            "/api/v1/version",
            "/launch",
            "/api/v1/dsl/schema",
        ];
        for s in route_specs().into_iter().filter(|s| !s.auth) {
            assert!(
                design.contains(&s.path),
                "{} is public but not in design §5",
                s.path
            );
            assert_eq!(s.method, Method::GET, "{s:?}");
        }
    }

    #[test]
    fn every_route_says_what_it_does() {
        for s in route_specs() {
            assert!(
                !s.summary.is_empty(),
                "{} {} has no summary",
                s.method,
                s.path
            );
        }
    }
}
