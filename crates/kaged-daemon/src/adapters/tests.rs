#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use std::path::Path;

use kaged_api::{EgressRules, FsGrant};
use pretty_assertions::assert_eq;

use super::*;

const DUMMY: &str = "kaged-cage-dummy-0123";

fn spec(command: &[&str], model: Option<&str>, tools: &[&str]) -> AgentSpec {
    AgentSpec {
        model: model.map(str::to_owned),
        system_prompt: Some(PortablePath::parse("project:/.kaged/prompts/primary.md").unwrap()),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        cage: kaged_api::Cage::default(),
        tools: tools.iter().map(|s| (*s).to_owned()).collect(),
        agents: BTreeMap::new(),
        workspace: kaged_api::Workspace::Project,
        base: None,
        branch: None,
    }
}

fn filtered(state: State) -> CagePolicy {
    CagePolicy {
        network: Network::Filtered(EgressRules::default()),
        state,
        ..CagePolicy::default()
    }
}

fn models() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("smart".to_owned(), "anthropic:claude-sonnet-9".to_owned()),
        ("coder".to_owned(), "openai:gpt-9-codex".to_owned()),
        ("bare".to_owned(), "some-model".to_owned()),
    ])
}

struct Case {
    spec: AgentSpec,
    cage: Option<CagePolicy>,
    prompt: Option<Result<String, String>>,
    hook_wait_secs: Option<u64>,
}

impl Case {
    fn new(command: &[&str], model: Option<&str>, tools: &[&str]) -> Case {
        Case {
            spec: spec(command, model, tools),
            cage: Some(filtered(State::Persistent)),
            prompt: Some(Ok("Be brief.".to_owned())),
            hook_wait_secs: None,
        }
    }

    fn run(&self) -> Adapted {
        let models = models();
        let providers = ["anthropic".to_owned(), "openai".to_owned()];
        let in_cage = self
            .cage
            .as_ref()
            .filter(|c| visible_in_cage(c, self.spec.system_prompt.as_ref().unwrap()))
            .map(|_| "/srv/p/.kaged/prompts/primary.md");
        let input = Input {
            spec: &self.spec,
            models: &models,
            cage: self.cage.as_ref(),
            gateway_providers: &providers,
            egress_port: 3128,
            dummy_key: DUMMY,
            cage_home: "/home/cage",
            workdir: "/srv/p",
            prompt: self.prompt.as_ref(),
            prompt_in_cage: in_cage,
            hook_wait_secs: self.hook_wait_secs,
        };
        adapt(&self.spec.command, &input)
    }
}

fn setting(kind: SettingKind, name: &str, value: Option<&str>, purpose: &str) -> AdapterSetting {
    AdapterSetting {
        kind,
        name: name.into(),
        value: value.map(str::to_owned),
        purpose: purpose.into(),
    }
}

fn env(name: &str, value: &str, purpose: &str) -> AdapterSetting {
    setting(SettingKind::Env, name, Some(value), purpose)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

const PERSISTENT: &str = "the project's persistent cage home, kept across sessions";
const GATEWAY_KEY: &str = "a stand-in key; the gateway swaps in the real one on the way out";

#[test]
fn claude_gets_its_model_prompt_tools_provider_state_and_no_telemetry() {
    let got = Case::new(
        &["claude", "-p", "fix it"],
        Some("smart"),
        &["shell", "edit", "read", "agent:reviewer", "teleport"],
    )
    .run();
    let tools = "Bash,Read,Edit,Glob,Grep";
    assert_eq!(
        got.argv,
        strs(&[
            "claude",
            "--model",
            "claude-sonnet-9",
            "--append-system-prompt",
            "Be brief.",
            "--tools",
            tools,
            "--allowedTools",
            tools,
            "-p",
            "fix it",
        ])
    );
    assert_eq!(
        got.env,
        vec![
            (
                "ANTHROPIC_BASE_URL".to_owned(),
                "http://127.0.0.1:3128/p/anthropic".to_owned()
            ),
            ("ANTHROPIC_AUTH_TOKEN".to_owned(), DUMMY.to_owned()),
            ("ANTHROPIC_API_KEY".to_owned(), String::new()),
            (
                "CLAUDE_CONFIG_DIR".to_owned(),
                "/home/cage/.claude".to_owned()
            ),
            ("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned()),
            ("DISABLE_TELEMETRY".to_owned(), "1".to_owned()),
            ("DISABLE_ERROR_REPORTING".to_owned(), "1".to_owned()),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
                "1".to_owned()
            ),
            (
                "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL".to_owned(),
                "1".to_owned()
            ),
        ]
    );
    assert_eq!(
        got.details,
        AgentAdapter {
            cli: Some(AgentCli::Claude),
            model: Some("claude-sonnet-9".into()),
            provider: Some("anthropic".into()),
            state: Some(format!("/home/cage/.claude ({PERSISTENT})")),
            argv: got.argv.clone(),
            settings: vec![
                setting(
                    SettingKind::Flag,
                    "--model",
                    Some("claude-sonnet-9"),
                    "model"
                ),
                setting(
                    SettingKind::Flag,
                    "--append-system-prompt",
                    None,
                    "system_prompt project:/.kaged/prompts/primary.md (9 bytes), after Claude \
                     Code's own, which its tools need"
                ),
                setting(
                    SettingKind::Flag,
                    "--tools",
                    Some(tools),
                    "tools: only the declared ones exist"
                ),
                setting(
                    SettingKind::Flag,
                    "--allowedTools",
                    Some(tools),
                    "tools: the declared ones run without a permission prompt"
                ),
                env(
                    "ANTHROPIC_BASE_URL",
                    "http://127.0.0.1:3128/p/anthropic",
                    "provider anthropic through the cage's egress gateway"
                ),
                setting(SettingKind::Env, "ANTHROPIC_AUTH_TOKEN", None, GATEWAY_KEY),
                env(
                    "ANTHROPIC_API_KEY",
                    "",
                    "empty instead of the gateway's generic stand-in, which Claude Code would \
                     ask the operator to approve"
                ),
                env("CLAUDE_CONFIG_DIR", "/home/cage/.claude", PERSISTENT),
                env("DISABLE_AUTOUPDATER", "1", "no auto-updater"),
                env("DISABLE_TELEMETRY", "1", "no telemetry"),
                env("DISABLE_ERROR_REPORTING", "1", "no error reporting"),
                env(
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                    "1",
                    "no release notes, surveys or other non-essential requests"
                ),
                env(
                    "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL",
                    "1",
                    "no plugin-marketplace install from github.com and downloads.claude.ai at \
                     start"
                ),
            ],
            not_honoured: vec![
                NotHonoured {
                    declaration: "tools: agent:reviewer".into(),
                    reason: "Claude Code's subagents run in its own process, inside this cage, \
                             not in the child agent's cage; start the child agent as a session \
                             of its own"
                        .into(),
                },
                NotHonoured {
                    declaration: "tools: teleport".into(),
                    reason: "Claude Code has no tool for `teleport`; kaged maps shell, read, \
                             edit, write, web"
                        .into(),
                },
            ],
        }
    );
}

#[test]
fn codex_is_configured_by_overrides_and_says_it_cannot_restrict_tools() {
    let got = Case::new(&["codex", "exec", "go"], Some("coder"), &["shell"]).run();
    let provider = "{name=\"openai through kaged's egress gateway\",\
                    base_url=\"http://127.0.0.1:3128/p/openai\",env_key=\"OPENAI_API_KEY\",\
                    wire_api=\"responses\"}";
    assert_eq!(
        got.argv,
        strs(&[
            "codex",
            "-c",
            "model=\"gpt-9-codex\"",
            "-c",
            &format!("model_providers.kaged={provider}"),
            "-c",
            "model_provider=\"kaged\"",
            "-c",
            "developer_instructions=\"Be brief.\"",
            "-c",
            "sandbox_mode=\"danger-full-access\"",
            "-c",
            "check_for_update_on_startup=false",
            "-c",
            "analytics.enabled=false",
            "-c",
            "feedback.enabled=false",
            "-c",
            "features.plugins=false",
            "exec",
            "go",
        ])
    );
    assert_eq!(
        got.env,
        vec![("OPENAI_API_KEY".to_owned(), DUMMY.to_owned())]
    );
    let d = &got.details;
    assert_eq!(
        (
            d.cli,
            d.model.as_deref(),
            d.provider.as_deref(),
            d.state.as_deref()
        ),
        (
            Some(AgentCli::Codex),
            Some("gpt-9-codex"),
            Some("openai"),
            Some("/home/cage/.codex (the project's persistent cage home, kept across sessions)")
        )
    );
    let shown: Vec<(&str, Option<&str>)> = d
        .settings
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref()))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("-c model", Some("\"gpt-9-codex\"")),
            ("-c model_providers.kaged", Some(provider)),
            ("-c model_provider", Some("\"kaged\"")),
            // The prompt's text is carried, not shown again; the dummy is never shown.
            ("-c developer_instructions", None),
            ("-c sandbox_mode", Some("\"danger-full-access\"")),
            ("-c check_for_update_on_startup", Some("false")),
            ("-c analytics.enabled", Some("false")),
            ("-c feedback.enabled", Some("false")),
            ("-c features.plugins", Some("false")),
            ("OPENAI_API_KEY", None),
        ]
    );
    assert_eq!(
        d.not_honoured,
        vec![NotHonoured {
            declaration: "tools: shell".into(),
            reason: "Codex cannot restrict its tools by name: it always has its shell and \
                     patch tools. The cage's fs grants and network bound what they can reach"
                .into(),
        }]
    );
}

#[test]
fn opencode_gets_one_config_document_and_xdg_state_in_the_cage_home() {
    let mut case = Case::new(&["opencode", "run", "go"], Some("smart"), &["read"]);
    case.cage = Some(CagePolicy {
        state: State::Ephemeral,
        ..filtered(State::Ephemeral)
    });
    let got = case.run();
    assert_eq!(got.argv, strs(&["opencode", "run", "go"]));
    let config = got
        .env
        .iter()
        .find(|(n, _)| n == "OPENCODE_CONFIG_CONTENT")
        .map(|(_, v)| serde_json::from_str::<serde_json::Value>(v).unwrap())
        .unwrap();
    assert_eq!(
        config,
        serde_json::json!({
            "autoupdate": false,
            "share": "disabled",
            "provider": {"anthropic": {"options": {
                "baseURL": "http://127.0.0.1:3128/p/anthropic/v1",
                "apiKey": "{env:ANTHROPIC_API_KEY}"}}},
            "model": "anthropic/claude-sonnet-9",
            "instructions": ["/srv/p/.kaged/prompts/primary.md"],
            "tools": {"bash": false, "read": true, "grep": true, "glob": true, "list": true,
                      "edit": false, "patch": false, "write": false, "webfetch": false,
                      "task": false, "skill": false, "todowrite": false, "todoread": false},
        })
    );
    let names: Vec<&str> = got.env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "ANTHROPIC_API_KEY",
            "OPENCODE_CONFIG_CONTENT",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "XDG_STATE_HOME",
            "XDG_CACHE_HOME",
            "OPENCODE_DISABLE_AUTOUPDATE",
            "OPENCODE_DISABLE_SHARE",
            "OPENCODE_DISABLE_MODELS_FETCH",
            "OPENCODE_DISABLE_DEFAULT_PLUGINS",
            "OPENCODE_DISABLE_LSP_DOWNLOAD",
        ]
    );
    assert_eq!(
        got.details.state.as_deref(),
        Some(
            "/home/cage/.local/share/opencode (the cage's scratch home, gone when the session ends)"
        )
    );
    assert_eq!(got.details.not_honoured, vec![]);
}

#[test]
fn a_prompt_outside_every_grant_is_said_for_opencode() {
    let mut case = Case::new(&["opencode"], None, &[]);
    case.cage = Some(CagePolicy {
        fs: vec![FsGrant {
            path: PortablePath::parse("project:/src").unwrap(),
            access: kaged_api::Access::Rw,
        }],
        ..filtered(State::Ephemeral)
    });
    let got = case.run();
    assert_eq!(
        got.details.not_honoured,
        vec![NotHonoured {
            declaration: "system_prompt: project:/.kaged/prompts/primary.md".into(),
            reason: "opencode reads instructions from a file, and no fs grant of the cage \
                     shows this one; grant it (read-only is enough)"
                .into(),
        }]
    );
}

#[test]
fn an_unknown_cli_runs_as_declared_and_lists_every_declaration_it_does_not_get() {
    let got = Case::new(&["/usr/bin/aider", "--yes"], Some("smart"), &["shell"]).run();
    let reason = "kaged has no adapter for `/usr/bin/aider` (it has one for claude, codex and \
                  opencode), so the command runs as declared, with only the cage's proxy \
                  variables and provider base URLs; pass the setting in the command itself";
    assert_eq!(
        got,
        Adapted {
            argv: strs(&["/usr/bin/aider", "--yes"]),
            env: vec![],
            details: AgentAdapter {
                cli: None,
                model: None,
                provider: None,
                state: None,
                argv: strs(&["/usr/bin/aider", "--yes"]),
                settings: vec![],
                not_honoured: [
                    "model: smart",
                    "system_prompt: project:/.kaged/prompts/primary.md",
                    "tools: shell"
                ]
                .into_iter()
                .map(|d| NotHonoured {
                    declaration: d.into(),
                    reason: reason.into(),
                })
                .collect(),
            },
        }
    );
    // A path to a known CLI is that CLI.
    assert_eq!(
        recognise(&strs(&["/opt/tools/claude", "-p"])),
        Some(AgentCli::Claude)
    );
}

#[test]
fn what_the_cage_or_local_toml_cannot_give_is_said_and_no_key_is_set() {
    // `network: none`: no provider URL, no key, and the reason.
    let mut case = Case::new(&["claude"], Some("smart"), &[]);
    case.cage = Some(CagePolicy::default());
    let got = case.run();
    assert!(!got.env.iter().any(|(n, _)| n.starts_with("ANTHROPIC_")));
    assert_eq!(
        got.argv[0], "/bin/sh",
        "interactive: the first-run state is seeded"
    );
    assert_eq!(
        got.details.not_honoured,
        vec![NotHonoured {
            declaration: "cage.network: none".into(),
            reason: "the cage has no network, so the CLI cannot reach its provider \
                     `anthropic`; declare `network: {allow: []}` to reach it through the cage's \
                     egress gateway, which adds the key"
                .into(),
        }]
    );
    // An alias local.toml lacks, and one of a provider the CLI cannot speak to.
    let got = Case::new(&["claude"], Some("nope"), &[]).run();
    assert_eq!(got.details.model, None);
    assert_eq!(got.details.not_honoured[0].declaration, "model: nope");
    let got = Case::new(&["claude"], Some("coder"), &[]).run();
    assert!(
        got.details.not_honoured[0]
            .reason
            .contains("Claude Code speaks only Anthropic's Messages API"),
        "{:?}",
        got.details
    );
    // An alias without a provider is the CLI's own provider's model.
    let got = Case::new(&["codex"], Some("bare"), &[]).run();
    assert_eq!(
        (
            got.details.provider.as_deref(),
            got.details.model.as_deref()
        ),
        (Some("openai"), Some("some-model"))
    );
    // Uncaged: the operator's own state and provider setup; telemetry still off.
    let mut case = Case::new(&["claude"], None, &[]);
    case.cage = None;
    let got = case.run();
    let names: Vec<&str> = got.env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "DISABLE_AUTOUPDATER",
            "DISABLE_TELEMETRY",
            "DISABLE_ERROR_REPORTING",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL",
        ]
    );
    assert_eq!(got.details.state, None);
    // A prompt that could not be read is said, with why.
    let mut case = Case::new(&["claude"], None, &[]);
    case.prompt = Some(Err("cannot read it: ELOOP".into()));
    let got = case.run();
    assert_eq!(
        got.details.not_honoured,
        vec![NotHonoured {
            declaration: "system_prompt: project:/.kaged/prompts/primary.md".into(),
            reason: "cannot read it: ELOOP".into(),
        }]
    );
}

#[test]
fn a_prompt_is_read_beneath_the_project_only_and_without_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join(".kaged/prompts")).unwrap();
    std::fs::write(root.join(".kaged/prompts/primary.md"), "Be brief.\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join(".kaged/prompts/link.md")).unwrap();
    std::fs::write(root.join("big.md"), vec![b'a'; MAX_PROMPT_BYTES + 1]).unwrap();
    let p = |s: &str| PortablePath::parse(s).unwrap();
    assert_eq!(
        read_prompt(root, &p("project:/.kaged/prompts/primary.md")),
        Ok("Be brief.\n".to_owned())
    );
    let link = read_prompt(root, &p("project:/.kaged/prompts/link.md")).unwrap_err();
    assert!(link.contains("reached without symlinks"), "{link}");
    let big = read_prompt(root, &p("project:/big.md")).unwrap_err();
    assert!(big.contains("more than the 65536"), "{big}");
    nix::unistd::mkfifo(&root.join("fifo.md"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let fifo = read_prompt(root, &p("project:/fifo.md")).unwrap_err();
    assert!(fifo.ends_with("not a regular file"), "{fifo}");
    let missing = read_prompt(root, &p("project:/none.md")).unwrap_err();
    assert!(
        missing.starts_with("cannot read project:/none.md ("),
        "{missing}"
    );
}

#[test]
fn interactive_claude_starts_past_its_first_run_screens_and_keeps_existing_state() {
    let got = Case::new(&["claude"], None, &[]).run();
    let seed =
        r#"{"hasCompletedOnboarding":true,"projects":{"/srv/p":{"hasTrustDialogAccepted":true}}}"#;
    assert_eq!(&got.argv[3..5], &strs(&["kaged-claude-first-run", seed]));
    assert_eq!(
        &got.argv[5..],
        &strs(&["claude", "--append-system-prompt", "Be brief."])
    );
    let names: Vec<&str> = got
        .details
        .settings
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        names.contains(&"$CLAUDE_CONFIG_DIR/.claude.json projects./srv/p.hasTrustDialogAccepted"),
        "{names:?}"
    );
    // The wrapper itself, run by a real shell: it writes the state once, then execs the CLI.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("state/.claude");
    let run = |program: &[&str]| {
        let mut argv = got.argv[..5].to_vec();
        argv.extend(program.iter().map(|s| (*s).to_owned()));
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("CLAUDE_CONFIG_DIR", &config)
            .output()
            .unwrap()
    };
    let out = run(&["echo", "ran"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    let file = config.join(".claude.json");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), seed);
    std::fs::write(&file, "{\"mine\":1}").unwrap();
    let out = run(&["true"]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"mine\":1}");
}

/// The shipped example, adapted as an operator with the README's local.toml would run it: each
/// agent reaches Anthropic through the gateway, and the one declaration Claude Code cannot
/// honour is said.
#[test]
fn the_shipped_agent_cli_example_adapts_with_only_its_delegation_unhonoured() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/projects/agent-cli");
    let file = dir.join(".kaged/project.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let project = kaged_dsl::parse_project_str(&file, &text).unwrap();
    let models = BTreeMap::from([
        ("smart".to_owned(), "anthropic:claude-opus-9".to_owned()),
        ("fast".to_owned(), "anthropic:claude-haiku-9".to_owned()),
    ]);
    let providers = ["anthropic".to_owned()];
    let mut seen = Vec::new();
    for (name, spec) in project.agents() {
        let kaged_api::Cage::Policy(cage) = &spec.cage else {
            panic!("{name} is uncaged");
        };
        let prompt = spec.system_prompt.as_ref().map(|p| read_prompt(&dir, p));
        let input = Input {
            spec,
            models: &models,
            cage: Some(cage),
            gateway_providers: &providers,
            egress_port: 3128,
            dummy_key: DUMMY,
            cage_home: "/home/cage",
            workdir: "/srv/agent-cli",
            prompt: prompt.as_ref(),
            prompt_in_cage: None,
            hook_wait_secs: None,
        };
        let got = adapt(&spec.command, &input);
        assert!(
            got.env.contains(&(
                "ANTHROPIC_BASE_URL".into(),
                "http://127.0.0.1:3128/p/anthropic".into()
            )),
            "{name}: {:?}",
            got.env
        );
        let unhonoured: Vec<String> = got
            .details
            .not_honoured
            .iter()
            .map(|n| n.declaration.clone())
            .collect();
        seen.push((name, got.details.model.unwrap_or_default(), unhonoured));
    }
    assert_eq!(
        seen,
        vec![
            (
                "primary".to_owned(),
                "claude-opus-9".to_owned(),
                vec!["tools: agent:reviewer".to_owned()]
            ),
            (
                "primary.reviewer".to_owned(),
                "claude-haiku-9".to_owned(),
                vec![]
            ),
        ]
    );
}

#[test]
fn opencode_edits_and_writes_together_and_says_so() {
    let got = Case::new(&["opencode"], None, &["shell", "edit"]).run();
    let config = got
        .env
        .iter()
        .find(|(n, _)| n == "OPENCODE_CONFIG_CONTENT")
        .map(|(_, v)| serde_json::from_str::<serde_json::Value>(v).unwrap())
        .unwrap();
    let on: Vec<&str> = config["tools"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.as_bool() == Some(true))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(on, vec!["bash", "edit", "patch", "read", "write"]);
    assert_eq!(
        got.details.not_honoured,
        vec![NotHonoured {
            declaration: "tools: edit (without write)".into(),
            reason: "opencode allows editing and writing files only together, so `write` is on \
                     too; the cage's fs grants bound what either can touch"
                .into(),
        }]
    );
}

#[test]
fn claude_codes_hooks_go_to_kaged_s_helper_and_hold_tool_calls_for_the_approval_s_wait() {
    let mut case = Case::new(&["claude", "-p", "hi"], Some("smart"), &["shell"]);
    case.hook_wait_secs = Some(600);
    let got = case.run();
    let at = got.argv.iter().position(|a| a == "--settings").unwrap();
    let settings: serde_json::Value = serde_json::from_str(&got.argv[at + 1]).unwrap();
    let hook = |cmd: &str, timeout: u64| {
        serde_json::json!([{"hooks": [{"type": "command",
            "command": format!("/run/kaged-agent/kaged __hook {cmd}"), "timeout": timeout}]}])
    };
    let mut held = hook("pre-tool-use", 630);
    held[0]["matcher"] = "Bash|Edit|MultiEdit|Write|NotebookEdit|WebFetch".into();
    assert_eq!(
        settings,
        serde_json::json!({"hooks": {
            "Notification": hook("notification", 30),
            "Stop": hook("stop", 30),
            "PreToolUse": held,
        }})
    );
    let recorded = got
        .details
        .settings
        .iter()
        .find(|s| s.name == "--settings")
        .unwrap();
    assert_eq!(recorded.value.as_deref(), Some(got.argv[at + 1].as_str()));
    assert!(
        recorded.purpose.contains("PreToolUse"),
        "{}",
        recorded.purpose
    );
    // Without the helper in the cage, nothing is wired.
    case.hook_wait_secs = None;
    assert!(!case.run().argv.iter().any(|a| a == "--settings"));
}

#[test]
fn codex_notify_runs_kaged_s_helper() {
    let mut case = Case::new(&["codex", "exec", "hi"], Some("coder"), &["shell"]);
    case.hook_wait_secs = Some(600);
    let got = case.run();
    let at = got
        .argv
        .iter()
        .position(|a| a.starts_with("notify="))
        .unwrap();
    assert_eq!(got.argv[at - 1], "-c");
    assert_eq!(
        got.argv[at],
        r#"notify=["/run/kaged-agent/kaged","__hook","codex-notify"]"#
    );
    assert!(got.details.settings.iter().any(|s| s.name == "-c notify"));
}
