//! The real agent CLIs, caged: Claude Code and Codex run as declared agents of a project whose
//! cage has `network: {allow: []}`, exactly as `examples/projects/agent-cli` ships. Their
//! adapters point them at the egress gateway, which adds the real key on the way to a scripted
//! fake provider ([`crate::fixture::llm`]); the model asks to run a shell command and to write
//! a file, then finishes. The command also probes the cage for the key and tries a host the
//! policy does not allow.
//!
//! The CLIs are the npm packages pinned in `tests/agents/package-lock.json`, which `./dev test`
//! installs and names in `KAGED_TEST_AGENT_BIN`. Without it these tests say loudly that they
//! skip, unless `CI=true`, where a missing CLI fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kaged_api::{
    AgentCli, AuditPage, EgressConnection, EgressDecision, EgressVia, SessionInfo, SessionState,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::fixture::llm::{Api, FakeLlm, Script};
use crate::fixture::{TestDaemon, daemon, eventually, project_dir};

/// Never written contiguously into anything the cage runs: the probe rebuilds them from halves.
pub(super) const ANTHROPIC_KEY: [&str; 2] = ["sk-ant-api03-agentstest", "-REALKEY-51d87f3a9c2e"];
pub(super) const OPENAI_KEY: [&str; 2] = ["sk-proj-agentstest", "-REALKEY-9c2e51d87f3a"];

/// The CLI's native binary, or `None` (with a loud message) when the test CLIs are not
/// installed and this is not CI.
pub(super) fn agent_binary(cli: &str) -> Option<PathBuf> {
    match std::env::var_os("KAGED_TEST_AGENT_BIN") {
        Some(dir) => {
            let path = Path::new(&dir).join(cli);
            let real = std::fs::canonicalize(&path).unwrap_or_else(|e| {
                panic!(
                    "KAGED_TEST_AGENT_BIN names {}, but {} is not there ({e}); run ./dev test, \
                     which installs tests/agents into target/agents",
                    Path::new(&dir).display(),
                    path.display()
                )
            });
            Some(real)
        }
        None if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "KAGED_TEST_AGENT_BIN is unset under CI=true, so the real {cli} CLI cannot be \
             tested; ./dev test installs it (tests/agents) and sets the variable"
        ),
        None => {
            // Straight to the terminal: libtest hides what a passing test prints.
            let _ = writeln!(
                std::io::stderr(),
                "\n\n******** SKIPPED: the real `{cli}` CLI is not installed ********\n\
                 KAGED_TEST_AGENT_BIN is unset. `./dev test` installs the pinned CLIs from \
                 tests/agents into target/agents and sets it; to run this test by hand, run \
                 ./dev test once and then\n  KAGED_TEST_AGENT_BIN=$PWD/target/agents/bin cargo \
                 test -p kaged --test all -- suite::agents\n\n"
            );
            None
        }
    }
}

/// The probe the scripted model asks the CLI to run in its cage: a proof it ran, where each
/// real key is seen (nowhere, it must be), and a request to a host the policy does not allow.
pub(super) fn probe(project: &Path) -> String {
    let [a1, a2] = ANTHROPIC_KEY;
    let [o1, o2] = OPENAI_KEY;
    let p = project.display();
    format!(
        "echo ran-in-cage > shell-proof.txt; A1='{a1}'; A2='{a2}'; O1='{o1}'; O2='{o2}'; \
         for K in \"$A1$A2\" \"$O1$O2\"; do \
           echo env=$(env | grep -cF -- \"$K\") \
             environ=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -cF -- \"$K\") \
             files=$(grep -rlsF --exclude-dir=.agent-bin -- \"$K\" /home/cage /tmp /run /etc {p} 2>/dev/null | wc -l); \
         done > leak-probe.txt; \
         curl -sS -m 20 https://blocked.example/ > denied-body.txt 2>&1; true"
    )
}

/// Terminal output as words: a TUI moves the cursor between them instead of printing spaces.
fn screen_text(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI (`ESC [ ... final`) and OSC (`ESC ] ... BEL`) sequences.
            match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            break;
                        }
                    }
                }
                Some(']') => {
                    for c in chars.by_ref() {
                        if c == '\x07' {
                            break;
                        }
                    }
                }
                _ => {}
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Approves every tool call held for the operator: these runs are about the cage, and the
/// approvals have their own tests (`suite::hooks`).
pub(super) fn approve_all(d: &TestDaemon, s: &crate::fixture::Session) {
    let list: kaged_api::ApprovalList = d.get_as(s, "/api/v1/approvals").json_as();
    for a in list.approvals {
        let r = d.post(
            s,
            &format!("/api/v1/approvals/{}", a.id),
            &json!({"verdict": "approve"}),
        );
        // Gone meanwhile (answered, or its run ended) is fine.
        assert!(matches!(r.status, 200 | 404 | 409), "{}", r.body);
    }
}

struct Run {
    d: TestDaemon,
    s: crate::fixture::Session,
    llm: FakeLlm,
    project: tempfile::TempDir,
    info: SessionInfo,
    transcript: String,
}

/// How the test drives the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The task is in the command (`claude -p`, `codex exec`); the CLI ends by itself.
    OneShot,
    /// The CLI's own terminal UI: the test types the task on the PTY once the UI is up
    /// (`ready` is in its output), waits for the script to finish, then ends the session.
    Interactive { ready: &'static str },
}

/// A daemon whose operator has both real keys and both providers pointed at the fake one
/// (trusting its test CA, written to `ca_file`), with `bin_dir` first on its `PATH`.
pub(super) fn provider_daemon(
    llm: &FakeLlm,
    ca_file: &Path,
    bin_dir: &Path,
) -> crate::fixture::Builder {
    std::fs::write(ca_file, &llm.ca_pem).unwrap();
    let port = llm.port;
    daemon()
        .env("ANTHROPIC_API_KEY", &ANTHROPIC_KEY.concat())
        .env("OPENAI_API_KEY", &OPENAI_KEY.concat())
        .env(
            "PATH",
            &format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
        )
        .local_toml(&format!(
            "[models]\nsmart = \"anthropic:claude-sonnet-4-5\"\ncoder = \"openai:gpt-5.1-codex\"\n\n\
             [providers.anthropic]\napi_key_env = \"ANTHROPIC_API_KEY\"\nbase_url = \"https://localhost:{port}\"\n\n\
             [providers.openai]\napi_key_env = \"OPENAI_API_KEY\"\nbase_url = \"https://localhost:{port}/v1\"\n\n\
             [egress]\nallow_private = [\"localhost:{port}\"]\nextra_ca_file = \"{}\"\n",
            ca_file.display()
        ))
}

/// Runs `command` as the project's primary agent, to its end.
fn run_agent(cli: &str, binary: &Path, command: &[&str], model: &str, mode: Mode) -> Run {
    let project = project_dir("version: 1\nproject: placeholder\n");
    let root = std::fs::canonicalize(project.path()).unwrap();
    // The CLI's binary in the project, where the cage can see it: a hard link, as the test
    // project and target/ share a filesystem here; a copy where they do not.
    let bin_dir = root.join(".agent-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let target = bin_dir.join(cli);
    if std::fs::hard_link(binary, &target).is_err() {
        std::fs::copy(binary, &target).unwrap();
    }
    std::fs::create_dir_all(root.join(".kaged/prompts")).unwrap();
    std::fs::write(
        root.join(".kaged/prompts/primary.md"),
        "You work on this repository. Keep changes small.\n",
    )
    .unwrap();
    let argv: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
    std::fs::write(
        root.join(".kaged/project.yaml"),
        format!(
            "version: 1\nproject: agents\nprimary:\n  model: {model}\n  \
             system_prompt: project:/.kaged/prompts/primary.md\n  command: [{}]\n  \
             tools: [shell, read, write]\n  cage:\n    network: {{allow: []}}\n    \
             state: persistent\n    env: [TERM, PATH]\n",
            argv.join(", ")
        ),
    )
    .unwrap();
    let llm = FakeLlm::start(
        &ANTHROPIC_KEY.concat(),
        &OPENAI_KEY.concat(),
        Script {
            workdir: Some(root.clone()),
            shell: probe(&root),
            file: "edited-by-agent.txt".into(),
            content: "written by the caged agent\n".into(),
            finish: "All done: the scripted task is finished.".into(),
        },
    );
    let ca_file = root.join("..").join(format!(
        "{}-ca.pem",
        root.file_name().unwrap().to_string_lossy()
    ));
    let d = provider_daemon(&llm, &ca_file, &bin_dir).start();
    let s = d.login();
    let r = d.post(&s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.post(
        &s,
        "/api/v1/projects/agents/sessions",
        &json!({"agent": "primary", "cols": 200, "rows": 50}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json_as::<SessionInfo>().id;
    let transcript_now = || {
        d.get_as(&s, &format!("/api/v1/sessions/{id}/transcript"))
            .body
            .replace("\r\n", "\n")
    };
    if let Mode::Interactive { ready } = mode {
        eventually(Duration::from_secs(120), || {
            let t = transcript_now();
            t.contains(ready)
                .then_some(())
                .ok_or_else(|| format!("the CLI's UI is not up:\n{t}"))
        });
        let input = |data: &str| {
            let r = d.post(
                &s,
                &format!("/api/v1/sessions/{id}/input"),
                &json!({ "data": data }),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        };
        input("Do the scripted task.");
        std::thread::sleep(Duration::from_millis(500));
        input("\r");
        eventually(Duration::from_secs(120), || {
            approve_all(&d, &s);
            let seen = llm.seen();
            seen.iter()
                .any(|r| r.step == "finish")
                .then_some(())
                .ok_or_else(|| {
                    format!("the script did not finish: {seen:#?}\n{}", transcript_now())
                })
        });
        // The last turn's text reaches the screen a moment after the provider sent it.
        eventually(Duration::from_secs(30), || {
            let t = screen_text(&transcript_now());
            t.contains("All done: the scripted task is finished.")
                .then_some(())
                .ok_or_else(|| format!("no final text on the terminal:\n{t}"))
        });
        let r = d.delete(&s, &format!("/api/v1/sessions/{id}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let info: SessionInfo = eventually(Duration::from_secs(240), || {
        approve_all(&d, &s);
        let v: SessionInfo = d.get_as(&s, &format!("/api/v1/sessions/{id}")).json_as();
        (v.state == SessionState::Exited)
            .then_some(v.clone())
            .ok_or_else(|| format!("{v:?}"))
    });
    let transcript = transcript_now();
    let _ = std::fs::remove_file(&ca_file);
    Run {
        d,
        s,
        llm,
        project,
        info,
        transcript,
    }
}

/// What every CLI's run must show: the script played through the gateway with the real key,
/// the edit landed, the disallowed host was denied and audited, and the key is nowhere it must
/// not be.
fn check_run(run: &Run, api: Api, mode: Mode) {
    let Run {
        d,
        s,
        llm,
        project,
        info,
        transcript,
    } = run;
    let root = std::fs::canonicalize(project.path()).unwrap();
    let id = &info.id;
    assert!(info.origin.cage.is_caged(), "{:?}", info.origin.cage);
    if mode == Mode::OneShot {
        assert_eq!(info.exit_code, Some(0), "the CLI failed:\n{transcript}");
        assert!(
            transcript.contains("All done: the scripted task is finished."),
            "{transcript}"
        );
    }
    // The conversation reached the provider only through the gateway, always with the real
    // key, and played the whole script.
    let seen = llm.seen();
    assert!(
        seen.iter().all(|r| r.key_ok && r.api == api),
        "a request without the real key, or to another API: {seen:#?}"
    );
    let steps: Vec<&str> = seen
        .iter()
        .map(|r| r.step)
        .filter(|s| ["shell", "edit", "finish"].contains(s))
        .collect();
    assert_eq!(steps, vec!["shell", "edit", "finish"], "{seen:#?}");
    // The shell command ran in the cage, and the edit landed in the project.
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
    assert_eq!(read("shell-proof.txt"), "ran-in-cage\n", "{transcript}");
    assert_eq!(
        read("edited-by-agent.txt"),
        "written by the caged agent\n",
        "{transcript}"
    );
    // Neither key in the cage's environment, any process's environ, or a file it can read.
    assert_eq!(
        read("leak-probe.txt"),
        "env=0 environ=0 files=0\nenv=0 environ=0 files=0\n",
        "{transcript}"
    );
    // The disallowed host was refused with a body that says why, and audited; every egress
    // row is the provider route or a denial.
    let denied_body = read("denied-body.txt");
    assert!(denied_body.contains("403"), "{denied_body}");
    let page: AuditPage = eventually(Duration::from_secs(10), || {
        let page: AuditPage = d
            .get_as(
                s,
                &format!("/api/v1/audit?type=egress.&session_id={id}&limit=500"),
            )
            .json_as();
        let rows: Vec<EgressConnection> = page
            .events
            .iter()
            .map(|r| serde_json::from_value(r.data.clone()).unwrap())
            .collect();
        rows.iter()
            .any(|c| c.host == "blocked.example" && c.decision == EgressDecision::Denied)
            .then_some(page.clone())
            .ok_or_else(|| format!("no denial of blocked.example: {rows:#?}"))
    });
    let rows: Vec<EgressConnection> = page
        .events
        .iter()
        .map(|r| serde_json::from_value(r.data.clone()).unwrap())
        .collect();
    let denied: Vec<&str> = rows
        .iter()
        .filter(|c| c.decision == EgressDecision::Denied)
        .map(|c| c.host.as_str())
        .collect();
    // The adapters turned off every update check, telemetry and sync the CLIs would
    // otherwise try at start: the only denial is the scripted one.
    assert_eq!(denied, vec!["blocked.example"], "{rows:#?}");
    assert!(
        rows.iter().any(|c| c.via == EgressVia::Provider
            && c.decision == EgressDecision::Allowed
            && c.host == "localhost"),
        "{rows:#?}"
    );
    for c in &rows {
        assert!(
            c.via == EgressVia::Provider || c.decision == EgressDecision::Denied,
            "egress other than the provider route got through: {c:?}"
        );
    }
    // Host side: the audit log, the daemon's log, the transcript, the session record and
    // every file under the daemon's directories (database, transcripts, the persistent cage
    // home) hold neither key.
    let audit = d.get_as(s, "/api/v1/audit?limit=1000").body;
    let session = d.get_as(s, &format!("/api/v1/sessions/{id}")).body;
    for key in [ANTHROPIC_KEY.concat(), OPENAI_KEY.concat()] {
        assert!(!audit.contains(&key), "a key is in the audit log");
        assert!(!d.stderr().contains(&key), "a key is in the daemon's log");
        assert!(!transcript.contains(&key), "a key is in the transcript");
        assert!(!session.contains(&key), "a key is in the session record");
        assert!(!denied_body.contains(&key), "a key is in an error body");
        let out = std::process::Command::new("grep")
            .args(["-rlsF", "--exclude-dir=.agent-bin", "--", &key])
            .arg(d.dir.path())
            .arg(&root)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "",
            "files on the host hold a key"
        );
    }
}

#[test]
fn claude_code_runs_caged_reaches_its_provider_only_through_the_gateway_and_never_holds_the_key() {
    let Some(bin) = agent_binary("claude") else {
        return;
    };
    let run = run_agent(
        "claude",
        &bin,
        &["claude", "-p", "Do the scripted task."],
        "smart",
        Mode::OneShot,
    );
    check_run(&run, Api::Anthropic, Mode::OneShot);
    // The adapter's record: what it set, by name, and what it could not honour.
    let agent = run.info.origin.agent.clone().expect("an adapter record");
    assert_eq!(
        (agent.cli, agent.model.as_deref(), agent.provider.as_deref()),
        (
            Some(AgentCli::Claude),
            Some("claude-sonnet-4-5"),
            Some("anthropic")
        )
    );
    let names: Vec<&str> = agent.settings.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "--model",
            "--append-system-prompt",
            "--tools",
            "--allowedTools",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_API_KEY",
            "CLAUDE_CONFIG_DIR",
            "--settings",
            "DISABLE_AUTOUPDATER",
            "DISABLE_TELEMETRY",
            "DISABLE_ERROR_REPORTING",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL",
        ]
    );
    assert_eq!(agent.not_honoured, vec![]);
    // Its state went to the project's persistent cage home.
    let scratch = run
        .d
        .home()
        .join(".local/share/kaged/scratch/agents/.claude");
    assert!(
        scratch.is_dir(),
        "no Claude Code state in {}",
        scratch.display()
    );
}

#[test]
fn codex_runs_caged_reaches_its_provider_only_through_the_gateway_and_never_holds_the_key() {
    let Some(bin) = agent_binary("codex") else {
        return;
    };
    let run = run_agent(
        "codex",
        &bin,
        &[
            "codex",
            "exec",
            "--skip-git-repo-check",
            "Do the scripted task.",
        ],
        "coder",
        Mode::OneShot,
    );
    check_run(&run, Api::OpenAi, Mode::OneShot);
    let agent = run.info.origin.agent.clone().expect("an adapter record");
    assert_eq!(
        (agent.cli, agent.model.as_deref(), agent.provider.as_deref()),
        (Some(AgentCli::Codex), Some("gpt-5.1-codex"), Some("openai"))
    );
    // Codex cannot restrict its tools by name, and the record says so for each.
    let declared: Vec<&str> = agent
        .not_honoured
        .iter()
        .map(|n| n.declaration.as_str())
        .collect();
    assert_eq!(
        declared,
        vec!["tools: shell", "tools: read", "tools: write"]
    );
    let scratch = run
        .d
        .home()
        .join(".local/share/kaged/scratch/agents/.codex");
    assert!(scratch.is_dir(), "no Codex state in {}", scratch.display());
    // Codex has no hook that can hold a tool call; its `notify` says when a turn is done.
    let states: AuditPage = run
        .d
        .get_as(
            &run.s,
            &format!(
                "/api/v1/audit?session_id={}&type=agent.state&limit=100",
                run.info.id
            ),
        )
        .json_as();
    let rows: Vec<(String, String, String)> = states
        .events
        .iter()
        .rev()
        .map(|e| {
            let f = |k: &str| e.data[k].as_str().unwrap_or_default().to_owned();
            (f("status"), f("signal"), f("reason"))
        })
        .collect();
    let shape: Vec<(&str, &str)> = rows
        .iter()
        .map(|(st, sig, _)| (st.as_str(), sig.as_str()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("starting", "start"),
            ("working", "output"),
            ("waiting", "hook"),
            ("done", "exit")
        ],
        "{rows:#?}"
    );
    assert_eq!(rows[2].2, "All done: the scripted task is finished.");
}

#[test]
fn claude_code_works_interactively_on_the_pty_in_its_cage() {
    let Some(bin) = agent_binary("claude") else {
        return;
    };
    let mode = Mode::Interactive {
        ready: "? for shortcuts",
    };
    let run = run_agent("claude", &bin, &["claude"], "smart", mode);
    check_run(&run, Api::Anthropic, mode);
    // It ran past its first-run screens and the folder-trust dialog with the state its
    // adapter seeded in the cage, and asked nothing about the key.
    let agent = run.info.origin.agent.clone().expect("an adapter record");
    assert_eq!(agent.argv[0], "/bin/sh");
    let transcript = screen_text(&run.transcript);
    for screen in [
        "trust this folder",
        "Do you want to use this API key",
        "Unable to connect",
    ] {
        assert!(
            !transcript.contains(screen),
            "{screen:?} was shown:\n{transcript}"
        );
    }
}
