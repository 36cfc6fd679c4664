//! `kaged attach`: this terminal on a session's terminal, over the same WebSocket and gate as
//! the browser. Ctrl-] detaches (as in telnet and virsh); the session runs on.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use kaged_api::{ClientControl, ServerControl, SessionState};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Request};

use crate::cli::AttachArgs;
use crate::client::{Client, layout};
use crate::cmd::sessions::{resolve, short_id};
use crate::cmd::term::{RawMode, size};

/// Ctrl-]: rare in shells and agent TUIs, and what telnet and virsh use.
const DETACH: u8 = 0x1d;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How an attach ended.
enum Outcome {
    Detached,
    Ended {
        code: Option<i32>,
        signal: Option<i32>,
    },
    Closed,
}

pub fn run(mode: Option<&str>, args: AttachArgs) -> Result<ExitCode> {
    let mut client = Client::for_layout(&layout(mode)?)?;
    let session = resolve(&client, &args.id)?;
    let short = short_id(&session.id).to_owned();
    if session.state == SessionState::Exited {
        bail!("session {short} has ended; `kaged logs {short}` prints its output");
    }
    let request = upgrade_request(&mut client, &session.id)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    eprintln!("[attached to {short}; detach with Ctrl-]]\r");
    let outcome = runtime.block_on(attach(request))?;
    match outcome {
        Outcome::Detached => {
            eprintln!("\r\n[detached from {short}; `kaged attach {short}` comes back]\r")
        }
        Outcome::Ended { code, signal } => {
            let how = match (code, signal) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(s)) => format!("signal {s}"),
                (None, None) => "no exit status".to_owned(),
            };
            eprintln!("\r\n[session {short} ended: {how}]\r");
        }
        Outcome::Closed => eprintln!("\r\n[the daemon closed the connection]\r"),
    }
    // The stdin reader thread may still be blocked in read(); leaving now ends it.
    runtime.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

/// The WebSocket upgrade for a session's PTY, with the CLI's credentials and CSRF token.
pub(crate) fn upgrade_request(client: &mut Client, id: &str) -> Result<Request<()>> {
    let mut request = client
        .ws_url(&format!("/api/v1/sessions/{id}/pty"))
        .into_client_request()?;
    for (name, value) in client.upgrade_headers()? {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(&value)?,
        );
    }
    Ok(request)
}

/// Connects and says where to start.
pub(crate) async fn connect(request: Request<()>, offset: Option<u64>) -> Result<Socket> {
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("cannot open the session's terminal")?;
    send(
        &mut ws,
        &ClientControl::Hello {
            offset,
            client: None,
            screen: None,
        },
    )
    .await?;
    Ok(ws)
}

async fn send(ws: &mut Socket, control: &ClientControl) -> Result<()> {
    let text = serde_json::to_string(control)?;
    ws.send(Message::Text(text.into())).await?;
    Ok(())
}

async fn attach(request: Request<()>) -> Result<Outcome> {
    let mut ws = connect(request, None).await?;
    // The most recently active viewer sets the size.
    if let Some((cols, rows)) = size() {
        send(&mut ws, &ClientControl::Resize { cols, rows }).await?;
    }
    let _raw = RawMode::enter().context("cannot put the terminal in raw mode")?;
    let mut keys = stdin_reader();
    let mut winch = signal(SignalKind::window_change())?;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    out.write_all(&bytes)?;
                    out.flush()?;
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(ServerControl::Exit { code, signal }) = serde_json::from_str(&text) {
                        return Ok(Outcome::Ended { code, signal });
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(Outcome::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
            typed = keys.recv() => {
                let Some(bytes) = typed else {
                    return Ok(Outcome::Detached);
                };
                let (send_now, detach) = match bytes.iter().position(|b| *b == DETACH) {
                    Some(at) => (&bytes[..at], true),
                    None => (&bytes[..], false),
                };
                if !send_now.is_empty() {
                    ws.send(Message::Binary(send_now.to_vec().into())).await?;
                }
                if detach {
                    let _ = ws.close(None).await;
                    return Ok(Outcome::Detached);
                }
            }
            _ = winch.recv() => {
                if let Some((cols, rows)) = size() {
                    send(&mut ws, &ClientControl::Resize { cols, rows }).await?;
                }
            }
        }
    }
}

/// Keystrokes from a plain thread: tokio's stdin would keep the runtime waiting on a blocked
/// read at exit, and making the shared terminal non-blocking would break the parent shell.
fn stdin_reader() -> tokio::sync::mpsc::UnboundedReceiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}
