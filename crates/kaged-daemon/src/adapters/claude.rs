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
            out.env(
                "ANTHROPIC_API_KEY",
                dummy_key,
                false,
                "a stand-in key; the gateway swaps in the real one on the way out",
            );
        }
        Route::Direct | Route::Offline | Route::None => {}
    }
    if let Some(home) = &ctx.home {
        let dir = state_dir(home.dir);
        out.env("CLAUDE_CONFIG_DIR", &dir, true, home.describe());
    }
    for (name, purpose) in [
        ("DISABLE_AUTOUPDATER", "no auto-updater"),
        ("DISABLE_TELEMETRY", "no telemetry"),
        ("DISABLE_ERROR_REPORTING", "no error reporting"),
        (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "no release notes, surveys or other non-essential requests",
        ),
    ] {
        out.env(name, "1", true, purpose);
    }
}
