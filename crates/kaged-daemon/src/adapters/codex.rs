//! Codex (`codex`): everything through `-c key=value` overrides, which Codex applies on top
//! of `$CODEX_HOME/config.toml` in every subcommand (`exec` and the TUI alike), so no file
//! has to be written into the cage.

use super::{Ctx, Out, Route, toml_string};

/// The provider id kaged declares in Codex's `model_providers`.
const PROVIDER_ID: &str = "kaged";

/// Codex's state (sessions, logs, auth) under the cage's home: `~/.codex`, its default. kaged
/// does not set `CODEX_HOME`, which Codex refuses when the directory does not exist yet.
pub(super) fn state_dir(home: &str) -> String {
    format!("{home}/.codex")
}

pub(super) fn configure(ctx: &Ctx<'_>, out: &mut Out) {
    let mut config = |key: &str, value: String, shown: bool, purpose: &str| {
        let arg = format!("{key}={value}");
        out.flag(
            &["-c", &arg],
            &format!("-c {key}"),
            shown.then_some(value.as_str()),
            purpose,
        );
    };
    if let Some(model) = ctx.model {
        config("model", toml_string(model), true, "model");
    }
    if let Route::Gateway {
        provider, base_url, ..
    } = &ctx.route
    {
        let table = format!(
            "{{name={},base_url={},env_key=\"OPENAI_API_KEY\",wire_api=\"responses\"}}",
            toml_string(&format!("{provider} through kaged's egress gateway")),
            toml_string(base_url),
        );
        config(
            &format!("model_providers.{PROVIDER_ID}"),
            table,
            true,
            &format!("provider {provider} through the cage's egress gateway"),
        );
        config(
            "model_provider",
            toml_string(PROVIDER_ID),
            true,
            "use that provider",
        );
    }
    if ctx.input.hook_wait_secs.is_some() {
        // Codex runs `notify` with its JSON as one more argument at the end of each turn.
        let argv: Vec<String> = super::hook_command(kaged_api::hook::HookEvent::CodexNotify)
            .iter()
            .map(|a| toml_string(a))
            .collect();
        config(
            "notify",
            format!("[{}]", argv.join(",")),
            true,
            "hooks: the end of each turn sets the run's state (Codex has no permission hook \
             kaged can hold)",
        );
    }
    if let Some((path, text)) = ctx.prompt() {
        config(
            "developer_instructions",
            toml_string(text),
            false,
            &format!(
                "system_prompt {path} ({} bytes), after Codex's own instructions, which its \
                 tools need",
                text.len()
            ),
        );
    }
    if ctx.home.is_some() {
        // Codex's own sandbox would need namespaces the cage does not give it; the cage is
        // the sandbox, so Codex runs what it runs inside it.
        config(
            "sandbox_mode",
            toml_string("danger-full-access"),
            true,
            "the kaged cage is the sandbox; Codex's own cannot nest inside it",
        );
    }
    config(
        "check_for_update_on_startup",
        "false".to_owned(),
        true,
        "no update check",
    );
    config(
        "analytics.enabled",
        "false".to_owned(),
        true,
        "no analytics",
    );
    config(
        "feedback.enabled",
        "false".to_owned(),
        true,
        "no feedback uploads",
    );
    config(
        "features.plugins",
        "false".to_owned(),
        true,
        "no curated-plugin sync from github.com and chatgpt.com at start",
    );
    if let Route::Gateway { dummy_key, .. } = &ctx.route {
        out.env(
            "OPENAI_API_KEY",
            dummy_key,
            false,
            "a stand-in key; the gateway swaps in the real one on the way out",
        );
    }
    for tool in &ctx.input.spec.tools {
        let reason = if tool.starts_with("agent:") {
            "Codex cannot hand work to another kaged agent; start the child agent as a session \
             of its own"
                .to_owned()
        } else {
            "Codex cannot restrict its tools by name: it always has its shell and patch tools. \
             The cage's fs grants and network bound what they can reach"
                .to_owned()
        };
        out.refuse(format!("tools: {tool}"), reason);
    }
}
