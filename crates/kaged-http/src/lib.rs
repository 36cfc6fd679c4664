//! `http` owns the API surface (design §5): one route table with an auth and a CSRF flag per
//! entry, one layer stack in front of every route including WebSocket upgrades
//! (Host → Origin → auth → CSRF → warning headers → audit), the JSON error envelope and the
//! handlers. Handlers only ever see an [`kaged_auth::Identity`]; they never branch on the
//! deployment or auth mode.

mod access;
mod bridge;
pub mod error;
mod gate;
mod handlers;
pub mod launcher;
pub mod projects;
mod routes;
mod state;

pub use access::Access;
pub use bridge::{spawn_event_bridge, spawn_read_audit};
pub use error::{ApiError, Code};
pub use launcher::HostFacts;
pub use projects::Projects;
pub use routes::{RouteSpec, route_specs};
pub use state::{AppState, DaemonInfo, Parts, Warning};

use std::sync::Arc;

use axum::Router;

/// Builds the full router: every route from the table, wrapped by the gate and the response
/// decorations. Nothing is added outside this function.
pub fn router(state: Arc<AppState>) -> Router {
    #[cfg(feature = "bench-ungated")]
    if std::env::var_os("KAGED_BENCH_UNGATED").is_some() {
        tracing::warn!(
            "BENCH BUILD: KAGED_BENCH_UNGATED is set, every route is served WITHOUT Host/Origin/auth/CSRF checks"
        );
        return routes::build(state.clone())
            .layer(axum::middleware::from_fn(gate::bench_identity))
            .layer(axum::middleware::map_response_with_state(
                state,
                gate::decorate,
            ));
    }
    routes::build(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ))
        .layer(axum::middleware::map_response_with_state(
            state,
            gate::decorate,
        ))
}
