//! `GET /api/v1/events`: a WebSocket of daemon events (`session.started`, `session.exited`,
//! `session.attached`, `run.started`, `run.ended`, …) as JSON text frames.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

pub(crate) async fn events(State(st): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    let rx = st.events.subscribe();
    // Clients only ever send pings here; see pty.rs for why the buffer is small.
    ws.max_message_size(64 << 10)
        .read_buffer_size(4 << 10)
        .on_upgrade(move |socket| stream(socket, rx))
}

async fn stream(socket: WebSocket, mut rx: tokio::sync::broadcast::Receiver<serde_json::Value>) {
    let (mut tx, mut inbound) = socket.split();
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let text = match ev {
                    Ok(v) => v.to_string(),
                    // A slow client misses events rather than holding memory for them; it is
                    // told how many so it can refetch state.
                    Err(RecvError::Lagged(n)) => json!({"type": "gap", "missed": n}).to_string(),
                    Err(RecvError::Closed) => break,
                };
                if tx.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = inbound.next() => match msg {
                Some(Ok(Message::Text(t))) if t.contains("\"ping\"") => {
                    if tx.send(Message::Text(json!({"type": "pong"}).to_string().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
