//! The browser UI, embedded in the binary at build time (`web/dist`), so `kaged` stays one
//! file. Served behind the same gate as the API, with a strict CSP. A binary built before the
//! UI was serves a page that says how to build it.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use include_dir::Dir;

use crate::error::ApiError;

#[cfg(kaged_web_dist)]
static DIST: Option<Dir<'static>> = Some(include_dir::include_dir!(
    "$CARGO_MANIFEST_DIR/../../web/dist"
));
#[cfg(not(kaged_web_dist))]
static DIST: Option<Dir<'static>> = None;

/// Only our own origin; no inline script or style, no framing, no other hosts.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'; object-src 'none'";

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8>\
    <meta name=viewport content=\"width=device-width\"><title>kaged: web UI not built</title>\
    <body>\
    <h1>The web UI is not built into this kaged</h1>\
    <p>The API works; the browser UI was not built when this binary was. Build it and rebuild \
    kaged: <code>./dev start</code> does both, or run <code>cd web &amp;&amp; npm ci &amp;&amp; \
    npm run build</code> and then <code>cargo build -p kaged</code>.</p></body>";

fn serve(path: &str, cache: &'static str) -> Response {
    let Some(file) = DIST.as_ref().and_then(|d| d.get_file(path)) else {
        return ApiError::not_found("file", path).into_response();
    };
    let mime = match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    };
    let mut res = file.contents().into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

pub(crate) async fn index() -> Response {
    if DIST.is_none() {
        return Html(NOT_BUILT).into_response();
    }
    // The shell must never be cached: it names the current hashed assets.
    serve("index.html", "no-store")
}

pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    if path.contains("..") {
        return ApiError::not_found("file", &path).into_response();
    }
    // Hashed file names: safe to cache for a long time.
    serve(
        &format!("assets/{path}"),
        "private, max-age=31536000, immutable",
    )
}

/// At the root, so its scope is the whole UI. Revalidated on every load, so a new UI's worker
/// takes over at once.
pub(crate) async fn service_worker() -> Response {
    serve("sw.js", "no-cache")
}

pub(crate) async fn manifest() -> Response {
    serve("manifest.webmanifest", "no-cache")
}
