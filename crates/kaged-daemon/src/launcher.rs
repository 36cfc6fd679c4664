//! Turns "start a session in project P" into a spawn, in two pure steps: [`plan`] resolves what
//! to run (the operator's shell, a declared agent or task, or an explicit argv) and in which
//! cage; [`compile`] turns the plan into the session's argv, environment and origin. Policy
//! comes from the project file; this module resolves it, hands it to the sandbox, and decides
//! what the sandbox cannot: whether a cage whose limits this host cannot enforce may run, and
//! whether a cage may share the host's network while the API has no auth.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use kaged_api::{
    AgentSpec, Cage, CagePolicy, CageState, CgroupLimits, LimitEnforcement, Network, SessionKind,
    SessionOrigin, StartSession, State, check_env_name,
};
use kaged_sandbox::CageCgroup;
use kaged_session::SpawnSpec;

use crate::adapters::Adapted;
use crate::error::{OpError, OpResult};
use crate::host::HostFacts;
use crate::projects::LoadedProject;

const MAX_ARGS: usize = 256;
const MAX_ARGV_BYTES: usize = 64 * 1024;
/// Terminal sizes beyond this are a client bug, not a terminal.
pub const MAX_DIM: u16 = 1000;

/// What a request resolved to, before compiling.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub kind: SessionKind,
    pub name: Option<String>,
    pub argv: Vec<String>,
    /// `None`: run uncaged (`cage: disabled` in the project file, or `--no-sandbox`).
    pub cage: Option<CagePolicy>,
    /// The policy's walltime, which the session broker enforces caged or not: `--no-sandbox`
    /// drops the cage, not the time limit. (`cage: disabled` has no policy, so no walltime.)
    pub walltime: Option<Duration>,
    /// Whose cage it is, for messages: "agent `reviewer`", "the request", ...
    pub cage_of: String,
    pub task_env: BTreeMap<String, String>,
    pub cols: u16,
    pub rows: u16,
    /// A declared agent's declarations, for its adapter.
    pub agent: Option<AgentSpec>,
    /// What the agent's adapter made of them ([`crate::adapters::adapt`]); the session runs
    /// its argv and environment instead of the declared command alone.
    pub adapted: Option<Adapted>,
    /// The agent's CLI, when it is installed where its cage cannot see it
    /// ([`crate::program::locate`]); `argv[0]` then names it in the cage.
    pub program: Option<crate::program::Located>,
}

fn invalid(msg: impl Into<String>) -> OpError {
    OpError::Invalid(msg.into())
}

pub fn check_size(cols: u16, rows: u16) -> OpResult<()> {
    if (1..=MAX_DIM).contains(&cols) && (1..=MAX_DIM).contains(&rows) {
        Ok(())
    } else {
        Err(invalid(format!(
            "cols={cols} rows={rows}: both must be between 1 and {MAX_DIM}"
        )))
    }
}

pub fn plan(project: &LoadedProject, req: StartSession, facts: &HostFacts) -> OpResult<Plan> {
    let (cols, rows) = (req.cols.unwrap_or(80), req.rows.unwrap_or(24));
    check_size(cols, rows)?;
    let chosen = [req.argv.is_some(), req.agent.is_some(), req.task.is_some()];
    if chosen.iter().filter(|b| **b).count() > 1 {
        return Err(invalid("give at most one of `argv`, `agent` and `task`"));
    }
    let overridden = req.cage.is_some();
    let mut agent_spec = None;
    let (kind, name, argv, mut cage, task_env, cage_of) = if let Some(agent) = req.agent {
        let (_, spec) = project
            .project
            .agents()
            .into_iter()
            .find(|(n, _)| *n == agent)
            .ok_or_else(|| OpError::not_found("agent", &agent))?;
        let cage = declared_cage("agent", &spec.cage, overridden)?;
        let argv = spec.command.clone();
        agent_spec = Some(spec.clone());
        let of = format!("agent `{agent}`");
        (
            SessionKind::Agent,
            Some(agent),
            argv,
            cage,
            BTreeMap::new(),
            of,
        )
    } else if let Some(task) = req.task {
        let t = project
            .project
            .tasks
            .get(&task)
            .ok_or_else(|| OpError::not_found("task", &task))?;
        let cage = declared_cage("task", &t.cage, overridden)?;
        let (argv, env) = (t.command.clone(), t.env.clone());
        let of = format!("task `{task}`");
        (SessionKind::Task, Some(task), argv, cage, env, of)
    } else {
        let argv = req.argv.unwrap_or_else(|| vec![facts.shell.clone()]);
        let kind = if argv.len() == 1 && argv[0] == facts.shell {
            SessionKind::Shell
        } else {
            SessionKind::Command
        };
        let of = if overridden {
            "the request"
        } else {
            "the primary agent (shells and commands run in its cage)"
        };
        let cage = req.cage.unwrap_or_else(|| project_cage(project));
        (kind, None, argv, Some(cage), BTreeMap::new(), of.to_owned())
    };
    check_argv(&argv)?;
    if let (Some(c), Some(extra)) = (cage.as_mut(), req.env) {
        for name in extra {
            check_env_name(&name).map_err(|e| invalid(format!("env: {e}")))?;
            if !c.env.contains(&name) {
                c.env.push(name);
            }
        }
    }
    if let Some(policy) = cage.as_ref().filter(|_| facts.sandbox_enabled) {
        check_network(policy, &cage_of, facts)?;
    }
    let walltime = cage.as_ref().and_then(|c| c.limits.walltime_duration());
    if !facts.sandbox_enabled {
        cage = None;
    }
    Ok(Plan {
        kind,
        name,
        argv,
        cage,
        walltime,
        cage_of,
        task_env,
        cols,
        rows,
        agent: agent_spec,
        adapted: None,
        program: None,
    })
}

/// ADR-0007's insecure mode has no auth, so a cage on the host's network could drive the API
/// and start an uncaged session: refuse it, and say why and what to do.
fn check_network(policy: &CagePolicy, cage_of: &str, facts: &HostFacts) -> OpResult<()> {
    if facts.insecure_auth && policy.network == Network::Host {
        return Err(invalid(format!(
            "{cage_of} asks for `network: host`, which is refused while kaged runs in insecure \
             auth mode (ADR-0007): the API then answers anyone who reaches it, so a cage on the \
             host's network could call it and start an uncaged session. Use `network: none` for \
             this cage, or `network: {{allow: [host, ...]}}` to reach named hosts through its \
             egress gateway, or run kaged with auth (auth.mode = \"loopback\" or \"sidecar\") \
             instead of --insecure"
        )));
    }
    Ok(())
}

/// A shell or command runs in the primary agent's cage unless the request names one.
fn project_cage(project: &LoadedProject) -> CagePolicy {
    match project.project.primary.as_ref().map(|p| &p.cage) {
        Some(Cage::Policy(p)) => p.clone(),
        _ => CagePolicy::default(),
    }
}

/// The cage a declared agent or task runs in; a request cannot override it.
fn declared_cage(kind: &str, cage: &Cage, overridden: bool) -> OpResult<Option<CagePolicy>> {
    if overridden {
        return Err(invalid(format!(
            "a declared {kind} runs in its declared cage; drop `cage` or edit the project file"
        )));
    }
    Ok(match cage {
        Cage::Disabled => None,
        Cage::Policy(p) => Some(p.clone()),
    })
}

fn check_argv(argv: &[String]) -> OpResult<()> {
    if argv.is_empty() || argv.iter().any(|a| a.is_empty() || a.contains('\0')) {
        return Err(invalid(
            "argv must be a non-empty list of non-empty strings without NUL bytes",
        ));
    }
    if argv.len() > MAX_ARGS || argv.iter().map(String::len).sum::<usize>() > MAX_ARGV_BYTES {
        return Err(invalid(format!(
            "argv is too long (at most {MAX_ARGS} arguments and {MAX_ARGV_BYTES} bytes)"
        )));
    }
    Ok(())
}

/// A ready spawn, and what must be cleaned up once it has ended.
pub struct Launch {
    pub spec: SpawnSpec,
    /// Remove with `kaged_sandbox::remove_mountpoints` once no cage of the project runs.
    pub mountpoints: Vec<std::path::PathBuf>,
    /// The cage's own cgroup; [`CageCgroup::remove`] it once the session has ended.
    pub cgroup: Option<CageCgroup>,
}

/// Compiles the plan into a ready spawn. The persistent scratch directory and the cage's
/// cgroup, when the policy needs them, are created here: the side effects, right before the
/// spawn needs them. A cage whose limits this host cannot enforce is refused here unless
/// best-effort is allowed ([`unenforced_limits`]).
/// `egress_socket_dir` holds the gateway's socket for a `network: {allow, deny}` cage, and
/// `egress_env` what kaged sets in it besides the proxy variables (provider URLs).
pub fn compile(
    plan: &Plan,
    project: &LoadedProject,
    facts: &HostFacts,
    actor: &str,
    egress_socket_dir: Option<&Path>,
    egress_env: &[(String, String)],
    hook_dir: Option<&Path>,
) -> OpResult<Launch> {
    let mut mountpoints = Vec::new();
    let mut cgroup = None;
    let mut cgroup_procs = None;
    let (argv, env, keep_fds, cage) = match &plan.cage {
        Some(policy) => {
            let mut compiled = cage(
                plan,
                policy,
                project,
                facts,
                egress_socket_dir,
                egress_env,
                hook_dir,
            )?;
            let mut summary = compiled.summary;
            if let CgroupLimits::NotEnforced { reason } = &summary.cgroup_limits {
                summary.cgroup_limits = unenforced_limits(plan, policy, reason, facts)?;
            }
            mountpoints = compiled.mountpoints;
            cgroup_procs = compiled.cgroup.as_mut().and_then(CageCgroup::take_procs);
            cgroup = compiled.cgroup;
            let mut argv: Vec<OsString> = vec![compiled.program.into()];
            argv.extend(compiled.args);
            let cage = CageState::Caged {
                summary: Box::new(summary),
            };
            (argv, launcher_env(facts), compiled.keep_fds, cage)
        }
        None => {
            let cage = if facts.sandbox_enabled {
                CageState::DisabledByProject
            } else {
                CageState::NoSandbox
            };
            let argv = run_argv(plan).iter().map(OsString::from).collect();
            (argv, uncaged_env(plan, facts), Vec::new(), cage)
        }
    };
    let spec = SpawnSpec {
        id: None,
        project_id: project.id.clone(),
        actor: actor.to_owned(),
        argv,
        env,
        cwd: project.root.clone(),
        cols: plan.cols,
        rows: plan.rows,
        walltime: plan.walltime,
        keep_fds,
        cgroup_procs,
        origin: SessionOrigin {
            kind: plan.kind,
            name: plan.name.clone(),
            command: plan.argv.clone(),
            cage,
            agent: plan.adapted.as_ref().map(|a| a.details.clone()),
            worktree: None,
        },
    };
    Ok(Launch {
        spec,
        mountpoints,
        cgroup,
    })
}

/// The sandbox could not enforce the cage's memory, pids or cpu limits (`reason` says why):
/// run it anyway as [`CgroupLimits::BestEffort`], or refuse it, naming the limits, the reason
/// and what to do. The operator's `sessions.limits` decides when set, whatever the cage says:
/// a project file is portable and may be someone else's, and the operator is the principal.
/// Unset, the cage's own `limits.enforce` decides; a project that says best-effort weakens
/// nothing it could not weaken by declaring no limits at all.
fn unenforced_limits(
    plan: &Plan,
    policy: &CagePolicy,
    reason: &str,
    facts: &HostFacts,
) -> OpResult<CgroupLimits> {
    let asked = policy.limits.enforce;
    let (enforce, by) = match &facts.limits_enforcement {
        Some(op) if op.value == asked => (
            op.value,
            format!("sessions.limits = \"{}\" from {}", op.value, op.source),
        ),
        Some(op) => (
            op.value,
            format!(
                "sessions.limits = \"{}\" from {}, which overrides the cage's `enforce: {asked}`",
                op.value, op.source
            ),
        ),
        None => (
            asked,
            match asked {
                LimitEnforcement::Strict => "the default".to_owned(),
                LimitEnforcement::BestEffort => {
                    format!("`enforce: best-effort` in the limits of {}", plan.cage_of)
                }
            },
        ),
    };
    match enforce {
        LimitEnforcement::BestEffort => Ok(CgroupLimits::BestEffort {
            reason: reason.to_owned(),
            allowed_by: by,
        }),
        LimitEnforcement::Strict => {
            let relax = match &facts.limits_enforcement {
                Some(op) => format!(
                    "set sessions.limits (now from {}) to \"best-effort\", or unset it so that \
                     each cage's `limits.enforce` decides",
                    op.source
                ),
                None => "add `enforce: best-effort` to the cage's limits, or set \
                         `[sessions] limits = \"best-effort\"` in config.toml \
                         (KAGED_SESSIONS_LIMITS)"
                    .to_owned(),
            };
            Err(invalid(format!(
                "the limits of {} ({}) cannot be enforced on this host: {reason}. Limit \
                 enforcement is strict ({by}), so the session was not started. To enforce \
                 them, run kaged in a cgroup delegated to it (systemd `Delegate=yes`, as the \
                 shipped units set) or where `systemd-run --user --scope` works; to run without \
                 them, {relax}",
                plan.cage_of,
                policy.limits.describe_cgroup_limits()
            )))
        }
    }
}

/// The plan's policy, with the task's own variables allowlisted, compiled for this host.
fn cage(
    plan: &Plan,
    policy: &CagePolicy,
    project: &LoadedProject,
    facts: &HostFacts,
    egress_socket_dir: Option<&Path>,
    egress_env: &[(String, String)],
    hook_dir: Option<&Path>,
) -> OpResult<kaged_sandbox::CompiledCage> {
    let mut policy = policy.clone();
    let adapter_env = plan.adapted.iter().flat_map(|a| &a.env);
    for name in plan
        .task_env
        .keys()
        .chain(adapter_env.clone().map(|(k, _)| k))
    {
        if !policy.env.contains(name) {
            policy.env.push(name.clone());
        }
    }
    let mut env_values: Vec<(String, String)> = facts
        .env
        .iter()
        .filter(|(k, _)| k != "TERM")
        .cloned()
        .collect();
    env_values.push(("TERM".to_owned(), "xterm-256color".to_owned()));
    env_values.extend(plan.task_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env_values.extend(adapter_env.cloned());
    let scratch = match policy.state {
        State::Persistent => {
            let dir = facts.scratch_root.join(&project.id);
            kaged_deploy::ensure_private_dir(&dir)
                .map_err(|e| OpError::internal("cannot create the cage's scratch dir", e))?;
            Some(dir)
        }
        State::Ephemeral => None,
    };
    let egress = match (egress_socket_dir, &facts.relay_exe) {
        (Some(socket_dir), Ok(relay)) => Some(kaged_sandbox::EgressPlumbing {
            socket_dir,
            relay,
            env: egress_env,
        }),
        (Some(_), Err(why)) => {
            return Err(OpError::Invalid(format!(
                "{} has `network: {{allow, deny}}`, which needs kaged's own binary as the \
                 cage's relay, but {why}; restart kaged",
                plan.cage_of
            )));
        }
        (None, _) => None,
    };
    let req = kaged_sandbox::CageRequest {
        project_root: &project.root,
        policy: &policy,
        argv: run_argv(plan),
        env_values: &env_values,
        deny: &facts.deny,
        scratch_dir: scratch.as_deref(),
        pty: true,
        cwd: None,
        egress,
        // Without kaged's binary there is no helper; the agent then runs without hooks, its
        // state read from the terminal as before.
        hook: match (hook_dir, &facts.relay_exe) {
            (Some(socket_dir), Ok(helper)) => {
                Some(kaged_sandbox::HookPlumbing { socket_dir, helper })
            }
            _ => None,
        },
        linked_git: project.linked_git.as_ref(),
        program: plan.program.as_ref().map(crate::program::Located::bind),
    };
    kaged_sandbox::compile_on(&req, &facts.cage_host)
        .map_err(|e| invalid(format!("cannot build the cage: {e}")))
}

/// What the cage launcher itself runs with: bwrap needs only PATH; systemd-run (cgroup
/// limits) also needs the user bus. The cage's own environment is in its argv.
fn launcher_env(facts: &HostFacts) -> Vec<(OsString, OsString)> {
    facts
        .env
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "PATH" | "XDG_RUNTIME_DIR" | "DBUS_SESSION_BUS_ADDRESS"
            )
        })
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// An uncaged process gets a plain login-like environment, never the daemon's own.
fn uncaged_env(plan: &Plan, facts: &HostFacts) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("TERM".into(), "xterm-256color".into()),
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
    for (k, v) in plan.adapted.iter().flat_map(|a| &a.env) {
        env.retain(|(name, _)| name != k.as_str());
        env.push((k.into(), v.into()));
    }
    env
}

/// What runs: the adapter's argv for a known agent CLI, else the plan's.
fn run_argv(plan: &Plan) -> &[String] {
    plan.adapted.as_ref().map_or(&plan.argv, |a| &a.argv)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use kaged_api::{Network, Timestamp};
    use pretty_assertions::assert_eq;

    use super::*;

    fn project(yaml: &str) -> LoadedProject {
        let project = kaged_dsl::parse_project_str(std::path::Path::new("p.yaml"), yaml).unwrap();
        LoadedProject {
            id: project.project.clone(),
            root: PathBuf::from("/srv/p"),
            project,
            loaded_at: Timestamp::now(),
            loaded_by: "alice".into(),
            linked_git: None,
        }
    }

    pub(crate) fn facts(sandbox: bool) -> HostFacts {
        HostFacts {
            sandbox_enabled: sandbox,
            insecure_auth: false,
            limits_enforcement: None,
            cage_host: kaged_sandbox::HostSystem {
                bwrap: None,
                cgroups: kaged_api::CgroupSupport::Unavailable {
                    reason: "no cgroups here".into(),
                },
                system: vec![],
                masks: vec![],
                resolv_conf: None,
                disable_userns: false,
            },
            shell: "/bin/bash".into(),
            home: "/home/alice".into(),
            env: vec![("PATH".into(), "/usr/bin".into())],
            deny: vec![],
            scratch_root: "/var/lib/kaged/scratch".into(),
            egress_dir: "/run/user/1000/kaged/egress".into(),
            agent_dir: "/run/user/1000/kaged/agent".into(),
            relay_exe: Ok("/usr/bin/kaged".into()),
        }
    }

    const YAML: &str = "version: 1\nproject: demo\nprimary:\n  command: [claude]\n  cage:\n    network: host\n    env: [TERM]\ntasks:\n  lint:\n    command: [make, lint]\n    cage: disabled\n    env: {CI: '1'}\n";

    #[test]
    fn no_choice_is_the_login_shell_in_the_primary_agents_cage() {
        let p = project(YAML);
        let plan = plan(&p, StartSession::default(), &facts(true)).unwrap();
        assert_eq!(plan.kind, SessionKind::Shell);
        assert_eq!(plan.argv, vec!["/bin/bash"]);
        assert_eq!((plan.cols, plan.rows), (80, 24));
        let cage = plan.cage.unwrap();
        assert_eq!(
            (cage.network, cage.env),
            (Network::Host, vec!["TERM".to_owned()])
        );
    }

    #[test]
    fn declared_tasks_keep_their_cage_and_env_and_refuse_an_override() {
        let p = project(YAML);
        let req = StartSession {
            task: Some("lint".into()),
            ..StartSession::default()
        };
        let plan = plan(&p, req.clone(), &facts(true)).unwrap();
        assert_eq!(
            (plan.kind, plan.name.as_deref(), plan.cage.is_none()),
            (SessionKind::Task, Some("lint"), true)
        );
        assert_eq!(plan.task_env.get("CI").map(String::as_str), Some("1"));
        let overridden = StartSession {
            cage: Some(CagePolicy::default()),
            ..req
        };
        assert!(matches!(
            super::plan(&p, overridden, &facts(true)),
            Err(OpError::Invalid(_))
        ));
    }

    #[test]
    fn bad_requests_are_refused_with_what_was_wrong() {
        let p = project(YAML);
        let f = facts(true);
        let cases = [
            StartSession {
                cols: Some(0),
                ..Default::default()
            },
            StartSession {
                argv: Some(vec![]),
                ..Default::default()
            },
            StartSession {
                argv: Some(vec!["a\0b".into()]),
                ..Default::default()
            },
            StartSession {
                argv: Some(vec!["sh".into()]),
                task: Some("lint".into()),
                ..Default::default()
            },
            StartSession {
                env: Some(vec!["KAGED_AUTH".into()]),
                ..Default::default()
            },
            StartSession {
                env: Some(vec!["A=B".into()]),
                ..Default::default()
            },
        ];
        for req in cases {
            let err = plan(&p, req.clone(), &f).unwrap_err();
            assert!(matches!(err, OpError::Invalid(_)), "{req:?}: {err}");
        }
        let unknown = StartSession {
            agent: Some("nobody".into()),
            ..Default::default()
        };
        assert!(matches!(
            plan(&p, unknown, &f),
            Err(OpError::NotFound { what: "agent", .. })
        ));
    }

    #[test]
    fn no_sandbox_runs_everything_uncaged_and_says_why() {
        let p = project(YAML);
        let f = facts(false);
        let plan = plan(&p, StartSession::default(), &f).unwrap();
        assert_eq!(plan.cage, None);
        let spec = compile(&plan, &p, &f, "alice", None, &[], None)
            .unwrap()
            .spec;
        assert_eq!(spec.origin.cage, CageState::NoSandbox);
        assert_eq!(spec.argv, vec![OsString::from("/bin/bash")]);
        assert!(spec.env.contains(&("HOME".into(), "/home/alice".into())));
    }

    #[test]
    fn a_project_that_disables_the_cage_is_recorded_as_such() {
        let p = project(YAML);
        let f = facts(true);
        let req = StartSession {
            task: Some("lint".into()),
            ..Default::default()
        };
        let spec = compile(
            &plan(&p, req, &f).unwrap(),
            &p,
            &f,
            "alice",
            None,
            &[],
            None,
        )
        .unwrap()
        .spec;
        assert_eq!(spec.origin.cage, CageState::DisabledByProject);
        assert_eq!(spec.origin.kind, SessionKind::Task);
        assert!(spec.env.contains(&("CI".into(), "1".into())));
    }

    #[test]
    fn no_sandbox_drops_the_cage_but_keeps_its_walltime() {
        let p = project(
            "version: 1\nproject: demo\nprimary:\n  command: [sh]\n  cage:\n    limits: {walltime: 1, memory: 1G}\n",
        );
        let f = facts(false);
        let plan = plan(&p, StartSession::default(), &f).unwrap();
        assert_eq!(
            (plan.cage.as_ref(), plan.walltime),
            (None, Some(Duration::from_secs(1)))
        );
        let spec = compile(&plan, &p, &f, "alice", None, &[], None)
            .unwrap()
            .spec;
        assert_eq!(spec.walltime, Some(Duration::from_secs(1)));
        assert_eq!(spec.origin.cage, CageState::NoSandbox);
        // `cage: disabled` has no policy, so no walltime either.
        let p = project(YAML);
        let req = StartSession {
            task: Some("lint".into()),
            ..Default::default()
        };
        assert_eq!(super::plan(&p, req, &facts(true)).unwrap().walltime, None);
    }

    #[test]
    fn insecure_mode_refuses_a_cage_on_the_host_network_and_says_why() {
        let p = project(YAML);
        let mut f = facts(true);
        f.insecure_auth = true;
        let err = plan(&p, StartSession::default(), &f).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the primary agent (shells and commands run in its cage) asks for `network: host`, \
             which is refused while kaged runs in insecure auth mode (ADR-0007): the API then \
             answers anyone who reaches it, so a cage on the host's network could call it and \
             start an uncaged session. Use `network: none` for this cage, or `network: {allow: \
             [host, ...]}` to reach named hosts through its egress gateway, or run kaged with \
             auth (auth.mode = \"loopback\" or \"sidecar\") instead of --insecure"
        );
        assert_eq!(err.code(), kaged_api::ErrorCode::ValidationFailed);
        let own = StartSession {
            cage: Some(CagePolicy {
                network: Network::Host,
                ..CagePolicy::default()
            }),
            ..Default::default()
        };
        let err = plan(&p, own, &f).unwrap_err().to_string();
        assert!(
            err.starts_with("the request asks for `network: host`"),
            "{err}"
        );
        // Without network the cage cannot reach the API; with auth, reaching it is not enough.
        let offline = StartSession {
            cage: Some(CagePolicy::default()),
            ..Default::default()
        };
        assert!(plan(&p, offline, &f).is_ok());
        // A filtered network reaches no loopback address, kaged's port included.
        let filtered = StartSession {
            cage: Some(CagePolicy {
                network: Network::Filtered(kaged_api::EgressRules::default()),
                ..CagePolicy::default()
            }),
            ..Default::default()
        };
        assert!(plan(&p, filtered, &f).is_ok());
        f.insecure_auth = false;
        assert!(plan(&p, StartSession::default(), &f).is_ok());
    }

    fn limited(enforce: LimitEnforcement) -> CagePolicy {
        CagePolicy {
            limits: kaged_api::Limits {
                memory: Some(kaged_api::ByteSize(2 << 30)),
                pids: Some(64),
                enforce,
                ..Default::default()
            },
            ..CagePolicy::default()
        }
    }

    #[test]
    fn unenforceable_limits_run_best_effort_only_when_the_cage_or_the_operator_allows_it() {
        use LimitEnforcement::{BestEffort, Strict};
        use kaged_api::{Source, Sourced};
        let p = project(YAML);
        let plan = plan(&p, StartSession::default(), &facts(true)).unwrap();
        let file = || Source::File("/etc/kaged/config.toml".into());
        let best_effort = |allowed_by: &str| {
            Ok(CgroupLimits::BestEffort {
                reason: "no cgroups here".into(),
                allowed_by: allowed_by.into(),
            })
        };
        let cases: [(
            Option<LimitEnforcement>,
            LimitEnforcement,
            Result<CgroupLimits, &str>,
        ); 6] = [
            (
                None,
                Strict,
                Err("Limit enforcement is strict (the default)"),
            ),
            (
                None,
                BestEffort,
                best_effort(
                    "`enforce: best-effort` in the limits of the primary agent (shells and commands run in its cage)",
                ),
            ),
            (
                Some(Strict),
                BestEffort,
                Err(
                    "(sessions.limits = \"strict\" from /etc/kaged/config.toml, which overrides the cage's `enforce: best-effort`)",
                ),
            ),
            (
                Some(Strict),
                Strict,
                Err("(sessions.limits = \"strict\" from /etc/kaged/config.toml)"),
            ),
            (
                Some(BestEffort),
                Strict,
                best_effort(
                    "sessions.limits = \"best-effort\" from /etc/kaged/config.toml, which overrides the cage's `enforce: strict`",
                ),
            ),
            (
                Some(BestEffort),
                BestEffort,
                best_effort("sessions.limits = \"best-effort\" from /etc/kaged/config.toml"),
            ),
        ];
        for (operator, asked, expected) in cases {
            let mut f = facts(true);
            f.limits_enforcement = operator.map(|v| Sourced::new(v, file()));
            let got = unenforced_limits(&plan, &limited(asked), "no cgroups here", &f);
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{operator:?} {asked:?}"),
                (Err(OpError::Invalid(msg)), Err(part)) => {
                    assert!(msg.contains(part), "{operator:?} {asked:?}: {msg}")
                }
                (got, want) => panic!("{operator:?} {asked:?}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn a_refusal_names_the_limits_the_reason_and_what_to_do() {
        let p = project(YAML);
        let req = StartSession {
            cage: Some(limited(LimitEnforcement::Strict)),
            ..Default::default()
        };
        let plan = plan(&p, req, &facts(true)).unwrap();
        let err = unenforced_limits(
            &plan,
            plan.cage.as_ref().unwrap(),
            "no delegated cgroup v2 subtree: cgroup2 at /sys/fs/cgroup/unified has no controllers; and `systemd-run --user --scope` is not available: systemd-run is not installed",
            &facts(true),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the limits of the request (memory = 2G, pids = 64) cannot be enforced on this \
             host: no delegated cgroup v2 subtree: cgroup2 at /sys/fs/cgroup/unified has no \
             controllers; and `systemd-run --user --scope` is not available: systemd-run is not \
             installed. Limit enforcement is strict (the default), so the session was not \
             started. To enforce them, run kaged in a cgroup delegated to it (systemd \
             `Delegate=yes`, as the shipped units set) or where `systemd-run --user --scope` \
             works; to run without them, add `enforce: best-effort` to the cage's limits, or \
             set `[sessions] limits = \"best-effort\"` in config.toml (KAGED_SESSIONS_LIMITS)"
        );
    }
}
