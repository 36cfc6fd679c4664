//! `kaged status`: is the daemon running, in which mode and why, and where is my data?
//! Without a daemon it still prints the paths it would use. Exit code 3 means "not running",
//! as with `systemctl status`.

use std::process::ExitCode;

use anyhow::Result;
use kaged_deploy::Layout;
use serde_json::{Value, json};

use crate::cli::StatusArgs;
use crate::client::{Client, Endpoint, layout};

pub fn run(mode: Option<&str>, args: StatusArgs) -> Result<ExitCode> {
    let layout = layout(mode)?;
    let Some(endpoint) = Endpoint::read(&layout) else {
        let value = offline(&layout);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            println!("kaged is not running.");
            print_human(&value);
        }
        return Ok(ExitCode::from(3));
    };
    let client = Client::connect(&layout, endpoint)?;
    let mut status = client.get("/api/v1/status")?;
    status["running"] = json!(true);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        println!(
            "kaged is running: pid {}, up {}s, version {}",
            status["pid"],
            status["uptime_secs"],
            status["version"].as_str().unwrap_or("?")
        );
        print_human(&status);
    }
    Ok(ExitCode::SUCCESS)
}

fn offline(layout: &Layout) -> Value {
    json!({
        "running": false,
        "mode": layout.mode,
        "mode_reason": layout.reason.to_string(),
        "paths": {
            "state": layout.state_dir,
            "config": layout.config_file,
            "config_loaded": layout.config_file.exists(),
            "local": layout.local_file,
            "runtime": layout.runtime_dir,
            "runtime_note": layout.runtime_note,
            "database": layout.database,
            "audit": format!("{} (table audit_events)", layout.database.display()),
            "sessions": layout.sessions_dir,
        },
        "default_bind": layout.mode.default_bind().to_string(),
        "default_auth_mode": layout.mode.default_auth(),
    })
}

fn print_human(v: &Value) {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    println!(
        "  mode:      {} (reason: {})",
        s(&v["mode"]),
        s(&v["mode_reason"])
    );
    if v["running"] == json!(true) {
        println!("  url:       {}", s(&v["url"]));
        println!("  bind:      {}", s(&v["bind"]));
        println!("  auth:      {}", s(&v["auth_mode"]));
        let sandbox = &v["sandbox"];
        let enabled = sandbox["enabled"] == json!(true);
        println!(
            "  sandbox:   {}",
            if enabled {
                "enabled (bubblewrap cages)"
            } else {
                "DISABLED (--no-sandbox)"
            }
        );
        if let Some(bwrap) = sandbox.get("bwrap") {
            println!(
                "  bwrap:     {} {}",
                s(&bwrap["path"]),
                s(&bwrap["version"])
            );
        }
        let cg = &sandbox["cgroups"];
        if cg["status"] == json!("available") {
            println!(
                "  cgroups:   memory/pids/cpu limits enforced via {}",
                s(&cg["systemd_run"])
            );
        } else {
            println!("  cgroups:   not enforced: {}", s(&cg["reason"]));
        }
        if let Some(w) = v["warnings"].as_array().filter(|w| !w.is_empty()) {
            let w: Vec<_> = w.iter().map(s).collect();
            println!("  warnings:  {}", w.join(", "));
        }
    } else {
        println!(
            "  would bind {} with auth {}",
            s(&v["default_bind"]),
            s(&v["default_auth_mode"])
        );
    }
    let p = &v["paths"];
    println!("  where's my data?");
    println!("    state:    {}", s(&p["state"]));
    let loaded = if p["config_loaded"] == json!(true) {
        ""
    } else {
        " (not present; defaults apply)"
    };
    println!("    config:   {}{loaded}", s(&p["config"]));
    println!("    local:    {}", s(&p["local"]));
    println!("    runtime:  {}", s(&p["runtime"]));
    if !p["runtime_note"].is_null() {
        println!("              note: {}", s(&p["runtime_note"]));
    }
    println!("    database: {}", s(&p["database"]));
    println!("    audit:    {}", s(&p["audit"]));
    println!("    sessions: {}", s(&p["sessions"]));
}
