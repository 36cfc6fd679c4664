//! Turns "start a session in project P" into a spawn: what to run (the user's shell, a declared
//! agent, a declared task or an explicit argv), in which cage (the DSL policy compiled by
//! `kaged-sandbox`), with which environment. Policy comes from the project file; this module
//! only resolves and compiles it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use kaged_dsl::{Cage, CagePolicy};
use kaged_session::SpawnSpec;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, Code};
use crate::projects::LoadedProject;

const MAX_ARGS: usize = 256;
const MAX_ARGV_BYTES: usize = 64 * 1024;
const MAX_DIM: u16 = 1000;

/// The body of `POST /api/v1/projects/{id}/sessions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// An explicit argv; default: the operator's login shell.
    pub argv: Option<Vec<String>>,
    /// A declared agent by dotted name (`primary`, `primary.reviewer`).
    pub agent: Option<String>,
    /// A declared task by name.
    pub task: Option<String>,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    /// A cage policy for an explicit argv or shell (same shape as the DSL's `cage:`).
    pub cage: Option<CagePolicy>,
    /// Extra environment variable names to allowlist into the cage.
    pub env: Option<Vec<String>>,
}

/// Host facts captured once at start-up; nothing here reads the environment later.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub sandbox_enabled: bool,
    /// The operator's login shell, the default argv.
    pub shell: String,
    pub home: PathBuf,
    /// The daemon's environment minus `KAGED_*`: candidates for allowlisted names.
    pub env: Vec<(String, String)>,
    /// Never visible in a cage: runtime dir, state dir, config dir.
    pub deny: Vec<PathBuf>,
    /// Persistent cage scratch lives in `<scratch_root>/<project id>`.
    pub scratch_root: PathBuf,
}

/// What a request resolved to, before compiling.
#[derive(Debug)]
pub struct Plan {
    pub kind: &'static str,
    pub name: Option<String>,
    pub argv: Vec<String>,
    /// `None`: run uncaged (`cage: disabled` in the DSL, or the daemon's `--no-sandbox`).
    pub cage: Option<CagePolicy>,
    pub task_env: BTreeMap<String, String>,
    pub cols: u16,
    pub rows: u16,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(Code::ValidationFailed, msg)
}

pub fn plan(
    project: &LoadedProject,
    req: SessionRequest,
    facts: &HostFacts,
) -> Result<Plan, ApiError> {
    let cols = req.cols.unwrap_or(80);
    let rows = req.rows.unwrap_or(24);
    if !(1..=MAX_DIM).contains(&cols) || !(1..=MAX_DIM).contains(&rows) {
        return Err(bad(format!(
            "cols={cols} rows={rows}: both must be between 1 and {MAX_DIM}"
        )));
    }
    let chosen = [req.argv.is_some(), req.agent.is_some(), req.task.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen > 1 {
        return Err(bad("give at most one of `argv`, `agent` and `task`"));
    }
    let project_cage = || match project.project.primary.as_ref().map(|p| &p.cage) {
        Some(Cage::Policy(p)) => p.clone(),
        _ => CagePolicy::default(),
    };
    let (kind, name, argv, cage, task_env) = if let Some(agent) = req.agent {
        let (_, spec) = project
            .project
            .agents()
            .into_iter()
            .find(|(n, _)| *n == agent)
            .ok_or_else(|| {
                ApiError::not_found("agent", &agent).with_details(json!({"project": project.id}))
            })?;
        let cage = declared_cage("agent", &spec.cage, req.cage.is_some())?;
        (
            "agent",
            Some(agent),
            spec.command.clone(),
            cage,
            BTreeMap::new(),
        )
    } else if let Some(task) = req.task {
        let t = project.project.tasks.get(&task).ok_or_else(|| {
            ApiError::not_found("task", &task).with_details(json!({"project": project.id}))
        })?;
        let cage = declared_cage("task", &t.cage, req.cage.is_some())?;
        ("task", Some(task), t.command.clone(), cage, t.env.clone())
    } else {
        let argv = req.argv.unwrap_or_else(|| vec![facts.shell.clone()]);
        let kind = if argv.len() == 1 && argv[0] == facts.shell {
            "shell"
        } else {
            "command"
        };
        (
            kind,
            None,
            argv,
            Some(req.cage.unwrap_or_else(project_cage)),
            BTreeMap::new(),
        )
    };
    if argv.is_empty() || argv.iter().any(|a| a.is_empty() || a.contains('\0')) {
        return Err(bad(
            "argv must be a non-empty list of non-empty strings without NUL bytes",
        ));
    }
    if argv.len() > MAX_ARGS || argv.iter().map(String::len).sum::<usize>() > MAX_ARGV_BYTES {
        return Err(bad(format!(
            "argv is too long (at most {MAX_ARGS} arguments and {MAX_ARGV_BYTES} bytes)"
        )));
    }
    let mut cage = cage;
    if let (Some(c), Some(extra)) = (cage.as_mut(), req.env) {
        for name in extra {
            if name.starts_with("KAGED_")
                || name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(bad(format!(
                    "env name {name:?} is not allowed (no KAGED_* and only [A-Za-z0-9_])"
                )));
            }
            if !c.env.contains(&name) {
                c.env.push(name);
            }
        }
    }
    if !facts.sandbox_enabled {
        cage = None;
    }
    Ok(Plan {
        kind,
        name,
        argv,
        cage,
        task_env,
        cols,
        rows,
    })
}

/// The cage a declared agent or task runs in; a request cannot override it.
fn declared_cage(
    kind: &str,
    cage: &Cage,
    overridden: bool,
) -> Result<Option<CagePolicy>, ApiError> {
    if overridden {
        return Err(bad(format!(
            "a declared {kind} runs in its declared cage; drop `cage` or edit the project file"
        )));
    }
    Ok(match cage {
        Cage::Disabled => None,
        Cage::Policy(p) => Some(p.clone()),
    })
}

/// Compiles the plan into a ready spawn; the cage summary travels in `meta.cage`.
pub fn compile(
    plan: &Plan,
    project: &LoadedProject,
    facts: &HostFacts,
    actor: &str,
) -> Result<SpawnSpec, ApiError> {
    let term = ("TERM".to_owned(), "xterm-256color".to_owned());
    let meta_base = json!({"kind": plan.kind, "name": plan.name, "command": plan.argv});
    let Some(policy) = &plan.cage else {
        // Uncaged: the DSL said `cage: disabled` or the daemon runs --no-sandbox.
        let mut env: Vec<(OsString, OsString)> = vec![
            (term.0.into(), term.1.into()),
            ("HOME".into(), facts.home.clone().into()),
        ];
        for (k, v) in &facts.env {
            if matches!(
                k.as_str(),
                "PATH" | "LANG" | "LC_ALL" | "USER" | "LOGNAME" | "SHELL"
            ) {
                env.push((k.into(), v.into()));
            }
        }
        env.extend(plan.task_env.iter().map(|(k, v)| (k.into(), v.into())));
        let summary = json!({"caged": false, "reason": if facts.sandbox_enabled { "cage: disabled in the project file" } else { "daemon started with --no-sandbox" }});
        let mut meta = meta_base;
        meta["cage"] = summary;
        return Ok(SpawnSpec {
            project_id: project.id.clone(),
            actor: actor.to_owned(),
            argv: plan.argv.iter().map(OsString::from).collect(),
            env,
            cwd: project.root.clone(),
            cols: plan.cols,
            rows: plan.rows,
            walltime: None,
            keep_fds: Vec::new(),
            meta,
        });
    };
    let mut sandbox_policy = to_sandbox_policy(policy);
    for name in plan.task_env.keys() {
        if !sandbox_policy.env.contains(name) {
            sandbox_policy.env.push(name.clone());
        }
    }
    let mut env_values: Vec<(String, String)> = facts
        .env
        .iter()
        .filter(|(k, _)| k != "TERM")
        .cloned()
        .collect();
    env_values.push(term);
    env_values.extend(plan.task_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let scratch = match sandbox_policy.state {
        kaged_sandbox::StateKind::Persistent => {
            let dir = facts.scratch_root.join(&project.id);
            kaged_deploy::ensure_private_dir(&dir).map_err(ApiError::internal)?;
            Some(dir)
        }
        kaged_sandbox::StateKind::Ephemeral => None,
    };
    let compiled = kaged_sandbox::compile(&kaged_sandbox::CageRequest {
        project_root: &project.root,
        policy: &sandbox_policy,
        argv: &plan.argv,
        env_values: &env_values,
        deny: &facts.deny,
        scratch_dir: scratch.as_deref(),
        pty: true,
        cwd: None,
    })
    .map_err(|e| {
        ApiError::new(
            Code::ValidationFailed,
            format!("cannot build the cage: {e}"),
        )
    })?;
    let summary = serde_json::to_value(&compiled.summary).unwrap_or(Value::Null);
    let mut meta = meta_base;
    meta["cage"] = json!({"caged": true, "summary": summary});
    let mut argv: Vec<OsString> = vec![compiled.program.clone().into()];
    argv.extend(compiled.args.iter().cloned());
    // bwrap itself needs only PATH; systemd-run (cgroup limits) also needs the user bus.
    let env: Vec<(OsString, OsString)> = facts
        .env
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "PATH" | "XDG_RUNTIME_DIR" | "DBUS_SESSION_BUS_ADDRESS"
            )
        })
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    Ok(SpawnSpec {
        project_id: project.id.clone(),
        actor: actor.to_owned(),
        argv,
        env,
        cwd: project.root.clone(),
        cols: plan.cols,
        rows: plan.rows,
        walltime: compiled.walltime,
        keep_fds: compiled.keep_fds,
        meta,
    })
}

/// The DSL's cage policy and the sandbox's are the same shape; this is the one place that
/// maps between them.
fn to_sandbox_policy(p: &CagePolicy) -> kaged_sandbox::CagePolicy {
    kaged_sandbox::CagePolicy {
        fs: p
            .fs
            .iter()
            .map(|g| kaged_sandbox::Grant {
                path: g.path.as_str().to_owned(),
                access: match g.access {
                    kaged_dsl::Access::Ro => kaged_sandbox::Access::Ro,
                    kaged_dsl::Access::Rw => kaged_sandbox::Access::Rw,
                },
            })
            .collect(),
        network: match p.network {
            kaged_dsl::Network::None => kaged_sandbox::Network::None,
            kaged_dsl::Network::Host => kaged_sandbox::Network::Host,
        },
        state: match p.state {
            kaged_dsl::State::Ephemeral => kaged_sandbox::StateKind::Ephemeral,
            kaged_dsl::State::Persistent => kaged_sandbox::StateKind::Persistent,
        },
        limits: kaged_sandbox::Limits {
            walltime: p.limits.walltime.map(|w| Duration::from_secs(w.seconds())),
            memory_bytes: p.limits.memory.map(|m| m.bytes()),
            pids: p.limits.pids,
            cpu: p.limits.cpu,
        },
        env: p.env.clone(),
    }
}
