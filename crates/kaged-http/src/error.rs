//! The JSON error envelope of design §5, produced in exactly one `IntoResponse` impl, and the
//! extractors that turn malformed input into it instead of axum's plain-text rejections.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kaged_api::{ErrorBody, ErrorCode, ErrorEnvelope};
use kaged_daemon::OpError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("no {what} with id {id:?}"))
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        ApiError {
            code: e.code(),
            details: e.details(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        (status, Json(envelope)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Malformed JSON is `bad_request`; well-formed JSON with wrong fields or values is
/// `validation_failed`. Both say what was expected.
pub(crate) fn body<T>(b: Result<Json<T>, JsonRejection>, hint: &str) -> ApiResult<T> {
    b.map(|Json(v)| v).map_err(|e| {
        let code = match e {
            JsonRejection::JsonDataError(_) => ErrorCode::ValidationFailed,
            _ => ErrorCode::BadRequest,
        };
        ApiError::new(code, format!("{}; expected {hint}", e.body_text()))
    })
}

pub(crate) fn query<T>(
    q: Result<axum::extract::Query<T>, QueryRejection>,
    hint: &str,
) -> ApiResult<T> {
    q.map(|axum::extract::Query(v)| v)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}; {hint}")))
}

/// A plain request to a WebSocket route gets the envelope, not axum's plain-text rejection.
pub(crate) fn upgrade(
    ws: Result<
        axum::extract::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> ApiResult<axum::extract::WebSocketUpgrade> {
    ws.map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "{}; this route is a WebSocket: connect with `Upgrade: websocket`",
                e.body_text()
            ),
        )
    })
}
