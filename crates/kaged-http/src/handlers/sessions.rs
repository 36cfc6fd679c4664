//! Sessions: start in a project, list, inspect, end, signal, resize, send input.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use kaged_auth::Authenticated;
use kaged_session::{Session, SessionError, SessionState, Signal};
use kaged_store::{AuditEvent, EventType};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Code};
use crate::launcher::{self, SessionRequest};
use crate::state::AppState;

fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Limit { .. } => ApiError::new(Code::RateLimited, e.to_string()),
        SessionError::EmptyArgv => ApiError::new(Code::ValidationFailed, e.to_string()),
        SessionError::NotRunning { .. } => ApiError::new(Code::Conflict, e.to_string()),
        SessionError::ShuttingDown => ApiError::new(Code::Unavailable, e.to_string()),
        SessionError::Spawn { .. } => ApiError::new(Code::ValidationFailed, e.to_string()),
        other => ApiError::internal(other),
    }
}

/// Malformed JSON is `bad_request`; well-formed JSON with wrong fields or values is
/// `validation_failed`. Both say what was expected.
pub(crate) fn body<T>(
    b: Result<Json<T>, axum::extract::rejection::JsonRejection>,
    hint: &str,
) -> ApiResult<T> {
    use axum::extract::rejection::JsonRejection;
    b.map(|Json(v)| v).map_err(|e| {
        let code = match e {
            JsonRejection::JsonDataError(_) => Code::ValidationFailed,
            _ => Code::BadRequest,
        };
        ApiError::new(code, format!("{}; expected {hint}", e.body_text()))
    })
}

fn find(st: &AppState, id: &str) -> ApiResult<Arc<Session>> {
    st.sessions
        .get(id)
        .ok_or_else(|| ApiError::not_found("session", id))
}

fn info(s: &Session) -> Json<Value> {
    Json(serde_json::to_value(s.info()).unwrap_or(Value::Null))
}

async fn audit(st: &AppState, kind: EventType, auth: &Authenticated, s: &Session, data: Value) {
    st.audit(
        AuditEvent::new(kind, Some(&auth.identity.user_id), data)
            .project(s.project_id())
            .session(s.id()),
    )
    .await;
}

pub(crate) async fn list_for_project(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if st.projects.get(&id).is_none() && st.sessions.list(Some(&id)).is_empty() {
        return Err(ApiError::not_found("project", &id));
    }
    Ok(Json(json!({ "sessions": st.sessions.list(Some(&id)) })))
}

pub(crate) async fn create(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    req: Result<Json<SessionRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let req = body(
        req,
        "{\"argv\"?, \"agent\"?, \"task\"?, \"cols\"?, \"rows\"?, \"cage\"?, \"env\"?}",
    )?;
    let project = st
        .projects
        .get(&id)
        .ok_or_else(|| ApiError::not_found("project", &id))?;
    let plan = launcher::plan(&project, req, &st.host)?;
    // `session.started`, `run.started` and their audit rows come from the event bridge.
    let spec = launcher::compile(&plan, &project, &st.host, &auth.identity.user_id)?;
    let session = st.sessions.spawn(spec).map_err(session_error)?;
    if plan.cage.is_none() && st.host.sandbox_enabled {
        let data = json!({"kind": plan.kind, "name": plan.name});
        audit(&st, EventType::CageDisabled, &auth, &session, data).await;
    }
    Ok(info(&session))
}

pub(crate) async fn get(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = find(&st, &id)?;
    Ok(info(&s))
}

/// Ends a session: SIGHUP, then SIGTERM, then SIGKILL to its process group.
pub(crate) async fn end(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = find(&st, &id)?;
    if s.state() == SessionState::Exited {
        return Err(ApiError::new(
            Code::Conflict,
            format!("session {id} has already exited"),
        ));
    }
    s.terminate();
    audit(&st, EventType::SessionTerminated, &auth, &s, json!({})).await;
    Ok(info(&s))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignalBody {
    signal: String,
}

pub(crate) async fn signal(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    b: Result<Json<SignalBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let b = body(
        b,
        "{\"signal\": \"INT\"|\"TERM\"|\"HUP\"|\"KILL\"|\"QUIT\"|\"USR1\"|\"USR2\"|\"STOP\"|\"CONT\"|\"WINCH\"}",
    )?;
    let sig = match b.signal.trim_start_matches("SIG") {
        "INT" => Signal::SIGINT,
        "TERM" => Signal::SIGTERM,
        "HUP" => Signal::SIGHUP,
        "KILL" => Signal::SIGKILL,
        "QUIT" => Signal::SIGQUIT,
        "USR1" => Signal::SIGUSR1,
        "USR2" => Signal::SIGUSR2,
        "STOP" => Signal::SIGSTOP,
        "CONT" => Signal::SIGCONT,
        "WINCH" => Signal::SIGWINCH,
        other => {
            return Err(ApiError::new(
                Code::ValidationFailed,
                format!(
                    "unknown signal {other:?}; use INT, TERM, HUP, KILL, QUIT, USR1, USR2, STOP, CONT or WINCH"
                ),
            ));
        }
    };
    let s = find(&st, &id)?;
    s.signal(sig).map_err(session_error)?;
    audit(
        &st,
        EventType::SessionSignalled,
        &auth,
        &s,
        json!({"signal": sig.as_str()}),
    )
    .await;
    Ok(info(&s))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResizeBody {
    cols: u16,
    rows: u16,
}

pub(crate) async fn resize(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    b: Result<Json<ResizeBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let b = body(b, "{\"cols\": N, \"rows\": N}")?;
    if !(1..=1000).contains(&b.cols) || !(1..=1000).contains(&b.rows) {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "cols and rows must be between 1 and 1000",
        ));
    }
    let s = find(&st, &id)?;
    s.resize(b.cols, b.rows).map_err(session_error)?;
    Ok(info(&s))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputBody {
    data: String,
}

pub(crate) async fn input(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    b: Result<Json<InputBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let b = body(b, "{\"data\": \"text to type\"}")?;
    if b.data.len() > 64 * 1024 {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "input is limited to 64 KiB per request",
        ));
    }
    let s = find(&st, &id)?;
    s.write_input(b.data.as_bytes())
        .await
        .map_err(session_error)?;
    Ok(Json(json!({"written": b.data.len()})))
}
