//! `GET /api/v1/events`: a WebSocket of [`DaemonEvent`]s as JSON text frames.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use kaged_api::DaemonEvent;
use kaged_auth::Authenticated;
use tokio::sync::broadcast::error::RecvError;

use crate::Http;
use crate::error::upgrade;

pub(crate) async fn events(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match upgrade(ws) {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let rx = http.daemon.events();
    // Clients only ever send pings here; see pty.rs for why the buffer is small.
    ws.max_message_size(64 << 10)
        .read_buffer_size(4 << 10)
        .on_upgrade(move |socket| stream(socket, rx, http, auth))
}

/// Each subscriber sees only the events about sessions it may see.
async fn stream(
    socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<DaemonEvent>,
    http: Arc<Http>,
    auth: Authenticated,
) {
    let (mut tx, mut inbound) = socket.split();
    loop {
        let event = tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) if http.daemon.sees_event(&auth.identity, &ev) => ev,
                Ok(_) => continue,
                // A slow client misses events rather than holding memory for them; it is
                // told how many so it can refetch state.
                Err(RecvError::Lagged(missed)) => DaemonEvent::Gap { missed },
                Err(RecvError::Closed) => break,
            },
            msg = inbound.next() => match msg {
                Some(Ok(Message::Text(t))) if t.contains("\"ping\"") => DaemonEvent::Pong,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        let Ok(text) = serde_json::to_string(&event) else {
            continue;
        };
        if tx.send(Message::Text(text.into())).await.is_err() {
            break;
        }
    }
}
