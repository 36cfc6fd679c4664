//! `kaged logs`: a session's transcript, every byte it wrote, from disk; `-f` then follows the
//! live output from where the transcript ended until the session ends.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use kaged_api::{ServerControl, SessionState};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::LogsArgs;
use crate::client::{Client, layout};
use crate::cmd::attach::{connect, upgrade_request};
use crate::cmd::sessions::resolve;

pub fn run(mode: Option<&str>, args: LogsArgs) -> Result<ExitCode> {
    let mut client = Client::for_layout(&layout(mode)?)?;
    let session = resolve(&client, &args.id)?;
    let mut out = std::io::stdout().lock();
    let mut offset = 0u64;
    loop {
        let path = format!("/api/v1/sessions/{}/transcript?offset={offset}", session.id);
        let (bytes, _) = client.get_bytes(&path)?;
        if bytes.is_empty() {
            break;
        }
        out.write_all(&bytes)?;
        offset += bytes.len() as u64;
    }
    out.flush()?;
    if args.follow && session.state != SessionState::Exited {
        let request = upgrade_request(&mut client, &session.id)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(follow(request, offset, &mut out))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Read-only: never sends a keystroke.
async fn follow(
    request: tokio_tungstenite::tungstenite::http::Request<()>,
    from: u64,
    out: &mut impl Write,
) -> Result<()> {
    let mut ws = connect(request, Some(from)).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Binary(bytes) => {
                out.write_all(&bytes)?;
                out.flush()?;
            }
            Message::Text(text) => match serde_json::from_str(&text) {
                Ok(ServerControl::Exit { .. }) => return Ok(()),
                Ok(ServerControl::Gap { from, to }) => {
                    eprintln!("[kaged: {} bytes no longer held here]", to - from);
                }
                _ => {}
            },
            Message::Close(_) => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}
