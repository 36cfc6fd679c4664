//! `kaged run`: starts a session in a loaded project, through the same API as the UI.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kaged_api::{LoadProject, ProjectView, SessionInfo, StartSession};

use crate::cli::{AttachArgs, RunArgs};
use crate::client::{Client, layout};
use crate::cmd::sessions::{short_id, what};

pub fn run(mode: Option<&str>, args: RunArgs) -> Result<ExitCode> {
    let mut client = Client::for_layout(&layout(mode)?)?;
    let project = project(&mut client, &args.project)?;
    let mut req = target(&project, args.target.as_deref(), args.argv)?;
    if let Some((cols, rows)) = crate::cmd::term::size() {
        req.cols = Some(cols);
        req.rows = Some(rows);
    }
    let started: SessionInfo =
        client.post(&format!("/api/v1/projects/{}/sessions", project.id), &req)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&started)?);
    } else {
        println!("{}", started.id);
        eprintln!(
            "started {} in {} ({}); `kaged attach {}` to type into it",
            what(&started),
            started.project_id,
            if started.origin.cage.is_caged() {
                "caged"
            } else {
                "UNCAGED"
            },
            short_id(&started.id)
        );
    }
    if args.attach {
        let attach = AttachArgs { id: started.id };
        return crate::cmd::attach::run(mode, attach);
    }
    Ok(ExitCode::SUCCESS)
}

/// A project id, or a directory (anything with a `/`, or `.`), which is loaded first, as the
/// UI's "load by path" does; loading an already loaded directory reloads it.
fn project(client: &mut Client, arg: &str) -> Result<ProjectView> {
    if !(arg.contains('/') || arg == ".") {
        return client.get(&format!("/api/v1/projects/{arg}"));
    }
    let path = std::fs::canonicalize(arg).with_context(|| format!("project directory {arg}"))?;
    client.post("/api/v1/projects", &LoadProject { path })
}

/// `shell`, a declared agent or task by name (`agent:`/`task:` when a name is both), or an
/// argv after `--`.
fn target(project: &ProjectView, target: Option<&str>, argv: Vec<String>) -> Result<StartSession> {
    let mut req = StartSession::default();
    if !argv.is_empty() {
        if target.is_some_and(|t| t != "shell") {
            bail!("give either a target or `-- ARGV`, not both");
        }
        req.argv = Some(argv);
        return Ok(req);
    }
    let name = match target {
        None | Some("shell") => return Ok(req),
        Some(t) => t,
    };
    let agent = project.agents.iter().any(|a| a.name == name);
    let task = project.tasks.iter().any(|t| t.name == name);
    match (name.split_once(':'), agent, task) {
        (Some(("agent", n)), ..) => req.agent = Some(n.to_owned()),
        (Some(("task", n)), ..) => req.task = Some(n.to_owned()),
        (_, true, true) => bail!(
            "{name:?} is both an agent and a task of {}; say `agent:{name}` or `task:{name}`",
            project.id
        ),
        (_, true, false) => req.agent = Some(name.to_owned()),
        (_, false, true) => req.task = Some(name.to_owned()),
        (_, false, false) => {
            let agents: Vec<&str> = project.agents.iter().map(|a| a.name.as_str()).collect();
            let tasks: Vec<&str> = project.tasks.iter().map(|t| t.name.as_str()).collect();
            bail!(
                "{} has no agent or task {name:?}; agents: [{}], tasks: [{}], or `shell`",
                project.id,
                agents.join(", "),
                tasks.join(", ")
            )
        }
    }
    Ok(req)
}
