//! Agent adapters: a declared agent whose program is `claude`, `codex` or `opencode` gets its
//! project declarations (`model`, `system_prompt`, `tools`) and its cage (the egress gateway's
//! provider URL and dummy key, where its state lives) turned into that CLI's own flags,
//! variables and configuration, and its auto-updater and telemetry turned off. Those requests
//! would otherwise be denied egress on every start.
//!
//! [`adapt`] is pure: it is handed the declarations, local.toml's aliases, the cage and the
//! prompt's text, and returns the argv, the variables and a record of each setting and of each
//! declaration the CLI cannot honour. Nothing is dropped without a line in that record, which
//! the session's origin carries to the API and the UI. Secrets never reach it: the one key it
//! sees is the cage's dummy, and it is never shown.

mod claude;
mod codex;
mod opencode;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::Path;

use kaged_api::{
    AdapterSetting, AgentAdapter, AgentCli, AgentSpec, CagePolicy, Network, NotHonoured,
    PortablePath, SettingKind, State,
};

/// The most of a system prompt an adapter passes on; a prompt is instructions, not a corpus.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// What an adapter is given.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub spec: &'a AgentSpec,
    /// local.toml's `[models]`: alias → `provider:model`.
    pub models: &'a BTreeMap<String, String>,
    /// The cage's policy; `None` runs uncaged (`cage: disabled` or `--no-sandbox`).
    pub cage: Option<&'a CagePolicy>,
    /// The providers the cage's egress gateway routes (local.toml providers with an upstream).
    pub gateway_providers: &'a [String],
    /// The relay's port inside the cage.
    pub egress_port: u16,
    /// The cage's stand-in for provider keys.
    pub dummy_key: &'a str,
    /// `$HOME` inside the cage.
    pub cage_home: &'a str,
    /// Where the CLI starts: the project root when a grant shows it, else the cage's home.
    pub workdir: &'a str,
    /// The system prompt's text, or why it could not be read.
    pub prompt: Option<&'a Result<String, String>>,
    /// The prompt file's path as the cage sees it (project paths keep their host path), when a
    /// grant makes it visible there.
    pub prompt_in_cage: Option<&'a str>,
    /// The cage has kaged's hook helper and agent socket: the CLI's hooks are wired to it, and
    /// a held tool call waits at most this many seconds for the operator.
    pub hook_wait_secs: Option<u64>,
}

/// What an adapter made of a declared agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapted {
    /// The command to run: the declared one with the adapter's arguments after the program.
    pub argv: Vec<String>,
    /// Variables set in the CLI's environment, replacing any of the same name.
    pub env: Vec<(String, String)>,
    pub details: AgentAdapter,
}

/// The CLI a declared command runs, by its program's file name.
pub fn recognise(argv: &[String]) -> Option<AgentCli> {
    let program = argv.first()?;
    let name = Path::new(program).file_name()?.to_str()?;
    [AgentCli::Claude, AgentCli::Codex, AgentCli::Opencode]
        .into_iter()
        .find(|cli| cli.program() == name)
}

/// Adapts a declared agent whose command is `argv`.
pub fn adapt(argv: &[String], input: &Input<'_>) -> Adapted {
    let Some(cli) = recognise(argv) else {
        return unknown(argv, input);
    };
    let mut out = Out::default();
    let target = resolve_model(cli, input, &mut out);
    let route = route(cli, input, target.as_ref(), &mut out);
    let ctx = Ctx {
        input,
        declared: argv,
        model: target.as_ref().map(|t| t.model.as_str()),
        route,
        home: input.cage.map(|c| Home {
            dir: input.cage_home,
            persistent: c.state == State::Persistent,
        }),
    };
    match cli {
        AgentCli::Claude => claude::configure(&ctx, &mut out),
        AgentCli::Codex => codex::configure(&ctx, &mut out),
        AgentCli::Opencode => opencode::configure(&ctx, &mut out),
    }
    if let Some(Err(why)) = input.prompt {
        out.refuse(prompt_declaration(input), why.clone());
    }
    let mut full = out.wrapper.take().unwrap_or_default();
    full.extend(argv.first().cloned());
    full.extend(out.args);
    full.extend(argv.iter().skip(1).cloned());
    Adapted {
        argv: full.clone(),
        env: out.env,
        details: AgentAdapter {
            cli: Some(cli),
            model: target.as_ref().map(|t| t.model.clone()),
            provider: match &ctx.route {
                Route::Gateway { provider, .. } => Some(provider.clone()),
                Route::Direct | Route::Offline | Route::None => None,
            },
            state: ctx.home.as_ref().map(|h| {
                let dir = match cli {
                    AgentCli::Claude => claude::state_dir(h.dir),
                    AgentCli::Codex => codex::state_dir(h.dir),
                    AgentCli::Opencode => opencode::state_dir(h.dir),
                };
                format!("{dir} ({})", h.describe())
            }),
            argv: full,
            settings: out.settings,
            not_honoured: out.not_honoured,
        },
    }
}

/// A CLI kaged has no adapter for runs as declared; every declaration it would have needed is
/// listed as not honoured, so none disappears silently.
fn unknown(argv: &[String], input: &Input<'_>) -> Adapted {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let reason = format!(
        "kaged has no adapter for `{program}` (it has one for claude, codex and opencode), so \
         the command runs as declared, with only the cage's proxy variables and provider base \
         URLs; pass the setting in the command itself"
    );
    let spec = input.spec;
    let mut not_honoured = Vec::new();
    if let Some(alias) = &spec.model {
        not_honoured.push(NotHonoured {
            declaration: format!("model: {alias}"),
            reason: reason.clone(),
        });
    }
    if spec.system_prompt.is_some() {
        not_honoured.push(NotHonoured {
            declaration: prompt_declaration(input),
            reason: reason.clone(),
        });
    }
    for tool in &spec.tools {
        not_honoured.push(NotHonoured {
            declaration: format!("tools: {tool}"),
            reason: reason.clone(),
        });
    }
    Adapted {
        argv: argv.to_vec(),
        env: Vec::new(),
        details: AgentAdapter {
            cli: None,
            model: None,
            provider: None,
            state: None,
            argv: argv.to_vec(),
            settings: Vec::new(),
            not_honoured,
        },
    }
}

fn prompt_declaration(input: &Input<'_>) -> String {
    match &input.spec.system_prompt {
        Some(p) => format!("system_prompt: {p}"),
        None => "system_prompt".to_owned(),
    }
}

/// The model an alias names.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    provider: String,
    model: String,
}

/// The provider each CLI speaks to when an alias names none (`fast = "claude-haiku"`).
fn default_provider(cli: AgentCli) -> &'static str {
    match cli {
        AgentCli::Claude => "anthropic",
        AgentCli::Codex | AgentCli::Opencode => "openai",
    }
}

fn resolve_model(cli: AgentCli, input: &Input<'_>, out: &mut Out) -> Option<Target> {
    let alias = input.spec.model.as_ref()?;
    let Some(id) = input.models.get(alias) else {
        out.refuse(
            format!("model: {alias}"),
            format!(
                "local.toml defines no alias `{alias}` under [models]; the operator adds \
                 `{alias} = \"provider:model\"` there, and until then the CLI uses its own \
                 default model"
            ),
        );
        return None;
    };
    let (provider, model) = match id.split_once(':') {
        Some((p, m)) if !p.is_empty() && !m.is_empty() => (p.to_owned(), m.to_owned()),
        _ => (default_provider(cli).to_owned(), id.clone()),
    };
    // Each CLI speaks one wire protocol; a provider of the other kind cannot serve it.
    let mismatch = match (cli, provider.as_str()) {
        (AgentCli::Claude, "openai") => Some("Claude Code speaks only Anthropic's Messages API"),
        (AgentCli::Codex, "anthropic") => Some("Codex speaks only OpenAI's Responses API"),
        _ => None,
    };
    if let Some(why) = mismatch {
        out.refuse(
            format!("model: {alias}"),
            format!(
                "`{alias}` is `{id}` in local.toml, but {why}; map the alias to a model of a \
                 provider it speaks to, or run this agent with another CLI"
            ),
        );
        return None;
    }
    Some(Target { provider, model })
}

/// How the CLI reaches its model provider from this cage.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    /// Through the cage's egress gateway, which adds the real key.
    Gateway {
        provider: String,
        base_url: String,
        dummy_key: String,
    },
    /// Uncaged or on the host's network: the CLI talks to its provider itself, with whatever
    /// key it finds; kaged sets none.
    Direct,
    /// `network: none`: nothing is reachable.
    Offline,
    /// A filtered cage whose provider is not routed by the gateway (already explained).
    None,
}

fn route(cli: AgentCli, input: &Input<'_>, target: Option<&Target>, out: &mut Out) -> Route {
    let provider = target.map_or(default_provider(cli), |t| t.provider.as_str());
    let Some(cage) = input.cage else {
        return Route::Direct;
    };
    match &cage.network {
        Network::Filtered(_) => {
            if input.gateway_providers.iter().any(|p| p == provider) {
                Route::Gateway {
                    provider: provider.to_owned(),
                    base_url: format!("http://127.0.0.1:{}/p/{provider}", input.egress_port),
                    dummy_key: input.dummy_key.to_owned(),
                }
            } else {
                out.refuse(
                    format!("provider {provider}"),
                    format!(
                        "local.toml declares no provider `{provider}` the egress gateway can \
                         route, so the CLI cannot reach its model; the operator adds \
                         [providers.{provider}] with api_key_env (and base_url unless it is \
                         anthropic or openai)"
                    ),
                );
                Route::None
            }
        }
        Network::None => {
            out.refuse(
                "cage.network: none".to_owned(),
                format!(
                    "the cage has no network, so the CLI cannot reach its provider \
                     `{provider}`; declare `network: {{allow: []}}` to reach it through the \
                     cage's egress gateway, which adds the key"
                ),
            );
            Route::Offline
        }
        Network::Host => {
            out.refuse(
                "cage.network: host".to_owned(),
                "the cage shares the host's network, so there is no egress gateway to add the \
                 provider's key: the CLI talks to its provider directly and needs its own key. \
                 Declare `network: {allow: []}` so the key never enters the cage"
                    .to_owned(),
            );
            Route::Direct
        }
    }
}

/// Where the CLI's home is, for its state.
#[derive(Debug, Clone, Copy)]
struct Home<'a> {
    dir: &'a str,
    persistent: bool,
}

impl Home<'_> {
    fn describe(&self) -> &'static str {
        if self.persistent {
            "the project's persistent cage home, kept across sessions"
        } else {
            "the cage's scratch home, gone when the session ends"
        }
    }
}

/// What each CLI's `configure` reads.
struct Ctx<'a> {
    input: &'a Input<'a>,
    /// The command as declared.
    declared: &'a [String],
    model: Option<&'a str>,
    route: Route,
    home: Option<Home<'a>>,
}

impl Ctx<'_> {
    fn prompt(&self) -> Option<(&PortablePath, &str)> {
        match (&self.input.spec.system_prompt, self.input.prompt) {
            (Some(path), Some(Ok(text))) => Some((path, text.as_str())),
            _ => None,
        }
    }
}

/// What an adapter accumulates.
#[derive(Debug, Default)]
struct Out {
    /// A program and arguments that run first and then exec the CLI (`sh -c '...; exec "$@"'`).
    wrapper: Option<Vec<String>>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    settings: Vec<AdapterSetting>,
    not_honoured: Vec<NotHonoured>,
}

impl Out {
    fn env(&mut self, name: &str, value: &str, shown: bool, purpose: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self.settings.push(AdapterSetting {
            kind: SettingKind::Env,
            name: name.to_owned(),
            value: shown.then(|| value.to_owned()),
            purpose: purpose.to_owned(),
        });
    }

    /// Adds `args`; the record shows them under `name` with `value` when it may be shown.
    fn flag(&mut self, args: &[&str], name: &str, value: Option<&str>, purpose: &str) {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self.settings.push(AdapterSetting {
            kind: SettingKind::Flag,
            name: name.to_owned(),
            value: value.map(str::to_owned),
            purpose: purpose.to_owned(),
        });
    }

    fn config(&mut self, name: &str, value: Option<&str>, purpose: &str) {
        self.settings.push(AdapterSetting {
            kind: SettingKind::Config,
            name: name.to_owned(),
            value: value.map(str::to_owned),
            purpose: purpose.to_owned(),
        });
    }

    fn refuse(&mut self, declaration: String, reason: String) {
        self.not_honoured.push(NotHonoured {
            declaration,
            reason,
        });
    }
}

/// The command a CLI's hook runs for `event`: kaged's binary in the cage as the helper.
fn hook_command(event: kaged_api::hook::HookEvent) -> Vec<String> {
    vec![
        kaged_sandbox::AGENT_HOOK.to_owned(),
        kaged_api::hook::HOOK_ARG.to_owned(),
        event.name().to_owned(),
    ]
}

/// The kaged tool vocabulary of the project file, as each adapter maps it.
const TOOL_NAMES: &str = "shell, read, edit, write, web";

/// Whether `path` (a `project:/` path) is visible in a cage with `policy`'s grants.
pub fn visible_in_cage(policy: &CagePolicy, path: &PortablePath) -> bool {
    let target = Path::new(path.relative());
    policy
        .fs
        .iter()
        .any(|g| target.starts_with(Path::new(g.path.relative())))
}

/// Reads a system prompt file beneath the project root: no symlink anywhere on the way and no
/// `..` out of it, so a project cannot point its prompt at the operator's files and have
/// kaged hand them to the cage. Errors are the reason, for the session's record.
pub fn read_prompt(root: &Path, path: &PortablePath) -> Result<String, String> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
    let rel = path.relative();
    let open = |dir: std::os::fd::BorrowedFd<'_>, p: &Path, flags: OFlag| {
        openat2(
            dir,
            p,
            OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
                .resolve(
                    ResolveFlag::RESOLVE_BENEATH
                        | ResolveFlag::RESOLVE_NO_SYMLINKS
                        | ResolveFlag::RESOLVE_NO_MAGICLINKS,
                ),
        )
    };
    let fail = |why: String| format!("cannot read {path} ({}): {why}", root.join(rel).display());
    // The root is the operator's registered path, as it resolves; what is beneath it is the
    // project's, and must stay beneath it.
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fail(e.to_string()))?;
    // Non-blocking, so a FIFO in the prompt's place cannot hang the start; it is then refused
    // as no regular file.
    let fd = open(
        root_fd.as_fd(),
        Path::new(rel),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK,
    )
    .map_err(|e| {
        fail(format!(
            "{e}; it must be a regular file inside the project, reached without symlinks"
        ))
    })?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_PROMPT_BYTES as u64 {
        return Err(fail(format!(
            "{} bytes, more than the {MAX_PROMPT_BYTES} an adapter passes on; shorten it",
            meta.len()
        )));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(&file, MAX_PROMPT_BYTES as u64),
        &mut text,
    )
    .map_err(|e| fail(format!("{e} (it must be UTF-8 text)")))?;
    Ok(text)
}

/// A TOML basic string: JSON's string escapes are all valid TOML, and serde_json escapes no
/// `/`, the one JSON escape TOML lacks.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests;
