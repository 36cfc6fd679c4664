//! `kaged ps`: sessions, with state, project, what runs, owner and age.

use std::process::ExitCode;

use anyhow::Result;
use kaged_api::{SessionList, SessionState, Timestamp};

use crate::cli::PsArgs;
use crate::client::{Client, layout};
use crate::cmd::sessions::{age, short_id, what};

pub fn run(mode: Option<&str>, args: PsArgs) -> Result<ExitCode> {
    let client = Client::for_layout(&layout(mode)?)?;
    let path = match &args.project {
        Some(p) => format!("/api/v1/projects/{p}/sessions"),
        None => "/api/v1/sessions".to_owned(),
    };
    let mut list: SessionList = client.get(&path)?;
    if !args.all {
        list.sessions.retain(|s| s.state != SessionState::Exited);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Timestamp::now();
    println!(
        "{:<8}  {:<18}  {:<16}  {:<12}  {:>5}  WHAT",
        "ID", "STATE", "PROJECT", "OWNER", "AGE"
    );
    for s in &list.sessions {
        let state = match (s.state, s.exit_code, s.signal) {
            (SessionState::Exited, Some(code), _) => format!("exited ({code})"),
            (SessionState::Exited, None, Some(sig)) => format!("exited (signal {sig})"),
            (SessionState::Exited, None, None) => "exited".to_owned(),
            (SessionState::Running, ..) => "running".to_owned(),
            (SessionState::Starting, ..) => "starting".to_owned(),
        };
        let caged = if s.origin.cage.is_caged() {
            ""
        } else {
            " [uncaged]"
        };
        println!(
            "{:<8}  {:<18}  {:<16}  {:<12}  {:>5}  {}{caged}",
            short_id(&s.id),
            state,
            s.project_id,
            s.actor,
            age(s.started_at, now),
            what(s)
        );
    }
    if list.sessions.is_empty() && !args.all {
        eprintln!("(no running sessions; `kaged ps -a` also lists those that ended)");
    }
    Ok(ExitCode::SUCCESS)
}
