//! `kaged dsl validate [DIR]`: the same checks as loading the project into a daemon, offline.
//! Exit 0: valid; 1: problems found; 2: usage error (clap's own exit code for bad flags, and
//! ours for a directory that does not exist).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

pub fn validate(dir: Option<PathBuf>, as_json: bool) -> Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        eprintln!(
            "kaged: error: {} is not a directory; give the project root (the directory that holds .kaged/)",
            dir.display()
        );
        return Ok(ExitCode::from(2));
    }
    match kaged_dsl::load_project(&dir) {
        Ok(project) => {
            if as_json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"valid": true, "project": project.project, "diagnostics": []})
                    )?
                );
            } else {
                println!(
                    "{}: valid project {:?} ({} agent(s), {} task(s))",
                    dir.join(".kaged/project.yaml").display(),
                    project.project,
                    project.agents().len(),
                    project.tasks.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            if as_json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"valid": false, "diagnostics": diags}))?
                );
            } else {
                for d in diags.iter() {
                    println!("{d}");
                }
                eprintln!("{} problem(s) found", diags.len());
            }
            Ok(ExitCode::from(1))
        }
    }
}
