//! Claude Code (`claude`): flags for the model, the prompt and the tools; variables for the
//! provider, its state and the traffic it would otherwise send home.

use super::{Ctx, Out, Route, TOOL_NAMES};

/// Claude Code's state (settings, `.claude.json`, transcripts) under the cage's home.
pub(super) fn state_dir(home: &str) -> String {
    format!("{home}/.claude")
}

/// Claude Code's built-in tools for each tool of the project file's vocabulary.
fn tools(tool: &str) -> Option<&'static [&'static str]> {
    Some(match tool {
        "shell" => &["Bash"],
        "read" => &["Read", "Glob", "Grep"],
        // Claude Code's Edit refuses a file its Read has not seen.
        "edit" => &["Read", "Edit"],
        "write" => &["Write"],
        "web" => &["WebFetch", "WebSearch"],
        _ => return None,
    })
}

pub(super) fn configure(ctx: &Ctx<'_>, out: &mut Out) {
    if let Some(model) = ctx.model {
        out.flag(&["--model", model], "--model", Some(model), "model");
    }
    if let Some((path, text)) = ctx.prompt() {
        out.flag(
            &["--append-system-prompt", text],
            "--append-system-prompt",
            None,
            &format!(
                "system_prompt {path} ({} bytes), after Claude Code's own, which its tools need",
                text.len()
            ),
        );
    }
    let mut allowed: Vec<&str> = Vec::new();
    for tool in &ctx.input.spec.tools {
        match tools(tool) {
            Some(names) => {
                for name in names {
                    if !allowed.contains(name) {
                        allowed.push(name);
                    }
                }
            }
            None if tool.starts_with("agent:") => out.refuse(
                format!("tools: {tool}"),
                "Claude Code's subagents run in its own process, inside this cage, not in the \
                 child agent's cage; start the child agent as a session of its own"
                    .to_owned(),
            ),
            None => out.refuse(
                format!("tools: {tool}"),
                format!("Claude Code has no tool for `{tool}`; kaged maps {TOOL_NAMES}"),
            ),
        }
    }
    if !ctx.input.spec.tools.is_empty() {
        let list = allowed.join(",");
        // `--tools` limits what exists; `--allowedTools` lets the declared ones run without
        // asking, which `-p` could not do at all.
        out.flag(
            &["--tools", &list],
            "--tools",
            Some(&list),
            "tools: only the declared ones exist",
        );
        if !allowed.is_empty() {
            out.flag(
                &["--allowedTools", &list],
                "--allowedTools",
                Some(&list),
                "tools: the declared ones run without a permission prompt",
            );
        }
    }
    match &ctx.route {
        Route::Gateway {
            provider,
            base_url,
            dummy_key,
        } => {
            out.env(
                "ANTHROPIC_BASE_URL",
                base_url,
                true,
                &format!("provider {provider} through the cage's egress gateway"),
            );
            // As a bearer token, which Claude Code uses without asking the operator first
            // (an `ANTHROPIC_API_KEY` needs approving in a dialog on every new dummy); the
            // gateway drops it either way and sends the real key.
            out.env(
                "ANTHROPIC_AUTH_TOKEN",
                dummy_key,
                false,
                "a stand-in key; the gateway swaps in the real one on the way out",
            );
            out.env(
                "ANTHROPIC_API_KEY",
                "",
                true,
                "empty instead of the gateway's generic stand-in, which Claude Code would ask \
                 the operator to approve",
            );
        }
        Route::Direct | Route::Offline | Route::None => {}
    }
    if let Some(home) = &ctx.home {
        let dir = state_dir(home.dir);
        out.env("CLAUDE_CONFIG_DIR", &dir, true, home.describe());
        let print = ctx.declared.iter().any(|a| a == "-p" || a == "--print");
        if !print {
            seed_first_run(ctx.input.workdir, out);
        }
    }
    if let Some(wait) = ctx.input.hook_wait_secs {
        wire_hooks(wait, out);
    }
    for (name, purpose) in [
        ("DISABLE_AUTOUPDATER", "no auto-updater"),
        ("DISABLE_TELEMETRY", "no telemetry"),
        ("DISABLE_ERROR_REPORTING", "no error reporting"),
        (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "no release notes, surveys or other non-essential requests",
        ),
        (
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL",
            "no plugin-marketplace install from github.com and downloads.claude.ai at start",
        ),
    ] {
        out.env(name, "1", true, purpose);
    }
}

/// The tools whose calls are held for the operator: those that run something or change files.
pub(super) const HELD_TOOLS: &str = "Bash|Edit|MultiEdit|Write|NotebookEdit|WebFetch";

/// Claude Code's hooks, through `--settings`, to kaged's helper and the agent socket:
/// notifications and the end of a turn set the run's state, and a tool call that runs
/// something or changes a file waits for the operator's answer. Claude Code kills a hook at its
/// `timeout`, so the held one gets the approval's wait and a margin.
fn wire_hooks(wait: u64, out: &mut Out) {
    use kaged_api::hook::HookEvent;
    let hook = |event: HookEvent, timeout: u64| {
        serde_json::json!({"type": "command", "command": super::hook_command(event).join(" "),
                           "timeout": timeout})
    };
    let settings = serde_json::json!({"hooks": {
        "Notification": [{"hooks": [hook(HookEvent::Notification, 30)]}],
        "Stop": [{"hooks": [hook(HookEvent::Stop, 30)]}],
        "PreToolUse": [{"matcher": HELD_TOOLS,
                        "hooks": [hook(HookEvent::PreToolUse, wait + 30)]}],
    }})
    .to_string();
    out.flag(
        &["--settings", &settings],
        "--settings",
        Some(&settings),
        &format!(
            "hooks: Notification and Stop set the run's state; PreToolUse holds {HELD_TOOLS}              for the operator's approval (up to {wait}s)"
        ),
    );
}

/// Interactive Claude Code starts with first-run screens whose connectivity check goes to
/// api.anthropic.com itself, around `ANTHROPIC_BASE_URL` (so the gateway denies it and the
/// screens never end), and with a dialog asking whether to trust the folder. A cage whose
/// state has no `.claude.json` yet gets one that has done both, for the folder the CLI starts
/// in: the operator declared this agent for this project, and the cage bounds what it can
/// reach. It is written inside the cage by `sh`, so nothing on the host follows a path the
/// cage controls; an existing file is left alone.
fn seed_first_run(workdir: &str, out: &mut Out) {
    let state = serde_json::json!({
        "hasCompletedOnboarding": true,
        "projects": { workdir: { "hasTrustDialogAccepted": true } },
    })
    .to_string();
    // `$1` is the file's text; the rest is the CLI's argv. `set -C` refuses to write through
    // anything that appeared at the path in the meantime.
    let script = "f=\"$CLAUDE_CONFIG_DIR/.claude.json\"; if [ ! -e \"$f\" ]; then mkdir -p \
                  \"$CLAUDE_CONFIG_DIR\" && (set -C; printf '%s' \"$1\" > \"$f\"); fi; shift; \
                  exec \"$@\"";
    out.wrapper = Some(vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "kaged-claude-first-run".to_owned(),
        state.clone(),
    ]);
    out.config(
        "$CLAUDE_CONFIG_DIR/.claude.json hasCompletedOnboarding",
        Some("true"),
        "no first-run screens, whose connectivity check would go around the gateway (written \
         only when the file does not exist yet)",
    );
    out.config(
        &format!("$CLAUDE_CONFIG_DIR/.claude.json projects.{workdir}.hasTrustDialogAccepted"),
        Some("true"),
        "no folder-trust dialog: the operator declared this agent for this project, and the \
         cage bounds what it reaches",
    );
}
