//! The layer stack every request crosses, in the order of design §4/§5:
//! Host allowlist → Origin → auth → CSRF → (handler) → audit, then [`decorate`], which puts the
//! warning and security headers on every response, including the gate's own refusals. One
//! middleware, not two: each axum layer boxes a future per request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use kaged_api::ErrorCode as Code;
use kaged_auth::{AuthError, AuthMode, HEADER_CSRF, HEADER_PAGE_KEY};

use kaged_daemon::{Daemon, Refusal};

use crate::Http;
use crate::error::ApiError;

pub(crate) async fn gate(
    State(http): State<Arc<Http>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let res = check(&http, req, next).await;
    decorate(&http, res)
}

// Long on purpose: the checks read top to bottom in the order of design §4, which is the
// property that matters; split up, the order would no longer be visible in one place.
async fn check(http: &Http, mut req: Request<Body>, next: Next) -> Response {
    // A plain authenticated read allocates only the identity handed to the handler: the peer
    // and path are formatted only for a refusal or an audit row.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let method = req.method().clone();
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
    let spec = http.routes.lookup(&method, matched);
    let st = &http.daemon;
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
    let host = match request_host(headers, req.uri()) {
        Ok(host) => host,
        Err(HostProblem::Duplicate) => {
            return refuse(
                st,
                Code::BadRequest,
                "duplicate_host",
                &method,
                path,
                peer,
                "the request carries more than one Host header; send exactly one",
            )
            .await;
        }
        Err(HostProblem::TargetDisagrees) => {
            return refuse(st, Code::BadRequest, "host_mismatch", &method, path, peer,
                "the request target names a different host than the Host header; send the path alone (GET /api/v1/...) or make them agree").await;
        }
    };
    if !host.is_some_and(|h| st.access().host_allowed(h)) {
        return refuse(st, Code::Forbidden, "host_not_allowed", &method, path, peer,
            "Host header is not in this daemon's allowlist; use the URL kaged printed, or add the name to auth.allowed_hosts").await;
    }
    let Ok(origin) = single(headers, &header::ORIGIN) else {
        return refuse(
            st,
            Code::BadRequest,
            "duplicate_origin",
            &method,
            path,
            peer,
            "the request carries more than one Origin header; send exactly one",
        )
        .await;
    };

    // 2. Origin: state-changing requests and WebSocket upgrades must come from our own origin.
    if state_changing || is_ws || spec.csrf {
        let origin = origin.and_then(|o| o.to_str().ok());
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        if cross_site || !origin.is_some_and(|o| st.access().origin_allowed(o)) {
            return refuse(st, Code::Forbidden, "origin_not_allowed", &method, path, peer,
                "Origin is missing or not allowed; requests that change state must come from kaged's own page (or add the origin to auth.allowed_origins)").await;
        }
    }

    // 3. Auth. A browser cookie counts only with its page key (see
    // `AuthPolicy::page_key`), except for the UI shell the page loads from.
    let authed = if spec.auth {
        let page_key = headers
            .get(HEADER_PAGE_KEY)
            .map(|v| v.as_bytes())
            .or_else(|| {
                is_ws
                    .then(|| query_param(req.uri().query(), "page"))
                    .flatten()
            });
        let checked = st.auth().authenticate(headers).and_then(|a| {
            if ui_shell(&spec) || st.auth().verify_page_key(&a, page_key) {
                Ok(a)
            } else {
                Err(AuthError::PageKey)
            }
        });
        match checked {
            Ok(a) => Some(a),
            Err(e) => return unauthenticated(st, e, &method, path, peer, headers).await,
        }
    } else {
        None
    };
    let renewal = authed.as_ref().and_then(|a| st.auth().renewal(a));

    // 4. CSRF: every state-changing method and every upgrade, in every auth mode.
    if spec.csrf || state_changing || is_ws {
        let ok = authed.as_ref().is_some_and(|a| {
            let presented = headers.get(HEADER_CSRF).map(|v| v.as_bytes()).or_else(|| {
                is_ws
                    .then(|| query_param(req.uri().query(), "csrf"))
                    .flatten()
            });
            presented.is_some_and(|p| st.auth().verify_csrf(a, p))
        });
        if !ok {
            return refuse(st, Code::Forbidden, "csrf", &method, path, peer,
                "missing or wrong CSRF token; send the token from GET /api/v1/me in the X-Kaged-CSRF header").await;
        }
    }

    // Writes and upgrades get an audit row with the request's path; only they need it kept.
    let write_path = (state_changing || is_ws).then(|| path.to_owned());
    let actor = authed.as_ref().map(|a| a.identity.user_id.clone());
    if let Some(a) = authed {
        req.extensions_mut().insert(a);
    }
    let mut response = next.run(req).await;
    // A session in use slides: its cookie is renewed before it can expire.
    if let Some(v) = renewal.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }

    // 6. Audit: every authenticated request's user id (ADR-0007). Writes and upgrades get a
    // row each; plain reads are counted (see `kaged_daemon::Audit`).
    if let Some(actor) = actor {
        let status = response.status().as_u16();
        match write_path {
            Some(path) => {
                st.audit_log()
                    .request(&actor, method.as_str(), &path, status, peer)
                    .await;
            }
            None => st
                .audit_log()
                .count_read(&actor, method.as_str(), route, status),
        }
    }
    response
}

/// 5. Warning headers and security headers on every response.
fn decorate(http: &Http, mut res: Response) -> Response {
    let warnings = http.daemon.warnings();
    let h = res.headers_mut();
    // One growth of the map instead of one per header.
    h.reserve(warnings.len() + 5);
    for w in warnings {
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

/// The static UI the browser loads before it has read its page key from storage, and what
/// the browser itself fetches for it (the service worker, the manifest), which carries no
/// header the page could add.
fn ui_shell(spec: &crate::RouteSpec) -> bool {
    matches!(
        spec.path,
        "/" | "/assets/{*path}" | "/sw.js" | "/manifest.webmanifest"
    )
}

/// Why a request does not name one host unambiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostProblem {
    Duplicate,
    TargetDisagrees,
}

/// The one host a request is for: its single `Host` header, which an absolute-form target
/// (`GET http://host:port/path`) must agree with; without a `Host`, the target's authority.
/// Two candidates would let a proxy in front and the gate each believe a different one. A
/// `Host` that is not text is `None`, which no allowlist contains.
fn request_host<'r>(headers: &'r HeaderMap, uri: &'r Uri) -> Result<Option<&'r str>, HostProblem> {
    let Some(header) =
        single(headers, &header::HOST).map_err(|Duplicate| HostProblem::Duplicate)?
    else {
        return Ok(uri.authority().map(|a| a.as_str()));
    };
    if let Some(a) = uri.authority()
        && !a
            .as_str()
            .as_bytes()
            .eq_ignore_ascii_case(header.as_bytes())
    {
        return Err(HostProblem::TargetDisagrees);
    }
    Ok(header.to_str().ok())
}

/// A header sent more than once where the gate needs one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Duplicate;

/// The header's value when it appears at most once. Taking the first of several would let
/// whatever sits in front of the daemon act on another copy than the gate checked.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, Duplicate> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    match values.next() {
        Some(_) => Err(Duplicate),
        None => Ok(first),
    }
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
    st: &Daemon,
    err: AuthError,
    method: &Method,
    path: &str,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Response {
    let wrong_credential = !matches!(err, AuthError::Missing | AuthError::NotLoopback);
    st.refused(Refusal {
        reason: err.reason(),
        method: method.as_str(),
        path,
        peer,
        user_agent: None,
        wrong_credential,
    })
    .await;
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html && method == Method::GET && !path.starts_with("/api/") {
        let how = match st.auth().mode() {
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
    st: &Daemon,
    code: Code,
    reason: &'static str,
    method: &Method,
    path: &str,
    peer: Option<SocketAddr>,
    message: &str,
) -> Response {
    st.refused(Refusal {
        reason,
        method: method.as_str(),
        path,
        peer,
        user_agent: None,
        wrong_credential: false,
    })
    .await;
    ApiError::new(code, message).into_response()
}

/// Stands in for the gate in [`crate::router_without_gate_for_bench`]: handlers need an identity.
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn one_host_from_the_header_or_the_target() {
        let origin_form: Uri = "/api/v1/status".parse().unwrap();
        let absolute: Uri = "http://127.0.0.1:7777/api/v1/status".parse().unwrap();
        let h = headers(&[("host", "127.0.0.1:7777")]);
        assert_eq!(request_host(&h, &origin_form), Ok(Some("127.0.0.1:7777")));
        assert_eq!(request_host(&h, &absolute), Ok(Some("127.0.0.1:7777")));
        let upper = headers(&[("host", "LOCALHOST:7777")]);
        let lower: Uri = "http://localhost:7777/".parse().unwrap();
        assert_eq!(request_host(&upper, &lower), Ok(Some("LOCALHOST:7777")));
        assert_eq!(
            request_host(&HeaderMap::new(), &absolute),
            Ok(Some("127.0.0.1:7777"))
        );
        assert_eq!(request_host(&HeaderMap::new(), &origin_form), Ok(None));
        let mut binary = HeaderMap::new();
        binary.insert(header::HOST, HeaderValue::from_bytes(b"\xff:7777").unwrap());
        assert_eq!(request_host(&binary, &origin_form), Ok(None));
    }

    #[test]
    fn two_hosts_or_a_target_naming_another_are_refused() {
        let origin_form: Uri = "/api/v1/status".parse().unwrap();
        let other: Uri = "http://other.example:1234/api/v1/status".parse().unwrap();
        let two = headers(&[("host", "127.0.0.1:7777"), ("host", "evil.example")]);
        assert_eq!(
            request_host(&two, &origin_form),
            Err(HostProblem::Duplicate)
        );
        let one = headers(&[("host", "127.0.0.1:7777")]);
        assert_eq!(
            request_host(&one, &other),
            Err(HostProblem::TargetDisagrees)
        );
    }

    #[test]
    fn single_tells_none_one_and_many_apart() {
        let none = HeaderMap::new();
        let one = headers(&[("origin", "http://a")]);
        let two = headers(&[("origin", "http://a"), ("origin", "http://a")]);
        assert_eq!(single(&none, &header::ORIGIN), Ok(None));
        assert_eq!(
            single(&one, &header::ORIGIN),
            Ok(Some(&HeaderValue::from_static("http://a")))
        );
        assert_eq!(single(&two, &header::ORIGIN), Err(Duplicate));
    }
}
