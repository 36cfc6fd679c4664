//! `kaged status`: is the daemon running, in which mode and why, and where is my data?
//! Without a daemon it still prints the paths it would use. Exit code 3 means "not running",
//! as with `systemctl status`.

use std::process::ExitCode;

use anyhow::Result;
use kaged_api::{AuthMode, CgroupSupport, Mode, Paths, Status};
use kaged_daemon::Endpoint;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::client::{Client, layout};

/// `--json` with a daemon: the daemon's status, marked running.
#[derive(Serialize)]
struct Running<'a> {
    running: bool,
    #[serde(flatten)]
    status: &'a Status,
}

/// `--json` without one: the mode, the paths, and what a start would do.
#[derive(Serialize)]
struct Offline {
    running: bool,
    mode: Mode,
    mode_reason: String,
    paths: Paths,
    default_bind: String,
    default_auth_mode: AuthMode,
}

pub fn run(mode: Option<&str>, args: StatusArgs) -> Result<ExitCode> {
    let layout = layout(mode)?;
    let Some(endpoint) = Endpoint::read(&layout) else {
        let offline = Offline {
            running: false,
            mode: layout.mode,
            mode_reason: layout.reason.to_string(),
            paths: kaged_daemon::paths(&layout, layout.config_file.exists()),
            default_bind: kaged_deploy::default_bind(layout.mode).to_string(),
            default_auth_mode: AuthMode::default_for(layout.mode),
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&offline)?);
        } else {
            println!("kaged is not running.");
            println!(
                "  mode:      {} (reason: {})",
                offline.mode, offline.mode_reason
            );
            println!(
                "  would bind {} with auth {}",
                offline.default_bind, offline.default_auth_mode
            );
            print_paths(&offline.paths);
        }
        return Ok(ExitCode::from(3));
    };
    let client = Client::connect(&layout, endpoint)?;
    let status: Status = client.get("/api/v1/status")?;
    if args.json {
        let running = Running {
            running: true,
            status: &status,
        };
        println!("{}", serde_json::to_string_pretty(&running)?);
    } else {
        print_running(&status);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_running(s: &Status) {
    println!(
        "kaged is running: pid {}, up {}s, version {}",
        s.pid, s.uptime_secs, s.version
    );
    println!("  mode:      {} (reason: {})", s.mode, s.mode_reason);
    println!("  url:       {}", s.url);
    println!("  bind:      {}", s.bind);
    println!("  auth:      {}", s.auth_mode);
    println!(
        "  sandbox:   {}",
        if s.sandbox.enabled {
            "enabled (bubblewrap cages)"
        } else {
            "DISABLED (--no-sandbox)"
        }
    );
    if let Some(bwrap) = &s.sandbox.bwrap {
        println!("  bwrap:     {} {}", bwrap.path.display(), bwrap.version);
    }
    match &s.sandbox.cgroups {
        CgroupSupport::Delegated { cgroup } => println!(
            "  cgroups:   memory/pids/cpu limits enforced in the delegated cgroup {}",
            cgroup.display()
        ),
        CgroupSupport::SystemdScope { systemd_run } => println!(
            "  cgroups:   memory/pids/cpu limits enforced via {} --user --scope",
            systemd_run.display()
        ),
        CgroupSupport::Unavailable { reason } => println!("  cgroups:   not enforced: {reason}"),
    }
    println!(
        "  sessions:  {} running, {} adopted from their holders (on stop: {})",
        s.sessions.running,
        s.sessions.adopted.len(),
        s.settings.sessions.on_stop.value
    );
    for a in &s.sessions.adopted {
        let pid = a.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let at = a.adopted_at.map(|t| t.to_string()).unwrap_or_default();
        println!(
            "    adopted  {}  {}  pid {pid}  since {at}  {}",
            &a.id[..8.min(a.id.len())],
            a.project_id,
            a.origin.command.join(" ")
        );
    }
    if !s.warnings.is_empty() {
        let w: Vec<&str> = s.warnings.iter().map(|w| w.as_str()).collect();
        println!("  warnings:  {}", w.join(", "));
    }
    print_paths(&s.paths);
}

fn print_paths(p: &Paths) {
    println!("  where's my data?");
    println!("    state:    {}", p.state.display());
    let loaded = if p.config_loaded {
        ""
    } else {
        " (not present; defaults apply)"
    };
    println!("    config:   {}{loaded}", p.config.display());
    println!("    local:    {}", p.local.display());
    println!("    runtime:  {}", p.runtime.display());
    if let Some(note) = &p.runtime_note {
        println!("              note: {note}");
    }
    println!("    database: {}", p.database.display());
    println!("    audit:    {}", p.audit);
    println!("    sessions: {}", p.sessions.display());
}
