//! `GET /api/v1/sessions/{id}/pty`: the PTY broker over WebSocket (design §6). Binary frames
//! carry terminal bytes both ways; text frames carry [`ClientControl`] and [`ServerControl`].

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use kaged_api::{ClientControl, ServerControl};
use kaged_auth::Authenticated;
use kaged_daemon::Terminal;
use kaged_session::ViewerEvent;

use crate::Http;
use crate::error::{ApiError, upgrade};

/// How long a new viewer may take to say where it wants to start.
const HELLO_WAIT: Duration = Duration::from_secs(5);

pub(crate) async fn pty(
    State(http): State<Arc<Http>>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let terminal = match http.daemon.terminal(&auth.identity, &id) {
        Ok(t) => t,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let ws = match upgrade(ws) {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    // Viewers send keystrokes, not bulk data: a 4 KiB read buffer instead of the default
    // 128 KiB keeps an idle attached viewer cheap (1000 attached sessions).
    ws.max_message_size(1 << 20)
        .read_buffer_size(4 << 10)
        .on_upgrade(move |socket| serve(auth, terminal, socket))
}

async fn send(tx: &mut SplitSink<WebSocket, Message>, control: &ServerControl) -> bool {
    match serde_json::to_string(control) {
        Ok(text) => tx.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn serve(auth: Authenticated, terminal: Terminal, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    // The client says where it wants to start; a client that says nothing gets the scrollback.
    let from = match tokio::time::timeout(HELLO_WAIT, rx.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(&t) {
            Ok(ClientControl::Hello { offset }) => offset,
            _ => None,
        },
        Ok(Some(Ok(Message::Binary(b)))) => {
            terminal.input(&b).await;
            None
        }
        _ => None,
    };
    let mut attached = terminal.attach(&auth.identity, from).await;
    let hello = ServerControl::Hello {
        offset: attached.offset,
        session: terminal.id().to_owned(),
    };
    if !send(&mut tx, &hello).await {
        return;
    }
    loop {
        tokio::select! {
            ev = attached.viewer.next() => {
                let sent = match ev {
                    Some(ViewerEvent::Data { bytes, .. }) => {
                        tx.send(Message::Binary(bytes)).await.is_ok()
                    }
                    Some(ViewerEvent::Gap { from, to }) => {
                        send(&mut tx, &ServerControl::Gap { from, to }).await
                    }
                    Some(ViewerEvent::Exit { code, signal }) => {
                        send(&mut tx, &ServerControl::Exit { code, signal }).await;
                        let _ = tx.close().await;
                        return;
                    }
                    None => return,
                };
                if !sent {
                    return;
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => terminal.input(&b).await,
                Some(Ok(Message::Text(t))) => {
                    let answer = match serde_json::from_str(&t) {
                        Ok(ClientControl::Resize { cols, rows }) => {
                            terminal.resize(cols, rows);
                            None
                        }
                        Ok(ClientControl::Ping) => Some(ServerControl::Pong),
                        Ok(ClientControl::Hello { .. }) => None,
                        Err(e) => Some(ServerControl::Error {
                            message: format!("bad control message: {e}"),
                        }),
                    };
                    if let Some(a) = answer
                        && !send(&mut tx, &a).await
                    {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
