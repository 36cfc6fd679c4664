//! `GET /launch?token=…`: trades a one-time launch token (or the nonce) for the session cookie
//! and sends the browser to `/` so the token leaves the address bar and history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kaged_api::ErrorCode;

use crate::Http;
use crate::error::ApiError;

pub(crate) async fn launch(
    State(http): State<Arc<Http>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(token) = q.get("token") else {
        return ApiError::new(
            ErrorCode::BadRequest,
            "missing ?token=; use the URL from `kaged auth open`",
        )
        .into_response();
    };
    match http.daemon.redeem_launch(token).await {
        Ok(cookie) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            let h = res.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                h.insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
