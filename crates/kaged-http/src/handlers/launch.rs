//! `GET /launch?token=…`: trades a one-time launch token (or the nonce) for the session cookie
//! and sends the browser to `/` so the token leaves the address bar and history.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use kaged_api::ErrorCode;
use kaged_daemon::LaunchAttempt;

use crate::Http;
use crate::error::ApiError;

/// Exactly one `token`, and nothing else: a URL with two tokens, or extra parameters, is
/// not one kaged printed.
fn the_token(uri: &Uri) -> Result<&str, ApiError> {
    let mut token = None;
    for pair in uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("token", v)) if token.is_none() => token = Some(v),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "a launch URL has exactly one `token` parameter and nothing else; use the URL from `kaged auth open`",
                ));
            }
        }
    }
    token.ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "missing ?token=; use the URL from `kaged auth open`",
        )
    })
}

pub(crate) async fn launch(
    State(http): State<Arc<Http>>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    // A HEAD would spend the one-time token on a response nobody reads (a link preview).
    if method != Method::GET {
        return ApiError::new(
            ErrorCode::BadRequest,
            "open a launch URL with GET, in a browser",
        )
        .into_response();
    }
    let token = match the_token(&uri) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let attempt = LaunchAttempt {
        peer,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
    };
    match http.daemon.redeem_launch(token, attempt).await {
        Ok(launched) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            let h = res.headers_mut();
            // The page key rides in the fragment: never sent to a server, read once by our
            // own page into its origin's storage, then dropped from the address bar.
            let location = format!("/#kaged-page={}", launched.page_key);
            if let (Ok(loc), Ok(cookie)) = (
                HeaderValue::from_str(&location),
                HeaderValue::from_str(&launched.set_cookie),
            ) {
                h.insert(header::LOCATION, loc);
                h.insert(header::SET_COOKIE, cookie);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
