//! The one route table (design §5). Every route the daemon serves is a row here, with its auth
//! and CSRF flags; the gate looks the flags up by method and matched path, and anything that
//! is not a row (fallback, wrong method) is treated as authenticated + CSRF-checked.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post};
use serde::Serialize;

use crate::handlers;
use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSpec {
    #[serde(serialize_with = "ser_method")]
    pub method: Method,
    pub path: &'static str,
    /// False only for the unauthenticated list of design §5.
    pub auth: bool,
    /// True for every state-changing method and every WebSocket upgrade.
    pub csrf: bool,
    pub websocket: bool,
}

fn ser_method<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// Anything not in the table needs auth; the gate adds Origin and CSRF checks for any
/// state-changing method or upgrade whatever the table says.
pub(crate) const FALLBACK: RouteSpec = RouteSpec {
    method: Method::GET,
    path: "*",
    auth: true,
    csrf: false,
    websocket: false,
};

type Handler = MethodRouter<Arc<AppState>>;

const fn public(method: Method, path: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        auth: false,
        csrf: false,
        websocket: false,
    }
}

const fn read(path: &'static str) -> RouteSpec {
    RouteSpec {
        method: Method::GET,
        path,
        auth: true,
        csrf: false,
        websocket: false,
    }
}

const fn write(method: Method, path: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        auth: true,
        csrf: true,
        websocket: false,
    }
}

const fn socket(path: &'static str) -> RouteSpec {
    RouteSpec {
        method: Method::GET,
        path,
        auth: true,
        csrf: true,
        websocket: true,
    }
}

fn table() -> Vec<(RouteSpec, Handler)> {
    use handlers::*;
    vec![
        (public(Method::GET, "/api/v1/healthz"), get(health::healthz)),
        (public(Method::GET, "/api/v1/readyz"), get(health::readyz)),
        (public(Method::GET, "/api/v1/version"), get(health::version)),
        (public(Method::GET, "/launch"), get(launch::launch)),
        (
            public(Method::GET, "/api/v1/dsl/schema"),
            get(projects::schema),
        ),
        (read("/"), get(web::index)),
        (read("/assets/{*path}"), get(web::asset)),
        (read("/api/v1/status"), get(status::status)),
        (read("/api/v1/me"), get(me::me)),
        (
            write(Method::POST, "/api/v1/auth/launch-token"),
            post(me::launch_token),
        ),
        (read("/api/v1/audit"), get(audit::list)),
        (socket("/api/v1/events"), get(events::events)),
        (read("/api/v1/projects"), get(projects::list)),
        (
            write(Method::POST, "/api/v1/projects"),
            post(projects::load),
        ),
        (read("/api/v1/projects/{id}"), get(projects::get)),
        (
            write(Method::DELETE, "/api/v1/projects/{id}"),
            delete(projects::unload),
        ),
        (
            read("/api/v1/projects/{id}/sessions"),
            get(sessions::list_for_project),
        ),
        (
            write(Method::POST, "/api/v1/projects/{id}/sessions"),
            post(sessions::create),
        ),
        (read("/api/v1/sessions/{id}"), get(sessions::get)),
        (
            write(Method::DELETE, "/api/v1/sessions/{id}"),
            delete(sessions::end),
        ),
        (
            write(Method::POST, "/api/v1/sessions/{id}/signal"),
            post(sessions::signal),
        ),
        (
            write(Method::POST, "/api/v1/sessions/{id}/resize"),
            post(sessions::resize),
        ),
        (
            write(Method::POST, "/api/v1/sessions/{id}/input"),
            post(sessions::input),
        ),
        (socket("/api/v1/sessions/{id}/pty"), get(pty::pty)),
    ]
}

/// The table as data, for the router walk test and docs.
pub fn route_specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(s, _)| s).collect()
}

pub(crate) fn build(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    for (spec, handler) in table() {
        router = router.route(spec.path, handler);
    }
    router.fallback(handlers::not_found).with_state(state)
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
}
