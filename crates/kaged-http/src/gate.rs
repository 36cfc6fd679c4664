//! The layer stack every request crosses, in the order of design §4/§5:
//! Host allowlist → Origin → auth → CSRF → (handler) → audit, plus [`decorate`] which puts the
//! warning and security headers on every response, including the gate's own refusals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use kaged_auth::{AuthError, AuthMode, HEADER_CSRF};
use kaged_store::{AuditEvent, EventType};
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::state::AppState;

pub(crate) async fn gate(
    State(st): State<Arc<AppState>>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    // A plain authenticated read allocates only the identity handed to the handler: the peer
    // and path are formatted only for a refusal or an audit row.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let method = req.method().clone();
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
    let spec = st.routes.lookup(&method, matched);
    let route = match matched {
        Some(_) if spec.path != crate::routes::FALLBACK.path => spec.path,
        // Matched by the router under a method the table does not list.
        Some(_) => "(unlisted method)",
        None => "(unmatched)",
    };
    let headers = req.headers();
    let path = req.uri().path();
    let is_ws = is_websocket(headers);
    let state_changing = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);

    // 1. Host: on every route, public ones included, so DNS rebinding gets nowhere.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if !host.is_some_and(|h| st.access.host_allowed(h)) {
        return refuse(&st, Code::Forbidden, "host_not_allowed", &method, path, peer,
            "Host header is not in this daemon's allowlist; use the URL kaged printed, or add the name to auth.allowed_hosts").await;
    }

    // 2. Origin: state-changing requests and WebSocket upgrades must come from our own origin.
    if state_changing || is_ws || spec.csrf {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        if cross_site || !origin.is_some_and(|o| st.access.origin_allowed(o)) {
            return refuse(&st, Code::Forbidden, "origin_not_allowed", &method, path, peer,
                "Origin is missing or not allowed; requests that change state must come from kaged's own page (or add the origin to auth.allowed_origins)").await;
        }
    }

    // 3. Auth.
    let authed = if spec.auth {
        match st.auth.authenticate(headers) {
            Ok(a) => Some(a),
            Err(e) => return unauthenticated(&st, e, &method, path, peer, headers).await,
        }
    } else {
        None
    };

    // 4. CSRF: every state-changing method and every upgrade, in every auth mode.
    if spec.csrf || state_changing || is_ws {
        let ok = authed.as_ref().is_some_and(|a| {
            let presented = headers.get(HEADER_CSRF).map(|v| v.as_bytes()).or_else(|| {
                is_ws
                    .then(|| query_param(req.uri().query(), "csrf"))
                    .flatten()
            });
            presented.is_some_and(|p| st.auth.verify_csrf(a, p))
        });
        if !ok {
            return refuse(&st, Code::Forbidden, "csrf", &method, path, peer,
                "missing or wrong CSRF token; send the token from GET /api/v1/me in the X-Kaged-CSRF header").await;
        }
    }

    // Writes and upgrades get an audit row with the request's path; only they need it kept.
    let write_path = (state_changing || is_ws).then(|| path.to_owned());
    let actor = authed.as_ref().map(|a| a.identity.user_id.clone());
    if let Some(a) = authed {
        req.extensions_mut().insert(a);
    }
    let response = next.run(req).await;

    // 6. Audit: every authenticated request's user id (ADR-0007). Never the query string:
    // it can carry a CSRF token. Writes and upgrades get a row each; plain reads are counted
    // per actor, route and status and written once a second (`http.reads`), because a row
    // per poll made the audit writer the daemon's main cost under load.
    if let Some(actor) = actor {
        let status = response.status().as_u16();
        match write_path {
            Some(path) => {
                st.audit(AuditEvent::new(
                    EventType::HttpRequest,
                    Some(&actor),
                    json!({"method": method.as_str(), "path": path, "status": status,
                           "peer": peer.map(|p| p.to_string())}),
                ))
                .await;
            }
            None => st.reads.count(&actor, method.as_str(), route, status),
        }
    }
    response
}

/// (method, route, status) of an authenticated read; the route is the table's pattern.
type ReadKey = (&'static str, &'static str, u16);

/// Counts of authenticated reads since the last flush, per actor.
#[derive(Default)]
pub(crate) struct ReadCounter {
    counts: std::sync::Mutex<
        std::collections::HashMap<String, std::collections::HashMap<ReadKey, u64>>,
    >,
}

impl ReadCounter {
    fn count(&self, actor: &str, method: &str, route: &'static str, status: u16) {
        let method = if method == "HEAD" { "HEAD" } else { "GET" };
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        // Allocates only for an actor's first read since the last flush.
        let per_actor = match m.get_mut(actor) {
            Some(per_actor) => per_actor,
            None => m.entry(actor.to_owned()).or_default(),
        };
        *per_actor.entry((method, route, status)).or_default() += 1;
    }

    fn take(&self) -> Vec<(String, ReadKey, u64)> {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        m.drain()
            .flat_map(|(actor, keys)| {
                keys.into_iter()
                    .map(move |(key, count)| (actor.clone(), key, count))
            })
            .collect()
    }
}

impl AppState {
    /// Writes the counted reads as `http.reads` rows; the daemon calls it every second and at
    /// shutdown.
    pub async fn flush_read_audit(&self) {
        for (actor, (method, route, status), count) in self.reads.take() {
            self.audit(AuditEvent::new(
                EventType::HttpReads,
                Some(&actor),
                json!({"method": method, "route": route, "status": status, "count": count}),
            ))
            .await;
        }
    }
}

/// 5. Warning headers and security headers on every response.
pub(crate) async fn decorate(State(st): State<Arc<AppState>>, mut res: Response) -> Response {
    let h = res.headers_mut();
    for w in &st.warnings {
        h.append("x-kaged-warning", HeaderValue::from_static(w.as_str()));
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q [u8]> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v.as_bytes())
    })
}

async fn unauthenticated(
    st: &AppState,
    err: AuthError,
    method: &Method,
    path: &str,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Response {
    st.rejected(err.reason(), method, path, peer).await;
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html && method == Method::GET && !path.starts_with("/api/") {
        let how = match st.auth.mode() {
            AuthMode::Loopback => {
                "Run <code>kaged auth open</code> on the machine that runs kaged to get a fresh one-time launch URL, then open it here."
            }
            AuthMode::Sidecar => {
                "Sign in through your auth sidecar (oauth2-proxy or equivalent); the daemon only accepts requests that crossed it."
            }
            AuthMode::Insecure => "",
        };
        let page = format!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>kaged: sign in</title>\
             <body style=\"font-family:system-ui;background:#111;color:#eee;max-width:40em;margin:3em auto;padding:1em\">\
             <h1>Not signed in</h1><p>{}</p><p>{how}</p></body>",
            html_escape(&err.to_string())
        );
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    ApiError::new(Code::Unauthenticated, err.to_string()).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn refuse(
    st: &AppState,
    code: Code,
    reason: &'static str,
    method: &Method,
    path: &str,
    peer: Option<SocketAddr>,
    message: &str,
) -> Response {
    st.rejected(reason, method, path, peer).await;
    ApiError::new(code, message).into_response()
}

/// Caps `auth.rejected` rows so a hostile tab hammering the daemon cannot flood the audit log;
/// what is over the cap is counted and reported in the next row that gets through.
#[derive(Default)]
pub(crate) struct RejectLimiter {
    second: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

const REJECTIONS_PER_SECOND: u32 = 20;

impl AppState {
    async fn rejected(&self, reason: &str, method: &Method, path: &str, peer: Option<SocketAddr>) {
        let peer = peer.map(|p| p.to_string());
        tracing::info!(reason, method = %method, path, peer, "request refused");
        let now = self.info.started.elapsed().as_secs();
        let lim = &self.rejections;
        if lim.second.swap(now, Ordering::Relaxed) != now {
            lim.count.store(0, Ordering::Relaxed);
        }
        if lim.count.fetch_add(1, Ordering::Relaxed) >= REJECTIONS_PER_SECOND {
            lim.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = lim.suppressed.swap(0, Ordering::Relaxed);
        self.audit(AuditEvent::new(
            EventType::AuthRejected,
            None,
            json!({"reason": reason, "method": method.as_str(), "path": path, "peer": peer, "suppressed_before": suppressed}),
        ))
        .await;
    }
}

/// Bench-only stand-in for the gate: handlers still need an identity.
#[cfg(feature = "bench-ungated")]
pub(crate) async fn bench_identity(mut req: Request<Body>, next: Next) -> Response {
    req.extensions_mut().insert(kaged_auth::Authenticated {
        identity: kaged_auth::Identity {
            user_id: "bench-ungated".to_owned(),
            email: None,
            groups: Vec::new(),
            mode: AuthMode::Insecure,
        },
        credential: kaged_auth::Credential::Insecure,
    });
    next.run(req).await
}
