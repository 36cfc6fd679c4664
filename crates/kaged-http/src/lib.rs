//! `http` owns the API surface (design §5) and nothing else: one route table with an auth and
//! a CSRF flag per entry, one layer stack in front of every route including WebSocket
//! upgrades (Host → Origin → auth → CSRF → warning headers → audit), the JSON error envelope,
//! the OpenAPI document, and handlers that each call one [`kaged_daemon::Daemon`] method.
//! Handlers only ever see an [`kaged_auth::Identity`]; they never branch on the deployment or
//! auth mode.

pub mod error;
mod gate;
mod handlers;
pub mod openapi;
mod routes;

pub use error::ApiError;
pub use routes::{Answer, RouteSpec, route_specs};

use std::sync::Arc;

use axum::Router;
use kaged_daemon::Daemon;

/// What handlers share: the daemon and the route table the gate consults.
pub(crate) struct Http {
    pub(crate) daemon: Daemon,
    pub(crate) routes: routes::RouteIndex,
}

/// Builds the full router: every route from the table, wrapped by the gate (which also puts the
/// response decorations on). Nothing is added outside this function.
pub fn router(daemon: Daemon) -> Router {
    let http = Arc::new(Http {
        daemon,
        routes: routes::RouteIndex::new(),
    });
    routes::build(http.clone()).layer(axum::middleware::from_fn_with_state(http, gate::gate))
}

/// The same routes with no gate at all: no Host, Origin, auth or CSRF checks, and no audit.
/// Only `kaged-bench` calls this, to measure what the gate costs; the `kaged` binary never
/// does, so no build of it can serve ungated. Handlers still get an identity.
#[doc(hidden)]
pub fn router_without_gate_for_bench(daemon: Daemon) -> Router {
    let http = Arc::new(Http {
        daemon,
        routes: routes::RouteIndex::new(),
    });
    routes::build(http).layer(axum::middleware::from_fn(gate::bench_identity))
}
