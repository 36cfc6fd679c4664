//! `GET /api/v1/sessions/{id}/agent`: an agent run's own stream (ADR-0007's agent-output
//! stream), a WebSocket of [`DaemonEvent`]s as JSON text frames: the state now, then
//! `agent.state` changes and `run.ended`, after which the server closes it.

use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use kaged_api::DaemonEvent;
use kaged_auth::Authenticated;
use kaged_daemon::AgentRun;
use tokio::sync::broadcast::error::RecvError;

use crate::Http;
use crate::error::{ApiError, upgrade};

pub(crate) async fn agent(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Who may see the run is answered before anything about the upgrade itself.
    let run = match http.daemon.agent_run(&auth.identity, &id) {
        Ok(run) => run,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let ws = match upgrade(ws) {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    // Clients only send pings; see pty.rs for why the buffer is small.
    ws.max_message_size(64 << 10)
        .read_buffer_size(4 << 10)
        .on_upgrade(move |socket| stream(socket, run))
}

async fn send(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    event: &DaemonEvent,
) -> bool {
    match serde_json::to_string(event) {
        Ok(text) => tx.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => true,
    }
}

async fn stream(socket: WebSocket, mut run: AgentRun) {
    let (mut tx, mut inbound) = socket.split();
    for event in std::mem::take(&mut run.now) {
        let last = matches!(event, DaemonEvent::RunEnded { .. });
        if !send(&mut tx, &event).await || last {
            let _ = tx.close().await;
            return;
        }
    }
    loop {
        let event = tokio::select! {
            ev = run.events.recv() => match ev {
                Ok(ev) if run.carries(&ev) => ev,
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => DaemonEvent::Gap { missed },
                Err(RecvError::Closed) => break,
            },
            msg = inbound.next() => match msg {
                Some(Ok(Message::Text(t))) if t.contains("\"ping\"") => DaemonEvent::Pong,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        let last = matches!(event, DaemonEvent::RunEnded { .. });
        if !send(&mut tx, &event).await || last {
            break;
        }
    }
    let _ = tx.close().await;
}
