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
use kaged_api::{ClientControl, INPUT_SEQ_BYTES, ServerControl, check_client_id};
use kaged_auth::Authenticated;
use kaged_daemon::{SeqInput, Terminal};
use kaged_session::{Viewer, ViewerEvent};

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
    let (from, client, screen) = match tokio::time::timeout(HELLO_WAIT, rx.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(&t) {
            Ok(ClientControl::Hello {
                offset,
                client,
                screen,
            }) => (offset, client, screen),
            _ => (None, None, None),
        },
        Ok(Some(Ok(Message::Binary(b)))) => {
            terminal.input(&b).await;
            (None, None, None)
        }
        _ => (None, None, None),
    };
    let screens = screen.is_some();
    if let Some(c) = &client
        && let Err(message) = check_client_id(c)
    {
        send(&mut tx, &ServerControl::Error { message }).await;
        let _ = tx.close().await;
        return;
    }
    let input_seq = match &client {
        Some(c) => Some(terminal.input_seq_of(c).await),
        None => None,
    };
    let mut attached = terminal.attach(&auth.identity, from, screen).await;
    let hello = ServerControl::Hello {
        offset: attached.offset,
        session: terminal.id().to_owned(),
        input_seq,
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
                    Some(ViewerEvent::Screen(snapshot)) => {
                        let head = ServerControl::Screen {
                            offset: snapshot.offset,
                            cols: snapshot.cols,
                            rows: snapshot.rows,
                        };
                        send(&mut tx, &head).await
                            && tx.send(Message::Binary(snapshot.bytes.into())).await.is_ok()
                    }
                    Some(ViewerEvent::Size { cols, rows }) => {
                        send(&mut tx, &ServerControl::Size { cols, rows }).await
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
            msg = rx.next() => {
                let answer = match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if screens {
                            terminal.viewer_active(&mut attached.viewer);
                        }
                        match &client {
                            None => {
                                terminal.input(&b).await;
                                None
                            }
                            Some(c) => sequenced(&terminal, c, &b).await,
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        control(&terminal, &mut attached.viewer, screens, &t)
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => None,
                };
                if let Some(a) = answer
                    && !send(&mut tx, &a).await
                {
                    return;
                }
            }
        }
    }
}

/// One input frame of a sequenced client: its 8-byte sequence number, then the bytes.
async fn sequenced(terminal: &Terminal, client: &str, frame: &[u8]) -> Option<ServerControl> {
    let Some((head, data)) = frame.split_first_chunk::<INPUT_SEQ_BYTES>() else {
        return Some(ServerControl::Error {
            message: format!(
                "an input frame of {} bytes has no room for its {INPUT_SEQ_BYTES}-byte \
                 sequence number; this connection said hello with a client id",
                frame.len()
            ),
        });
    };
    let seq = u64::from_be_bytes(*head);
    match terminal.input_seq(client, seq, data).await {
        SeqInput::Applied => Some(ServerControl::Ack { seq }),
        SeqInput::ReadOnly => Some(ServerControl::InputRefused {
            seq,
            message: "this session is shared with you read-only; ask its owner for write access"
                .to_owned(),
        }),
        SeqInput::OutOfOrder { expected } => Some(ServerControl::InputRefused {
            seq,
            message: format!("frame {expected} comes first; resend from {expected}"),
        }),
        // The exit is on its way to this viewer.
        SeqInput::Ended => None,
    }
}

fn control(
    terminal: &Terminal,
    viewer: &mut Viewer,
    screens: bool,
    text: &str,
) -> Option<ServerControl> {
    match serde_json::from_str(text) {
        // A screen viewer's size goes through the size rule; a raw viewer resizes directly.
        Ok(ClientControl::Resize { cols, rows }) if screens => {
            terminal.viewer_size(viewer, cols, rows);
            None
        }
        Ok(ClientControl::Resize { cols, rows }) => {
            terminal.resize(cols, rows);
            None
        }
        Ok(ClientControl::Ping) => Some(ServerControl::Pong),
        Ok(ClientControl::Hello { .. }) => None,
        Err(e) => Some(ServerControl::Error {
            message: format!("bad control message: {e}"),
        }),
    }
}
