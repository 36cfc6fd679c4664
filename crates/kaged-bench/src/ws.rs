//! One fast Rust WebSocket client for both servers, so that differences are the servers'.
//! kaged speaks binary frames plus JSON control messages; terminado speaks JSON arrays
//! (`["stdin", …]`, `["stdout", …]`) in text frames.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use kaged_api::{ClientControl, ServerControl};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Kaged,
    Terminado,
}

#[derive(Debug)]
pub enum Event {
    Data(Bytes),
    /// kaged only: bytes `from..to` are no longer held for this viewer.
    Gap {
        from: u64,
        to: u64,
    },
    Exit,
}

pub struct Term {
    ws: Stream,
    proto: Proto,
    /// kaged: the offset of the first byte this viewer receives (from the server's hello).
    pub start_offset: u64,
    /// Output bytes received so far: `start_offset + received` is the next byte's offset.
    pub received: u64,
}

/// A kaged control message (a text frame), read as the wire type.
fn control(text: &str) -> Result<ServerControl> {
    serde_json::from_str(text).with_context(|| format!("bad control message {text}"))
}

impl Term {
    /// Opens the socket. For kaged, `hello` (`None`: the server's default start) is sent first
    /// and the server's hello awaited, as the web UI does.
    pub async fn connect(
        url: &str,
        headers: &[(String, String)],
        proto: Proto,
        hello: Option<u64>,
    ) -> Result<Term> {
        let mut req = url
            .into_client_request()
            .with_context(|| format!("bad WebSocket URL {url}"))?;
        for (k, v) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                k.parse().with_context(|| format!("bad header name {k}"))?;
            req.headers_mut()
                .insert(name, HeaderValue::from_str(v).context("bad header value")?);
        }
        // No Nagle: a one-byte keystroke must leave at once.
        let (ws, resp) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .with_context(|| format!("WebSocket upgrade at {}", redact(url)))?;
        if resp.status().as_u16() != 101 {
            bail!(
                "WebSocket upgrade at {} answered {}",
                redact(url),
                resp.status()
            );
        }
        let mut term = Term {
            ws,
            proto,
            start_offset: 0,
            received: 0,
        };
        if proto == Proto::Kaged {
            let hello = serde_json::to_string(&ClientControl::Hello {
                offset: hello,
                client: None,
                screen: None,
            })?;
            term.ws
                .send(Message::Text(hello.into()))
                .await
                .context("sending hello")?;
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(10), term.ws.next())
                    .await
                    .map_err(|_| anyhow!("no hello from kaged within 10 s"))?;
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let ServerControl::Hello { offset, .. } = control(&t)? {
                            term.start_offset = offset;
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e).context("waiting for hello"),
                    None => bail!("kaged closed the socket before hello"),
                }
            }
        }
        Ok(term)
    }

    /// kaged only: attaches asking for the screen (`hello{screen}`), and returns how long it
    /// took from opening the socket until the whole screen had arrived (the `screen` message
    /// and its frame), and the frame's size.
    pub async fn screen_time(
        url: &str,
        headers: &[(String, String)],
        cols: u16,
        rows: u16,
    ) -> Result<(Duration, usize)> {
        let t0 = std::time::Instant::now();
        let mut req = url
            .into_client_request()
            .with_context(|| format!("bad WebSocket URL {url}"))?;
        for (k, v) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                k.parse().with_context(|| format!("bad header name {k}"))?;
            req.headers_mut()
                .insert(name, HeaderValue::from_str(v).context("bad header value")?);
        }
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .with_context(|| format!("WebSocket upgrade at {}", redact(url)))?;
        let hello = serde_json::to_string(&ClientControl::Hello {
            offset: None,
            client: None,
            screen: Some(kaged_api::ScreenSize { cols, rows }),
        })?;
        ws.send(Message::Text(hello.into()))
            .await
            .context("sending hello")?;
        let mut announced = false;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .map_err(|_| anyhow!("no screen from kaged within 30 s"))?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    if let ServerControl::Screen { .. } = control(&t)? {
                        announced = true;
                    }
                }
                Some(Ok(Message::Binary(b))) if announced => {
                    let took = t0.elapsed();
                    let _ = ws.close(None).await;
                    return Ok((took, b.len()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("waiting for the screen"),
                None => bail!("kaged closed the socket before the screen"),
            }
        }
    }

    /// Terminal input.
    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        let msg = match self.proto {
            Proto::Kaged => Message::Binary(Bytes::copy_from_slice(data)),
            Proto::Terminado => {
                let text = std::str::from_utf8(data).context("terminado input must be UTF-8")?;
                Message::Text(serde_json::json!(["stdin", text]).to_string().into())
            }
        };
        self.ws.send(msg).await.context("sending input")
    }

    /// The next event; `Ok(None)` when the socket closed.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            let Some(msg) = self.ws.next().await else {
                return Ok(None);
            };
            let msg = match msg {
                Ok(m) => m,
                Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed) => return Ok(None),
                Err(e) => return Err(e).context("reading the WebSocket"),
            };
            match (self.proto, msg) {
                (Proto::Kaged, Message::Binary(b)) => {
                    self.received += b.len() as u64;
                    return Ok(Some(Event::Data(b)));
                }
                (Proto::Kaged, Message::Text(t)) => match control(&t)? {
                    ServerControl::Gap { from, to } => return Ok(Some(Event::Gap { from, to })),
                    ServerControl::Exit { .. } => return Ok(Some(Event::Exit)),
                    ServerControl::Error { message } => {
                        bail!("kaged did not understand a control message: {message}")
                    }
                    ServerControl::InputRefused { message, .. } => {
                        bail!("kaged refused input: {message}")
                    }
                    // Screens and sizes go only to viewers that asked for screens.
                    ServerControl::Hello { .. }
                    | ServerControl::Ack { .. }
                    | ServerControl::Screen { .. }
                    | ServerControl::Size { .. }
                    | ServerControl::Pong => {}
                },
                (Proto::Terminado, Message::Text(t)) => {
                    let (kind, value): (String, serde_json::Value) =
                        serde_json::from_str(&t).context("bad terminado frame")?;
                    match (kind.as_str(), value) {
                        ("stdout", serde_json::Value::String(s)) => {
                            self.received += s.len() as u64;
                            return Ok(Some(Event::Data(Bytes::from(s.into_bytes()))));
                        }
                        ("disconnect", _) => return Ok(Some(Event::Exit)),
                        _ => {}
                    }
                }
                (_, Message::Close(_)) => return Ok(None),
                _ => {}
            }
        }
    }

    /// `next` with a deadline; a timeout is an error that names what was awaited.
    pub async fn next_within(&mut self, limit: Duration, what: &str) -> Result<Option<Event>> {
        tokio::time::timeout(limit, self.next())
            .await
            .map_err(|_| anyhow!("timed out after {limit:?} waiting for {what}"))?
    }

    /// Waits for the first output bytes (a prompt).
    pub async fn first_data(&mut self, limit: Duration) -> Result<()> {
        loop {
            match self.next_within(limit, "the first output").await? {
                Some(Event::Data(b)) if !b.is_empty() => return Ok(()),
                Some(Event::Exit) | None => bail!("the terminal ended before printing anything"),
                Some(_) => {}
            }
        }
    }

    /// Reads until nothing arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(ev) = tokio::time::timeout(quiet, self.next()).await {
            match ev? {
                Some(Event::Data(b)) => out.extend_from_slice(&b),
                Some(Event::Gap { .. }) => {}
                Some(Event::Exit) | None => break,
            }
        }
        Ok(out)
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// URLs carry tokens; error messages must not.
fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}
