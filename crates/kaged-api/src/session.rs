//! Sessions (design §6): what a session is, where it came from, and the requests that start
//! and steer one.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::cage::{CagePolicy, CageSummary};
use crate::timestamp::Timestamp;
use crate::worktree::WorkspaceChoice;

/// Lifecycle of a session (design §6). Being attached is not a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Recorded on disk just before exec; a session still in this state after a restart never
    /// ran (the daemon died while starting it).
    Starting,
    Running,
    Exited,
}

/// Why a session ended, when something other than the process itself decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The process ended on its own.
    ProcessExited,
    /// An operator asked for it.
    Terminated,
    /// The session's walltime ran out.
    Walltime,
    /// The daemon shut down.
    Shutdown,
    /// The daemon died while the session ran; its exit status is unknown. Sessions of
    /// daemons without holders end this way.
    DaemonRestart,
    /// The session's holder (the process that keeps it alive across daemon restarts) died
    /// while no daemon ran, without recording an exit status.
    HolderLost,
}

/// What a daemon that stops gracefully does with running sessions (`sessions.on_stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum SessionsOnStop {
    /// Keep them, unless systemd is stopping the unit for good (a `stop` job; a `restart`
    /// keeps them): what the shipped units rely on.
    #[default]
    Auto,
    /// Leave them running in their holders; the next daemon adopts them.
    Keep,
    /// End them (SIGHUP, SIGTERM, SIGKILL to each) before exiting.
    End,
}

impl SessionsOnStop {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionsOnStop::Auto => "auto",
            SessionsOnStop::Keep => "keep",
            SessionsOnStop::End => "end",
        }
    }
}

impl std::fmt::Display for SessionsOnStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SessionsOnStop {
    type Err = crate::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(SessionsOnStop::Auto),
            "keep" => Ok(SessionsOnStop::Keep),
            "end" => Ok(SessionsOnStop::End),
            other => Err(crate::UnknownValue {
                what: "sessions.on_stop",
                value: other.to_owned(),
                expected: "`auto`, `keep` or `end`",
            }),
        }
    }
}

/// What kind of thing a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// The operator's login shell.
    Shell,
    /// An explicit argv from the request.
    Command,
    /// A declared agent of the project.
    Agent,
    /// A declared task of the project.
    Task,
}

/// Whether and how a session is caged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CageState {
    /// In a bubblewrap cage; the summary says what it can see and do.
    Caged { summary: Box<CageSummary> },
    /// The project file says `cage: disabled` for this agent or task (audited).
    DisabledByProject,
    /// The daemon runs with `--no-sandbox` (ADR-0009).
    NoSandbox,
}

impl CageState {
    pub fn is_caged(&self) -> bool {
        matches!(self, CageState::Caged { .. })
    }
}

/// Where a session came from: what was asked for and the cage it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SessionOrigin {
    pub kind: SessionKind,
    /// The agent's dotted name or the task's name.
    pub name: Option<String>,
    /// The command as declared or requested, before any cage wraps it.
    pub command: Vec<String>,
    pub cage: CageState,
    /// The run whose git worktree the session works in, when not the project's checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    /// For a declared agent: how its declarations reached its CLI. Absent for shells,
    /// commands, tasks, and sessions recorded before adapters existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentAdapter>,
}

/// An agent CLI kaged knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "lowercase")]
pub enum AgentCli {
    /// Anthropic's Claude Code (`claude`).
    Claude,
    /// OpenAI's Codex CLI (`codex`).
    Codex,
    /// opencode (`opencode`).
    Opencode,
}

impl AgentCli {
    /// The executable's name, which is how a declared command is recognised.
    pub fn program(self) -> &'static str {
        match self {
            AgentCli::Claude => "claude",
            AgentCli::Codex => "codex",
            AgentCli::Opencode => "opencode",
        }
    }
}

/// How a declared agent's `model`, `system_prompt`, `tools` and cage reached its CLI: what
/// kaged set, and what the CLI cannot honour. Nothing a project declares is dropped without
/// a line here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct AgentAdapter {
    /// The CLI recognised from the command's program name; null for a CLI kaged has no
    /// adapter for, which runs as declared with only the proxy variables.
    pub cli: Option<AgentCli>,
    /// The concrete model the alias resolved to through local.toml, without its provider.
    pub model: Option<String>,
    /// The local.toml provider the CLI reaches through the cage's egress gateway.
    pub provider: Option<String>,
    /// Where the CLI keeps its state inside the cage, and whether that outlives the session;
    /// null when uncaged (the CLI then uses the operator's own).
    pub state: Option<String>,
    /// The command as it runs in the cage: the declared one with the adapter's arguments.
    pub argv: Vec<String>,
    /// Everything the adapter set, in order.
    pub settings: Vec<AdapterSetting>,
    /// Declarations the CLI (or this cage) cannot honour, each with the reason.
    pub not_honoured: Vec<NotHonoured>,
}

/// Where an adapter put a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum SettingKind {
    /// An environment variable of the CLI's process.
    Env,
    /// A command-line argument (or `-c key=value` override) added before the declared ones.
    Flag,
    /// A key of a configuration document handed to the CLI (in an argument or a variable).
    Config,
    /// A host file bound read-only into the cage (the CLI itself, when it is installed where
    /// the cage cannot see it).
    Mount,
}

/// One thing an adapter set. `value` is shown unless it is a stand-in key or a document the
/// setting only carries (a prompt's text): secrets never get here, real or dummy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct AdapterSetting {
    pub kind: SettingKind,
    pub name: String,
    pub value: Option<String>,
    /// Why: the declaration it carries, or what it turns off.
    pub purpose: String,
}

/// A declaration the agent's CLI does not get, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct NotHonoured {
    /// The declaration, as the project file says it (`tools: agent:reviewer`).
    pub declaration: String,
    pub reason: String,
}

/// A snapshot of a session, as stored in `meta.json`, served by the API and sent in events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SessionInfo {
    pub id: String,
    pub project_id: String,
    /// The operator who started it.
    pub actor: String,
    /// What really runs (usually `bwrap … -- command`), lossily converted to UTF-8.
    pub argv: Vec<String>,
    pub state: SessionState,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    /// The signal number that killed the process, if one did.
    pub signal: Option<i32>,
    pub end_reason: Option<EndReason>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub cols: u16,
    pub rows: u16,
    /// Offset just past the last byte of output, i.e. the total output size.
    pub bytes_total: u64,
    /// False when some output could not be written to the transcript (disk error) or may be
    /// missing (the daemon died before its last batch was written).
    pub transcript_complete: bool,
    pub origin: SessionOrigin,
    /// When a restarted (or upgraded) daemon adopted this running session from its holder;
    /// null for a session the serving daemon started itself.
    #[serde(default)]
    pub adopted_at: Option<Timestamp>,
    /// Other operators the owner (`actor`) shared the session with, and how.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shared_with: BTreeMap<String, ShareAccess>,
    /// For a session started from a declared agent, while this daemon watches it: where the
    /// run stands. Never stored in `meta.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::agent::AgentState>,
}

/// What a session's owner lets another operator do with it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema, TS,
)]
#[serde(rename_all = "lowercase")]
pub enum ShareAccess {
    /// See it, watch its terminal, read its transcript.
    Read,
    /// Also type into it, resize, signal and end it.
    Write,
}

/// `POST /api/v1/sessions/{id}/shares`: shares a session with one operator (its owner or an
/// admin only); `access: null` takes the share back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The other operator's user id, as the sidecar names them.
    pub user: String,
    pub access: Option<ShareAccess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// `POST /api/v1/projects/{id}/sessions`: at most one of `argv`, `agent` and `task`; none
/// starts the operator's login shell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct StartSession {
    /// An explicit argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A declared agent by dotted name (`primary`, `primary.reviewer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A declared task by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Terminal width, 1 to 1000 (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    /// Terminal height, 1 to 1000 (default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    /// A cage policy for an explicit argv or the shell; declared agents and tasks keep theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cage: Option<CagePolicy>,
    /// Extra environment variable names to allowlist into the cage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Where to work, overriding what the agent or task declares: the project's checkout, a
    /// fresh git worktree, or an earlier run's worktree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceChoice>,
}

/// The signals an operator may send, by name (`SIGINT` or `INT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalName {
    #[serde(alias = "SIGINT")]
    Int,
    #[serde(alias = "SIGTERM")]
    Term,
    #[serde(alias = "SIGHUP")]
    Hup,
    #[serde(alias = "SIGKILL")]
    Kill,
    #[serde(alias = "SIGQUIT")]
    Quit,
    #[serde(alias = "SIGUSR1")]
    Usr1,
    #[serde(alias = "SIGUSR2")]
    Usr2,
    #[serde(alias = "SIGSTOP")]
    Stop,
    #[serde(alias = "SIGCONT")]
    Cont,
    #[serde(alias = "SIGWINCH")]
    Winch,
}

/// `POST /api/v1/sessions/{id}/signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    pub signal: SignalName,
}

/// `POST /api/v1/sessions/{id}/resize`: both 1 to 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    pub cols: u16,
    pub rows: u16,
}

/// `POST /api/v1/sessions/{id}/input`: text to type, at most 64 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct InputRequest {
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct InputWritten {
    /// Bytes written to the terminal.
    pub written: u64,
}

/// The query of `GET /api/v1/sessions/{id}/transcript`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct TranscriptParams {
    /// The first byte to return (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// At most this many bytes, 1 to 8 MiB (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8_388_608))]
    pub limit: Option<u32>,
}
