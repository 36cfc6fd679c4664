//! `kaged stop`: ends a session (HUP, then TERM, then KILL to its process group).

use std::process::ExitCode;

use anyhow::Result;
use kaged_api::SessionInfo;

use crate::cli::StopArgs;
use crate::client::{Client, layout};
use crate::cmd::sessions::{resolve, short_id};

pub fn run(mode: Option<&str>, args: StopArgs) -> Result<ExitCode> {
    let mut client = Client::for_layout(&layout(mode)?)?;
    let session = resolve(&client, &args.id)?;
    let ended: SessionInfo = client.delete(&format!("/api/v1/sessions/{}", session.id))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ended)?);
    } else {
        println!(
            "ending session {} (HUP, then TERM, then KILL)",
            short_id(&ended.id)
        );
    }
    Ok(ExitCode::SUCCESS)
}
