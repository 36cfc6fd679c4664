// Generated from the Rust wire types in crates/kaged-api; do not edit.
// Regenerate with `KAGED_UPDATE_GENERATED=1 cargo test -p kaged-api`.

export type Timestamp = string;

/**
 * The two first-class deployment modes of ADR-0010.
 */
export type Mode = "user" | "system";

/**
 * `auth.mode` of ADR-0007's per-user amendment.
 */
export type AuthMode = "loopback" | "sidecar" | "insecure";

/**
 * Where a setting's value came from; `kaged status` shows it so "why is it like this?" has an
 * answer.
 */
export type Source = { "kind": "default" } | { "kind": "mode" } | { "kind": "file", "name": string } | { "kind": "env", "name": string } | { "kind": "flag", "name": string };

export type Sourced<T> = { value: T, source: Source, };

/**
 * The merged settings as reported: each value with its source. The sidecar nonce is never
 * part of it, not even its source's path.
 */
export type SettingsReport = { 
/**
 * The config file that was read, if any.
 */
config_file: string | null, bind: Sourced<string>, auth_mode: Sourced<AuthMode>, allowed_hosts: Sourced<Array<string>>, allowed_origins: Sourced<Array<string>>, insecure_reason: Sourced<string> | null, 
/**
 * Operators in this group see and steer every session.
 */
admin_group: Sourced<string> | null, insecure_bind: Sourced<boolean>, launch_token_ttl_secs: Sourced<number>, sandbox_enabled: Sourced<boolean>, storage_url: Sourced<string>, sessions: SessionLimitsReport, server: ServerLimitsReport, log_level: Sourced<string>, 
/**
 * `push.contact`: the VAPID subject push services see.
 */
push_contact: Sourced<string>, };

export type SessionLimitsReport = { max_per_project: Sourced<number>, max_per_operator: Sourced<number>, scrollback_bytes: Sourced<number>, 
/**
 * `sessions.limits`; unset, each cage's own `limits.enforce` decides.
 */
limits: Sourced<LimitEnforcement> | null, 
/**
 * `sessions.on_stop`: whether a graceful stop leaves sessions running for the next daemon.
 */
on_stop: Sourced<SessionsOnStop>, 
/**
 * `sessions.agent_idle_ms`: quiet this long after output, an agent is waiting.
 */
agent_idle_ms: Sourced<number>, 
/**
 * `sessions.approval_timeout_secs`: how long a held tool call waits for the operator.
 */
approval_timeout_secs: Sourced<number>, 
/**
 * `sessions.approval_default`: what applies when nobody answers in time.
 */
approval_default: Sourced<ApprovalDefault>, };

/**
 * How the listener treats slow and numerous clients (`server.*`).
 */
export type ServerLimitsReport = { header_read_timeout_secs: Sourced<number>, max_connections: Sourced<number>, max_pending_per_peer: Sourced<number>, };

export type Access = "ro" | "rw";

/**
 * `network: {allow: [...], deny: [...]}`: hosts with an optional port; `*.example.com`
 * matches subdomains only; deny wins. A project file can never reach private addresses
 * through it, only the operator's `local.toml` can (`[egress] allow_private`).
 */
export type EgressRules = { allow: Array<string>, deny: Array<string>, };

/**
 * `none` (the default), `host`, or `{allow, deny}`: a network namespace of its own with only
 * loopback, and an egress gateway on the host that lets through what the rules name.
 */
export type Network = "none" | "host" | EgressRules;

export type State = "ephemeral" | "persistent";

/**
 * A wall-clock limit in seconds. Written as seconds or `30s`/`10m`/`2h`.
 */
export type Walltime = number | string;

/**
 * A size in bytes. Written as bytes or with a binary suffix `K`/`M`/`G`/`T` (`2G`).
 */
export type ByteSize = number | string;

/**
 * A `project:/…` or `config:/…` path, lexically normalised (no `.`, `..` or `//`).
 *
 * Host paths never appear in a project (ADR-0011); each operator's daemon resolves these
 * against its own directories with [`PortablePath::resolve`].
 */
export type PortablePath = string;

/**
 * One filesystem entry made visible in the cage.
 */
export type FsGrant = { path: PortablePath, 
/**
 * Omitted: read-only, the least that makes a grant useful.
 */
access: Access, };

/**
 * Whether a session may run when the host cannot enforce its memory, pids or cpu limits.
 */
export type LimitEnforcement = "strict" | "best-effort";

/**
 * Resource limits; each is optional. `walltime` is enforced by the session broker everywhere;
 * memory, pids and cpu need a cgroup, and where the host cannot give one, `enforce` (and the
 * operator's `sessions.limits`) decides whether the session is refused or runs without them.
 */
export type Limits = { walltime?: Walltime | null, memory?: ByteSize | null, pids?: number | null, 
/**
 * CPUs, fractional allowed.
 */
cpu?: number | null, 
/**
 * What to do where memory, pids or cpu cannot be enforced. Omitted: `strict`.
 */
enforce?: LimitEnforcement, };

/**
 * What a cage lets through (design §7). The sandbox crate compiles this into bwrap argv.
 */
export type CagePolicy = { 
/**
 * Filesystem grants. Omitted: the whole project, read-write.
 */
fs: Array<FsGrant>, network: Network, state: State, limits: Limits, 
/**
 * Names of environment variables passed into the cage (values come from the daemon's
 * environment at start; everything else is cleared). Omitted: the terminal and locale
 * basics, [`DEFAULT_CAGE_ENV`] (the same default as the sandbox crate's).
 */
env: Array<string>, 
/**
 * Lets the cage write the project's `.kaged/` and git's `config`, `hooks/` and `info/`,
 * which are otherwise read-only in every cage: with them a cage could rewrite its own
 * policy, or plant code that git runs on the host the next time the operator uses it.
 * Audited when set.
 */
writable_policy_and_git_hooks?: boolean, };

/**
 * Either a cage policy or the explicit, audited opt-out `"disabled"`.
 */
export type Cage = "disabled" | CagePolicy;

/**
 * How a cage's cgroup limits are put in place.
 */
export type LimitMechanism = "delegated_cgroup" | "systemd_scope";

/**
 * What happened to a cage's memory, pids and cpu limits: the sandbox reports whether it could
 * enforce them, and the daemon decides whether a cage it could not is refused or runs.
 */
export type CgroupLimits = { "status": "not_requested" } | { "status": "enforced", via: LimitMechanism, 
/**
 * The session's own cgroup, when kaged created it (`delegated_cgroup`).
 */
cgroup: string | null, } | { "status": "not_enforced", reason: string, } | { "status": "best_effort", reason: string, 
/**
 * Who allowed it: the policy's `limits.enforce` or the operator's `sessions.limits`.
 */
allowed_by: string, };

export type GrantSummary = { path: PortablePath, 
/**
 * The real host path, which is also the path inside the cage.
 */
host_path: string, access: Access, };

/**
 * What a compiled cage can see and do, for the audit trail, the API and the UI.
 */
export type CageSummary = { grants: Array<GrantSummary>, network: Network, state: State, 
/**
 * As requested; `walltime` is enforced by the session broker, the rest as
 * `cgroup_limits` says.
 */
limits: Limits, cgroup_limits: CgroupLimits, 
/**
 * Names of the variables passed in (values are never recorded).
 */
env: Array<string>, 
/**
 * Host paths hidden by a mask inside the cage.
 */
masked: Array<string>, 
/**
 * Paths the cage can read but not write, whatever its grants: the policy and git's
 * config and hooks.
 */
protected: Array<string>, 
/**
 * The policy said `writable_policy_and_git_hooks`: nothing is protected (audited).
 */
protection_lifted: boolean, cwd: string, pty: boolean, 
/**
 * Whether nested user namespaces are forbidden (needs bubblewrap ≥ 0.8).
 */
nested_userns_disabled: boolean, };

/**
 * Where a declared agent or task works: in the project's own checkout, or in a fresh git
 * worktree on its own branch.
 */
export type Workspace = "project" | "worktree";

/**
 * A plugin: a supervised subprocess speaking JSON-RPC over stdio.
 */
export type Plugin = { name: string, command: Array<string>, };

/**
 * A declared command, started as a session in its own cage.
 */
export type Task = { 
/**
 * The program to run, as an argv.
 */
command: Array<string>, description?: string | null, cage: Cage, 
/**
 * Extra environment for the task. Values are literal and portable; credentials never
 * belong here (allowlist the variable's name under `cage.env` instead).
 */
env?: { [key in string]: string }, 
/**
 * `worktree`: each run gets its own git worktree on a new branch (default `project`:
 * the project's own checkout).
 */
workspace?: Workspace, 
/**
 * The branch a worktree starts from; default: the branch checked out in the project.
 */
base?: string | null, 
/**
 * The worktree's branch, a template with `{agent}` and `{n}`; default
 * `kaged/{agent}/{n}`.
 */
branch?: string | null, };

/**
 * An agent: what to run, with which model alias and prompt, in which cage.
 */
export type AgentSpec = { 
/**
 * A model alias (e.g. `fast`) that the operator's local.toml maps to a concrete id.
 */
model?: string | null, 
/**
 * The system prompt file, a `project:/` path.
 */
system_prompt?: PortablePath | null, 
/**
 * The program to run, as an argv (no shell parsing).
 */
command: Array<string>, 
/**
 * The cage policy, or `"disabled"` to run uncaged (audited).
 */
cage: Cage, 
/**
 * Tools the agent may use; `agent:NAME` delegates to the child agent NAME.
 */
tools?: Array<string>, 
/**
 * Child agents by name.
 */
agents?: { [key in string]: AgentSpec }, 
/**
 * `worktree`: each run gets its own git worktree on a new branch (default `project`:
 * the project's own checkout).
 */
workspace?: Workspace, 
/**
 * The branch a worktree starts from; default: the branch checked out in the project.
 */
base?: string | null, 
/**
 * The worktree's branch, a template with `{agent}` and `{n}`; default
 * `kaged/{agent}/{n}`.
 */
branch?: string | null, };

/**
 * A whole project: `<root>/.kaged/project.yaml` with its overlay applied.
 */
export type Project = { 
/**
 * Format version; only `1` exists.
 */
version: number, 
/**
 * The project's slug.
 */
project: string, 
/**
 * One line for humans, at most 280 characters.
 */
description?: string | null, 
/**
 * The agent (or shell) a session of this project runs by default.
 */
primary?: AgentSpec | null, 
/**
 * Named runnable commands (test, lint, ...).
 */
tasks?: { [key in string]: Task }, 
/**
 * Supervised plugin subprocesses (ADR-0008).
 */
plugins?: Array<Plugin>, };

/**
 * An agent's model alias that the operator's `local.toml` does not define.
 */
export type UnknownAlias = { 
/**
 * Dotted agent name, e.g. `primary.reviewer`.
 */
agent: string, alias: string, };

/**
 * A declared agent, as something to start.
 */
export type AgentView = { 
/**
 * Dotted name: `primary`, `primary.reviewer`.
 */
name: string, command: Array<string>, model: string | null, caged: boolean, cage: Cage, 
/**
 * Where a run works unless the start says otherwise.
 */
workspace: Workspace, };

/**
 * A declared task, as something to start.
 */
export type TaskView = { name: string, command: Array<string>, description: string | null, caged: boolean, cage: Cage, 
/**
 * Where a run works unless the start says otherwise.
 */
workspace: Workspace, };

/**
 * A loaded project: its file, what can be started from it, and its model aliases resolved
 * against this operator's `local.toml`.
 */
export type ProjectView = { 
/**
 * The project's slug.
 */
id: string, name: string, 
/**
 * The canonical project directory on this host.
 */
root: string, description: string | null, agents: Array<AgentView>, tasks: Array<TaskView>, 
/**
 * Alias → concrete model id, for the aliases that resolve.
 */
models: { [key in string]: string }, unknown_model_aliases: Array<UnknownAlias>, loaded_at: Timestamp, loaded_by: string, 
/**
 * The project file as parsed, defaults filled in.
 */
definition: Project, };

export type ProjectList = { projects: Array<ProjectView>, };

/**
 * `POST /api/v1/projects`.
 */
export type LoadProject = { 
/**
 * The project's root directory: absolute, holding `.kaged/project.yaml`.
 */
path: string, };

/**
 * `DELETE /api/v1/projects/{id}`.
 */
export type Unloaded = { unloaded: string, };

/**
 * Lifecycle of a session (design §6). Being attached is not a state.
 */
export type SessionState = "starting" | "running" | "exited";

/**
 * Why a session ended, when something other than the process itself decided it.
 */
export type EndReason = "process_exited" | "terminated" | "walltime" | "shutdown" | "daemon_restart" | "holder_lost";

/**
 * What a daemon that stops gracefully does with running sessions (`sessions.on_stop`).
 */
export type SessionsOnStop = "auto" | "keep" | "end";

/**
 * What kind of thing a session runs.
 */
export type SessionKind = "shell" | "command" | "agent" | "task";

/**
 * Whether and how a session is caged.
 */
export type CageState = { "state": "caged", summary: CageSummary, } | { "state": "disabled_by_project" } | { "state": "no_sandbox" };

/**
 * An agent CLI kaged knows how to configure.
 */
export type AgentCli = "claude" | "codex" | "opencode";

/**
 * Where an adapter put a setting.
 */
export type SettingKind = "env" | "flag" | "config" | "mount";

/**
 * One thing an adapter set. `value` is shown unless it is a stand-in key or a document the
 * setting only carries (a prompt's text): secrets never get here, real or dummy.
 */
export type AdapterSetting = { kind: SettingKind, name: string, value: string | null, 
/**
 * Why: the declaration it carries, or what it turns off.
 */
purpose: string, };

/**
 * A declaration the agent's CLI does not get, and why.
 */
export type NotHonoured = { 
/**
 * The declaration, as the project file says it (`tools: agent:reviewer`).
 */
declaration: string, reason: string, };

/**
 * How a declared agent's `model`, `system_prompt`, `tools` and cage reached its CLI: what
 * kaged set, and what the CLI cannot honour. Nothing a project declares is dropped without
 * a line here.
 */
export type AgentAdapter = { 
/**
 * The CLI recognised from the command's program name; null for a CLI kaged has no
 * adapter for, which runs as declared with only the proxy variables.
 */
cli: AgentCli | null, 
/**
 * The concrete model the alias resolved to through local.toml, without its provider.
 */
model: string | null, 
/**
 * The local.toml provider the CLI reaches through the cage's egress gateway.
 */
provider: string | null, 
/**
 * Where the CLI keeps its state inside the cage, and whether that outlives the session;
 * null when uncaged (the CLI then uses the operator's own).
 */
state: string | null, 
/**
 * The command as it runs in the cage: the declared one with the adapter's arguments.
 */
argv: Array<string>, 
/**
 * Everything the adapter set, in order.
 */
settings: Array<AdapterSetting>, 
/**
 * Declarations the CLI (or this cage) cannot honour, each with the reason.
 */
not_honoured: Array<NotHonoured>, };

/**
 * Where a session came from: what was asked for and the cage it got.
 */
export type SessionOrigin = { kind: SessionKind, 
/**
 * The agent's dotted name or the task's name.
 */
name: string | null, 
/**
 * The command as declared or requested, before any cage wraps it.
 */
command: Array<string>, cage: CageState, 
/**
 * The run whose git worktree the session works in, when not the project's checkout.
 */
worktree?: string | null, 
/**
 * For a declared agent: how its declarations reached its CLI. Absent for shells,
 * commands, tasks, and sessions recorded before adapters existed.
 */
agent?: AgentAdapter | null, };

/**
 * What a session's owner lets another operator do with it.
 */
export type ShareAccess = "read" | "write";

/**
 * A snapshot of a session, as stored in `meta.json`, served by the API and sent in events.
 */
export type SessionInfo = { id: string, project_id: string, 
/**
 * The operator who started it.
 */
actor: string, 
/**
 * What really runs (usually `bwrap … -- command`), lossily converted to UTF-8.
 */
argv: Array<string>, state: SessionState, pid: number | null, exit_code: number | null, 
/**
 * The signal number that killed the process, if one did.
 */
signal: number | null, end_reason: EndReason | null, started_at: Timestamp, ended_at: Timestamp | null, cols: number, rows: number, 
/**
 * Offset just past the last byte of output, i.e. the total output size.
 */
bytes_total: number, 
/**
 * False when some output could not be written to the transcript (disk error) or may be
 * missing (the daemon died before its last batch was written).
 */
transcript_complete: boolean, origin: SessionOrigin, 
/**
 * When a restarted (or upgraded) daemon adopted this running session from its holder;
 * null for a session the serving daemon started itself.
 */
adopted_at: Timestamp | null, 
/**
 * Other operators the owner (`actor`) shared the session with, and how.
 */
shared_with?: { [key in string]: ShareAccess }, 
/**
 * For a session started from a declared agent, while this daemon watches it: where the
 * run stands. Never stored in `meta.json`.
 */
agent?: AgentState | null, };

export type SessionList = { sessions: Array<SessionInfo>, };

/**
 * `POST /api/v1/sessions/{id}/shares`: shares a session with one operator (its owner or an
 * admin only); `access: null` takes the share back.
 */
export type ShareRequest = { 
/**
 * The other operator's user id, as the sidecar names them.
 */
user: string, access: ShareAccess | null, };

/**
 * `workspace` of `POST /api/v1/projects/{id}/sessions`: overrides what the project file
 * declares for this one start.
 */
export type WorkspaceChoice = { "kind": "project" } | { "kind": "worktree", base?: string | null, branch?: string | null, } | { "kind": "existing", run: string, };

/**
 * `POST /api/v1/projects/{id}/sessions`: at most one of `argv`, `agent` and `task`; none
 * starts the operator's login shell.
 */
export type StartSession = { 
/**
 * An explicit argv.
 */
argv?: Array<string> | null, 
/**
 * A declared agent by dotted name (`primary`, `primary.reviewer`).
 */
agent?: string | null, 
/**
 * A declared task by name.
 */
task?: string | null, 
/**
 * Terminal width, 1 to 1000 (default 80).
 */
cols?: number | null, 
/**
 * Terminal height, 1 to 1000 (default 24).
 */
rows?: number | null, 
/**
 * A cage policy for an explicit argv or the shell; declared agents and tasks keep theirs.
 */
cage?: CagePolicy | null, 
/**
 * Extra environment variable names to allowlist into the cage.
 */
env?: Array<string> | null, 
/**
 * Where to work, overriding what the agent or task declares: the project's checkout, a
 * fresh git worktree, or an earlier run's worktree.
 */
workspace?: WorkspaceChoice | null, };

/**
 * The signals an operator may send, by name (`SIGINT` or `INT`).
 */
export type SignalName = "INT" | "TERM" | "HUP" | "KILL" | "QUIT" | "USR1" | "USR2" | "STOP" | "CONT" | "WINCH";

/**
 * `POST /api/v1/sessions/{id}/signal`.
 */
export type SignalRequest = { signal: SignalName, };

/**
 * `POST /api/v1/sessions/{id}/resize`: both 1 to 1000.
 */
export type ResizeRequest = { cols: number, rows: number, };

/**
 * `POST /api/v1/sessions/{id}/input`: text to type, at most 64 KiB.
 */
export type InputRequest = { data: string, };

export type InputWritten = { 
/**
 * Bytes written to the terminal.
 */
written: number, };

/**
 * The query of `GET /api/v1/sessions/{id}/transcript`.
 */
export type TranscriptParams = { 
/**
 * The first byte to return (default 0).
 */
offset?: number | null, 
/**
 * At most this many bytes, 1 to 8 MiB (default 1 MiB).
 */
limit?: number | null, };

/**
 * A terminal size, 1 to 1000 each.
 */
export type ScreenSize = { cols: number, rows: number, };

/**
 * What a viewer sends as a text frame.
 */
export type ClientControl = { "type": "hello", offset?: number | null, 
/**
 * Turns on sequenced input for this connection: 1 to 64 of `A-Z a-z 0-9 _ -`, the
 * same for every reconnect of one viewer (a browser tab, a CLI attach).
 */
client?: string | null, 
/**
 * Asks for screens (see the module docs) and says this viewer's terminal size. With
 * `offset` as well, the raw stream resumes there and only a gap brings a screen.
 */
screen?: ScreenSize | null, } | { "type": "resize", cols: number, rows: number, } | { "type": "ping" };

/**
 * What the daemon sends as a text frame.
 */
export type ServerControl = { "type": "hello", offset: number, session: string, 
/**
 * For a sequenced client: the last of its input frames written to the PTY (0 for
 * none). The client resends whatever it holds after this one.
 */
input_seq?: number | null, } | { "type": "ack", seq: number, } | { "type": "input_refused", seq: number, message: string, } | { "type": "gap", from: number, to: number, } | { "type": "screen", offset: number, cols: number, rows: number, } | { "type": "size", cols: number, rows: number, } | { "type": "exit", code: number | null, signal: number | null, } | { "type": "pong" } | { "type": "error", message: string, };

/**
 * What the gateway did with one connection or request.
 */
export type EgressDecision = "allowed" | "denied" | "failed";

/**
 * How the cage asked.
 */
export type EgressVia = "connect" | "http" | "provider";

/**
 * One connection through a cage's egress gateway, allowed or denied: the `data` of an
 * `egress.allowed` / `egress.denied` audit row and the `egress` daemon event.
 */
export type EgressConnection = { session_id: string, project_id: string, via: EgressVia, host: string, port: number, 
/**
 * The address connected to (or refused after resolution); `None` when refused before.
 */
address: string | null, decision: EgressDecision, 
/**
 * Which rule decided, e.g. `allow example.com:443`, `deny *.example.com`,
 * `no allow entry matches`, `127.0.0.1 is loopback`.
 */
rule: string, bytes_up: number, bytes_down: number, duration_ms: number, };

/**
 * Where a declared agent's session stands.
 */
export type AgentStatus = "starting" | "working" | "waiting" | "done" | "error";

/**
 * What told kaged the state changed.
 */
export type AgentSignal = "start" | "output" | "bell" | "osc9" | "osc777" | "osc99" | "idle" | "exit" | "hook";

/**
 * An agent run's state with a short reason: the notification's text, or the last line
 * before the wait, at most [`AgentState::REASON_MAX`] characters, control characters removed.
 */
export type AgentState = { status: AgentStatus, reason: string | null, signal: AgentSignal, 
/**
 * For `done` and `error`: the exit status, when the process exited on its own.
 */
exit_code: number | null, since: Timestamp, };

/**
 * The keys of a browser's push subscription (RFC 8291), base64url as `PushSubscription.toJSON()`
 * gives them.
 */
export type PushKeys = { 
/**
 * The browser's P-256 public key (65 bytes, uncompressed).
 */
p256dh: string, 
/**
 * The 16-byte authentication secret.
 */
auth: string, };

/**
 * `POST /api/v1/push/subscriptions`: a browser's `PushSubscription.toJSON()`, plus a label.
 */
export type PushSubscribe = { 
/**
 * The push service URL: `https://` (or `http://` to a loopback address, for tests).
 */
endpoint: string, keys: PushKeys, 
/**
 * What the operator calls this device ("phone"); at most 80 characters.
 */
label: string | null, };

/**
 * A stored subscription as its owner sees it. The endpoint's path is a capability of the
 * push service, so only its origin is shown.
 */
export type PushSubscriptionView = { id: string, label: string | null, 
/**
 * The push service, e.g. `https://fcm.googleapis.com`.
 */
service: string, created_at: Timestamp, };

/**
 * `GET /api/v1/push`: the key browsers subscribe with and the caller's subscriptions.
 */
export type PushInfo = { 
/**
 * The VAPID public key (RFC 8292), base64url: `applicationServerKey` for `subscribe()`.
 */
vapid_public_key: string, subscriptions: Array<PushSubscriptionView>, };

/**
 * `DELETE /api/v1/push/subscriptions/{id}`.
 */
export type PushRevoked = { id: string, };

/**
 * What a push message carries, as the service worker reads it. No secret and no command
 * text beyond the short reason.
 */
export type PushMessage = { title: string, body: string, 
/**
 * The page to open on a tap, relative to the UI (`/#/sessions/<id>`).
 */
url: string, session_id: string, status: AgentStatus, };

/**
 * A key of the terminal's key bar on touch screens, in bar order.
 */
export type BarKey = "esc" | "tab" | "stab" | "ctrl" | "alt" | "left" | "up" | "down" | "right" | "pgup" | "pgdn" | "ctrlc" | "paste" | "copy";

/**
 * `GET` and `PUT /api/v1/me/keybar`: the keys the caller's key bar shows, on every device
 * they sign in from. Kept in bar order, each once; never set, every key.
 */
export type KeyBarChoice = { keys: Array<BarKey>, };

/**
 * A held tool call's outcome, as the CLI's hook answers it.
 */
export type HookDecision = "allow" | "deny" | "ask";

/**
 * What applies when the operator does not answer in time (`sessions.approval_default`).
 */
export type ApprovalDefault = "deny" | "ask";

/**
 * A tool call held for the operator, with what a careful person needs to decide.
 */
export type Approval = { id: string, session_id: string, project_id: string, agent: string, 
/**
 * The operator whose session it is.
 */
owner: string, 
/**
 * The CLI's tool name (`Bash`, `Edit`, `Write`, ...).
 */
tool: string, 
/**
 * The exact shell command, for a shell tool.
 */
command: string | null, 
/**
 * The file, for an edit or a write.
 */
path: string | null, 
/**
 * The change for an edit (`- old` / `+ new` lines) or the content for a write.
 */
diff: string | null, 
/**
 * The CLI's own description of the call, when it gave one.
 */
description: string | null, 
/**
 * The working directory the CLI reported.
 */
cwd: string | null, 
/**
 * The tool call's whole input as the CLI sent it (JSON text).
 */
input: string, 
/**
 * The cage it runs in: grants, network allowlist, limits.
 */
cage: CageState, requested: Timestamp, 
/**
 * Seconds until `on_timeout` applies.
 */
timeout_secs: number, on_timeout: ApprovalDefault, };

/**
 * The approvals waiting for an answer that the caller may answer or see.
 */
export type ApprovalList = { approvals: Array<Approval>, };

/**
 * The operator's answer.
 */
export type ApprovalVerdict = "approve" | "deny";

/**
 * `POST /api/v1/approvals/{id}`.
 */
export type ApprovalAnswer = { verdict: ApprovalVerdict, 
/**
 * Goes back to the agent with the answer (at most 2000 characters).
 */
note: string | null, };

/**
 * How an approval ended.
 */
export type ApprovalOutcome = { approval_id: string, session_id: string, project_id: string, decision: HookDecision, 
/**
 * Who answered; `None` when the timeout default applied or the run went away.
 */
by: string | null, note: string | null, };

export type DaemonEvent = { "type": "session.started", session: SessionInfo, } | { "type": "session.exited", session: SessionInfo, } | { "type": "session.attached", session_id: string, project_id: string, actor: string, } | { "type": "run.started", session: SessionInfo, agent: string, } | { "type": "run.ended", session: SessionInfo, agent: string, } | { "type": "agent.state", session_id: string, project_id: string, agent: string, state: AgentState, } | { "type": "approval.requested", approval: Approval, } | { "type": "approval.answered", outcome: ApprovalOutcome, } | { "type": "egress", connection: EgressConnection, } | { "type": "gap", missed: number, } | { "type": "pong" };

/**
 * One audit row. `data` differs per event type and never holds a secret.
 */
export type AuditRow = { id: number, ts: Timestamp, 
/**
 * Dotted event name, e.g. `session.started`.
 */
type: string, 
/**
 * The user id of whoever caused it; none for the daemon's own events.
 */
actor: string | null, project_id: string | null, session_id: string | null, data: unknown, };

export type AuditPage = { events: Array<AuditRow>, 
/**
 * Pass as `before` for the next (older) page; none on the last page.
 */
next_before: number | null, };

/**
 * The query of `GET /api/v1/audit`.
 */
export type AuditParams = { 
/**
 * Only rows older than this id.
 */
before?: number | null, 
/**
 * Rows per page, 1 to 1000 (default 100).
 */
limit?: number | null, 
/**
 * An exact type (`session.started`) or a prefix ending in `.` (`session.`).
 */
type?: string | null, actor?: string | null, project_id?: string | null, session_id?: string | null, };

export type WorktreeState = "active" | "removed";

/**
 * A run's worktree as kaged recorded it.
 */
export type WorktreeRun = { run: string, project_id: string, 
/**
 * The main checkout.
 */
repo: string, path: string, branch: string, base: string, 
/**
 * `base` when the worktree was created.
 */
base_oid: string, state: WorktreeState, 
/**
 * `refs/kaged/snapshots/<run>`, once a snapshot was taken.
 */
snapshot: string | null, snapshot_oid: string | null, created_at: number, 
/**
 * When the last session in it ended; the sweep counts idle time from here.
 */
ended_at: number | null, removed_at: number | null, 
/**
 * Sessions running in it now.
 */
sessions: Array<string>, };

/**
 * A snapshot commit: everything a removed worktree held, committed or not.
 */
export type WorktreeSnapshot = { reference: string, run: string, oid: string, time: number, };

/**
 * `GET /api/v1/projects/{id}/worktrees`.
 */
export type WorktreeList = { 
/**
 * Every run kaged made a worktree for in this project's repository, oldest first.
 */
runs: Array<WorktreeRun>, 
/**
 * The snapshots in the repository, oldest first.
 */
snapshots: Array<WorktreeSnapshot>, };

export type WorktreeCommit = { oid: string, author_name: string, author_email: string, time: number, summary: string, };

/**
 * A path that differs from where the branch left `base`, committed or not.
 */
export type WorktreeFile = { path: string, 
/**
 * `modified`, `added`, `deleted`, `renamed`, `copied`, `type_changed`, `unmerged`.
 */
change: string, };

/**
 * `GET /api/v1/worktrees/{run}`: what a run did, for review.
 */
export type WorktreeReview = { run: WorktreeRun, head: string, merge_base: string, 
/**
 * Commits on the branch that `base` lacks, newest first.
 */
commits: Array<WorktreeCommit>, 
/**
 * Patch from the merge base to the branch's head.
 */
diff: string, 
/**
 * Patch from the head to the working tree, untracked files included.
 */
uncommitted_diff: string, files: Array<WorktreeFile>, 
/**
 * Tracked paths changed but not committed.
 */
changed: Array<string>, untracked: Array<string>, };

/**
 * What a cleanup found that removing would have lost; all of it is in the snapshot.
 */
export type WorktreeLoss = { changed: Array<string>, untracked: Array<string>, 
/**
 * Commits in neither `base` nor any remote branch, newest first.
 */
unpushed: Array<string>, 
/**
 * Files git ignores that the removal deleted, as asked (`discard_ignored`): no snapshot
 * holds them. An ignored directory is listed once (`target/`).
 */
ignored: Array<string>, };

/**
 * The query of `DELETE /api/v1/worktrees/{run}`.
 */
export type RemoveWorktreeParams = { 
/**
 * Also delete the files git ignores (`target/`, `.env`), which no snapshot keeps. Without
 * it a worktree holding any is refused (409, the paths in `details.paths`).
 */
discard_ignored: boolean, };

/**
 * `DELETE /api/v1/worktrees/{run}`.
 */
export type WorktreeRemoved = { run: string, loss: WorktreeLoss, 
/**
 * Taken first whenever `loss` is not empty.
 */
snapshot: WorktreeSnapshot | null, };

/**
 * `POST /api/v1/worktrees/{run}/restore`: the snapshot of `run` into a new run's worktree.
 */
export type RestoreWorktree = { 
/**
 * The new branch; default: `<the run's branch>-restored-<n>`.
 */
branch?: string | null, };

export type MergeStrategy = "auto" | "fast_forward" | "merge_commit";

/**
 * `POST /api/v1/worktrees/{run}/merge`.
 */
export type MergeWorktree = { mode: MergeStrategy, };

export type WorktreeMerged = { run: string, base: string, 
/**
 * `base` before and after.
 */
old: string, new: string, fast_forward: boolean, };

/**
 * `DELETE /api/v1/worktrees/{run}/branch`.
 */
export type BranchDeleted = { run: string, branch: string, };

/**
 * A worktree git knows about that kaged did not create; kaged never removes it.
 */
export type UnknownWorktree = { path: string, head: string | null, branch: string | null, locked: boolean, 
/**
 * git reports its directory gone.
 */
prunable: boolean, };

/**
 * `GET /api/v1/projects/{id}/worktrees/unknown`.
 */
export type UnknownWorktreeList = { worktrees: Array<UnknownWorktree>, };

/**
 * The stable error codes, each with its HTTP status.
 */
export type ErrorCode = "bad_request" | "validation_failed" | "unauthenticated" | "forbidden" | "not_found" | "conflict" | "dsl_invalid" | "rate_limited" | "internal" | "unavailable";

export type ErrorBody = { code: ErrorCode, 
/**
 * For people: what was wrong and what to do about it.
 */
message: string, 
/**
 * For programs: e.g. the diagnostics of an invalid project file.
 */
details?: unknown, };

export type ErrorEnvelope = { error: ErrorBody, };

/**
 * A danger state, announced on every response as `X-Kaged-Warning` and in the UI.
 */
export type Warning = "insecure-mode" | "no-sandbox";

/**
 * The resolved paths of this deployment mode.
 */
export type Paths = { state: string, config: string, 
/**
 * Whether the config file exists (and was read, for a running daemon).
 */
config_loaded: boolean, 
/**
 * The operator's `local.toml`.
 */
local: string, runtime: string, 
/**
 * Why the runtime dir is not the mode's usual one, if it is not.
 */
runtime_note: string | null, database: string, 
/**
 * Where the audit log is (a table in the database).
 */
audit: string, sessions: string, };

/**
 * The bwrap binary that passed the start-up self-test.
 */
export type BwrapInfo = { path: string, version: string, };

/**
 * Whether, and how, memory, pids and cpu limits can be enforced on this host.
 */
export type CgroupSupport = { "status": "delegated", cgroup: string, } | { "status": "systemd_scope", systemd_run: string, } | { "status": "unavailable", reason: string, };

export type SandboxStatus = { 
/**
 * False under `--no-sandbox`.
 */
enabled: boolean, 
/**
 * Present when the sandbox is enabled.
 */
bwrap: BwrapInfo | null, cgroups: CgroupSupport, };

/**
 * A provider from `local.toml`: whether its key variable is set, never the key.
 */
export type ProviderKey = { api_key_env: string, present: boolean, };

export type LocalSummary = { model_aliases: Array<string>, providers: { [key in string]: ProviderKey }, registered_projects: number, };

/**
 * Running sessions at a glance, for `kaged status`.
 */
export type SessionsSummary = { running: number, 
/**
 * Running sessions this daemon took over from their holders after a restart, an
 * upgrade or a crash of the daemon before it (design §6).
 */
adopted: Array<SessionInfo>, };

export type Status = { mode: Mode, 
/**
 * The rule of design §3 that decided the mode.
 */
mode_reason: string, paths: Paths, bind: string, 
/**
 * The URL local clients use.
 */
url: string, allowed_hosts: Array<string>, auth_mode: AuthMode, insecure: boolean, insecure_reason: string | null, sandbox: SandboxStatus, local: LocalSummary, warnings: Array<Warning>, version: string, pid: number, started_at: Timestamp, uptime_secs: number, settings: SettingsReport, 
/**
 * The running sessions the caller may see, and which of them this daemon adopted.
 */
sessions: SessionsSummary, };

/**
 * The one identity every handler sees, whatever the auth mode (ADR-0007's table).
 */
export type Identity = { user_id: string, email: string | null, groups: Array<string>, mode: AuthMode, };

export type Me = { identity: Identity, 
/**
 * Send it as `X-Kaged-CSRF` on every state-changing request (or `?csrf=` on a WebSocket
 * upgrade). It is bound to this session and worthless without it.
 */
csrf_token: string, warnings: Array<Warning>, };

/**
 * `POST /api/v1/auth/launch-token`: a fresh one-time launch URL (loopback mode).
 */
export type LaunchUrl = { url: string, expires_in_secs: number, };

/**
 * `POST /api/v1/auth/logout`.
 */
export type SignedOut = { 
/**
 * Whether a browser session (a cookie) was signed out; other credentials have none.
 */
browser_session: boolean, };

/**
 * `POST /api/v1/auth/revoke`.
 */
export type Revoked = { 
/**
 * Every browser session is signed out; the CLI's nonce still works.
 */
revoked: boolean, };

/**
 * `GET /api/v1/healthz` and `GET /api/v1/readyz`.
 */
export type Health = { 
/**
 * `ok` (alive) or `ready` (serving).
 */
status: string, };

/**
 * `GET /api/v1/version`.
 */
export type VersionInfo = { name: string, version: string, };
