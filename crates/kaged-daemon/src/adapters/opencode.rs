//! opencode (`opencode`): one JSON configuration document in `OPENCODE_CONFIG_CONTENT`, which
//! opencode merges over its config files, plus the variables that turn off what it would
//! otherwise fetch at start (updates, the models.dev catalogue, plugins, language servers).
//! opencode 1.18 still tries registry.npmjs.org once at start, whatever these say (a
//! background install of `@opencode-ai/plugin` into its config directory); the gateway denies
//! and audits it, and opencode runs on without it.

use serde_json::{Map, Value, json};

use super::{Ctx, Out, Route, TOOL_NAMES};

/// opencode keeps its state in the XDG directories, all under the cage's home.
pub(super) fn state_dir(home: &str) -> String {
    format!("{home}/.local/share/opencode")
}

/// opencode's tools for each tool of the project file's vocabulary. opencode gates `edit`,
/// `write` and `patch` with one permission (the last of the three keys in its `tools` map
/// decides for all), so `edit` and `write` each turn on all three; its edit also refuses a
/// file its read has not seen.
fn tools(tool: &str) -> Option<&'static [&'static str]> {
    Some(match tool {
        "shell" => &["bash"],
        "read" => &["read", "grep", "glob", "list"],
        "edit" | "write" => &["read", "edit", "write", "patch"],
        "web" => &["webfetch"],
        _ => return None,
    })
}

/// opencode's tools outside the project file's vocabulary, off whenever `tools` is declared:
/// subagents (`task`), skills, and its to-do list.
const UNDECLARABLE: [&str; 4] = ["task", "skill", "todowrite", "todoread"];

pub(super) fn configure(ctx: &Ctx<'_>, out: &mut Out) {
    let mut config = Map::new();
    config.insert("autoupdate".into(), json!(false));
    out.config("autoupdate", Some("false"), "no auto-updater");
    config.insert("share".into(), json!("disabled"));
    out.config(
        "share",
        Some("disabled"),
        "no sharing of sessions to opencode.ai",
    );
    if let Route::Gateway {
        provider,
        base_url,
        dummy_key,
    } = &ctx.route
    {
        // The AI SDK's Anthropic client wants the `/v1` in its base URL; the gateway's OpenAI
        // route already maps onto the upstream's `/v1`.
        let (base, key_env) = match provider.as_str() {
            "anthropic" => (Some(format!("{base_url}/v1")), "ANTHROPIC_API_KEY"),
            "openai" => (Some(base_url.clone()), "OPENAI_API_KEY"),
            _ => (None, ""),
        };
        match base {
            Some(base) => {
                config.insert(
                    "provider".into(),
                    json!({ provider.as_str(): { "options": {
                        "baseURL": base, "apiKey": format!("{{env:{key_env}}}") } } }),
                );
                out.config(
                    &format!("provider.{provider}.options.baseURL"),
                    Some(&base),
                    &format!("provider {provider} through the cage's egress gateway"),
                );
                out.env(
                    key_env,
                    dummy_key,
                    false,
                    "a stand-in key; the gateway swaps in the real one on the way out",
                );
            }
            None => out.refuse(
                format!("provider {provider}"),
                format!(
                    "kaged points opencode's `anthropic` and `openai` providers at the egress \
                     gateway, and cannot tell which API `{provider}` speaks; map the model \
                     alias to one of those two"
                ),
            ),
        }
    }
    if let Some(model) = ctx.model {
        let provider = match &ctx.route {
            Route::Gateway { provider, .. } => provider.as_str(),
            Route::Direct | Route::Offline | Route::None => "",
        };
        if !provider.is_empty() {
            let id = format!("{provider}/{model}");
            config.insert("model".into(), json!(id));
            out.config("model", Some(&id), "model");
        } else {
            out.refuse(
                format!("model: {model}"),
                "opencode names a model by its provider, and this cage reaches none through \
                 its egress gateway"
                    .to_owned(),
            );
        }
    }
    if let Some((path, _)) = ctx.prompt() {
        // opencode takes instructions as files; project paths keep their host path in a cage.
        match ctx.input.prompt_in_cage {
            Some(file) => {
                config.insert("instructions".into(), json!([file]));
                out.config(
                    "instructions",
                    Some(file),
                    &format!("system_prompt {path}, after opencode's own"),
                );
            }
            None => out.refuse(
                format!("system_prompt: {path}"),
                "opencode reads instructions from a file, and no fs grant of the cage shows \
                 this one; grant it (read-only is enough)"
                    .to_owned(),
            ),
        }
    }
    if !ctx.input.spec.tools.is_empty() {
        let mut enabled: Vec<&str> = Vec::new();
        for tool in &ctx.input.spec.tools {
            match tools(tool) {
                Some(names) => {
                    for name in names {
                        if !enabled.contains(name) {
                            enabled.push(name);
                        }
                    }
                }
                None if tool.starts_with("agent:") => out.refuse(
                    format!("tools: {tool}"),
                    "opencode's subagents run in its own process, inside this cage, not in the \
                     child agent's cage; start the child agent as a session of its own"
                        .to_owned(),
                ),
                None => out.refuse(
                    format!("tools: {tool}"),
                    format!("opencode has no tool for `{tool}`; kaged maps {TOOL_NAMES}"),
                ),
            }
        }
        let declared = &ctx.input.spec.tools;
        let has = |t: &str| declared.iter().any(|d| d == t);
        if has("edit") != has("write") {
            let (asked, also) = if has("edit") {
                ("edit", "write")
            } else {
                ("write", "edit")
            };
            out.refuse(
                format!("tools: {asked} (without {also})"),
                format!(
                    "opencode allows editing and writing files only together, so `{also}` is \
                     on too; the cage's fs grants bound what either can touch"
                ),
            );
        }
        let all = ["shell", "read", "edit", "web"]
            .into_iter()
            .filter_map(tools)
            .flatten()
            .chain(UNDECLARABLE.iter());
        let map: Map<String, Value> = all
            .map(|t| ((*t).to_owned(), json!(enabled.contains(t))))
            .collect();
        config.insert("tools".into(), Value::Object(map));
        out.config(
            "tools",
            Some(&enabled.join(",")),
            "tools: only the declared ones are on (subagents, skills and the to-do list off)",
        );
    }
    let document = Value::Object(config).to_string();
    out.env(
        "OPENCODE_CONFIG_CONTENT",
        &document,
        false,
        "the configuration keys above",
    );
    if let Some(home) = &ctx.home {
        for (name, sub) in [
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_STATE_HOME", ".local/state"),
            ("XDG_CACHE_HOME", ".cache"),
        ] {
            out.env(name, &format!("{}/{sub}", home.dir), true, home.describe());
        }
    }
    for (name, purpose) in [
        ("OPENCODE_DISABLE_AUTOUPDATE", "no auto-updater"),
        ("OPENCODE_DISABLE_SHARE", "no session sharing"),
        (
            "OPENCODE_DISABLE_MODELS_FETCH",
            "no download of the models.dev catalogue",
        ),
        (
            "OPENCODE_DISABLE_DEFAULT_PLUGINS",
            "no plugin installs from npm",
        ),
        (
            "OPENCODE_DISABLE_LSP_DOWNLOAD",
            "no language-server downloads",
        ),
    ] {
        out.env(name, "1", true, purpose);
    }
}
