//! `GET /api/v1/sessions/{id}/pty`: the PTY broker over WebSocket (design §6).
//! Binary frames carry terminal bytes both ways; text frames carry JSON control messages:
//! client `hello{offset}`, `resize{cols,rows}`, `ping`; server `hello{offset}`,
//! `gap{from,to}`, `exit{code,signal}`, `pong`.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use kaged_auth::{AuthMode, Authenticated};
use kaged_session::{Session, ViewerEvent};
use kaged_store::{AuditEvent, EventType};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    Hello { offset: Option<u64> },
    Resize { cols: u16, rows: u16 },
    Ping,
}

pub(crate) async fn pty(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(session) = st.sessions.get(&id) else {
        return ApiError::not_found("session", &id).into_response();
    };
    // Viewers send keystrokes, not bulk data: a 4 KiB read buffer instead of the default
    // 128 KiB keeps an idle attached viewer cheap (issue 8: 1000 attached sessions).
    ws.max_message_size(1 << 20)
        .read_buffer_size(4 << 10)
        .on_upgrade(move |socket| serve(st, auth, session, socket))
}

async fn serve(st: Arc<AppState>, auth: Authenticated, session: Arc<Session>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    // The client says where it wants to start; a client that says nothing gets the scrollback.
    let from = match tokio::time::timeout(Duration::from_secs(5), rx.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<Control>(&t) {
            Ok(Control::Hello { offset }) => offset,
            _ => None,
        },
        Ok(Some(Ok(Message::Binary(b)))) => {
            let _ = session.write_input(&b).await;
            None
        }
        _ => None,
    };
    let actor = auth.identity.user_id.clone();
    // Emits `session.attached`; the event bridge publishes and audits it.
    let mut viewer = session.attach(&actor, from);
    if auth.identity.mode == AuthMode::Insecure {
        st.audit(
            AuditEvent::new(
                EventType::AuthInsecureMode,
                Some(&actor),
                json!({"event": "session_attach", "bind": st.info.bind.to_string(),
                       "reason": st.info.settings.insecure_reason.as_ref().map(|r| r.value.clone())}),
            )
            .project(session.project_id())
            .session(session.id()),
        )
        .await;
    }
    let hello = json!({"type": "hello", "offset": viewer.offset(), "session": session.id()});
    if tx
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            ev = viewer.next() => {
                let msg = match ev {
                    Some(ViewerEvent::Data { bytes, .. }) => Message::Binary(bytes),
                    Some(ViewerEvent::Gap { from, to }) => {
                        Message::Text(json!({"type": "gap", "from": from, "to": to}).to_string().into())
                    }
                    Some(ViewerEvent::Exit { code, signal }) => {
                        let m = json!({"type": "exit", "code": code, "signal": signal});
                        let _ = tx.send(Message::Text(m.to_string().into())).await;
                        let _ = tx.close().await;
                        return;
                    }
                    None => return,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if session.write_input(&b).await.is_err() {
                        // The session ended; the viewer delivers the exit next.
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Control>(&t) {
                    Ok(Control::Resize { cols, rows }) if (1..=1000).contains(&cols) && (1..=1000).contains(&rows) => {
                        let _ = session.resize(cols, rows);
                    }
                    Ok(Control::Ping) => {
                        if tx.send(Message::Text(json!({"type": "pong"}).to_string().into())).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let m = json!({"type": "error", "message": format!("bad control message: {e}")});
                        if tx.send(Message::Text(m.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
