//! The agent socket's protocol and the approvals it raises. A cage's hook helper
//! (`kaged __hook <event>`) sends one [`HookRequest`] per connection and reads one
//! [`HookReply`]; nothing else is spoken on that socket. An approval is a tool call an agent
//! asks to make, held until the operator answers or its time runs out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::session::CageState;
use crate::timestamp::Timestamp;

/// The most a hook request may hold; a CLI's hook input is a tool call, not a file tree.
pub const HOOK_MAX_BYTES: usize = 256 * 1024;
/// The socket's file name, in the session's host directory and in the cage.
pub const HOOK_SOCKET_NAME: &str = "hook.sock";
/// The hidden argument that makes kaged's binary the in-cage hook helper.
pub const HOOK_ARG: &str = "__hook";

/// What the CLI reported, by the hook it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    /// Claude Code's `Notification` (`permission_prompt`, `idle_prompt`, ...).
    Notification,
    /// Claude Code's `Stop`: the turn ended, the agent waits for the next prompt.
    Stop,
    /// Claude Code's `PreToolUse`: a tool call about to run, held for the operator.
    PreToolUse,
    /// Codex's `notify` program (`agent-turn-complete`).
    CodexNotify,
}

impl HookEvent {
    /// The event for `kaged __hook <name>`.
    pub fn parse(name: &str) -> Option<HookEvent> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            HookEvent::Notification => "notification",
            HookEvent::Stop => "stop",
            HookEvent::PreToolUse => "pre-tool-use",
            HookEvent::CodexNotify => "codex-notify",
        }
    }
}

/// One request on the agent socket: the event and the CLI's own JSON, passed on as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookRequest {
    pub event: HookEvent,
    pub payload: serde_json::Value,
}

/// The daemon's one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum HookReply {
    /// Noted; the CLI goes on.
    Noted,
    /// For a held tool call: what the CLI is to do, and the note for the model.
    Decision {
        decision: HookDecision,
        note: Option<String>,
    },
    /// Refused: malformed, too large, or too many requests.
    Refused { reason: String },
}

/// A held tool call's outcome, as the CLI's hook answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum HookDecision {
    /// The operator approved: it runs without the CLI's own prompt.
    Allow,
    /// Denied (by the operator, or by the timeout default): it does not run.
    Deny,
    /// Nobody answered and the default is `ask`: the CLI's own prompt decides.
    Ask,
}

/// What applies when the operator does not answer in time (`sessions.approval_default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDefault {
    Deny,
    /// Fall through to the CLI's own permission prompt.
    Ask,
}

/// A tool call held for the operator, with what a careful person needs to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Approval {
    pub id: String,
    pub session_id: String,
    pub project_id: String,
    pub agent: String,
    /// The operator whose session it is.
    pub owner: String,
    /// The CLI's tool name (`Bash`, `Edit`, `Write`, ...).
    pub tool: String,
    /// The exact shell command, for a shell tool.
    pub command: Option<String>,
    /// The file, for an edit or a write.
    pub path: Option<String>,
    /// The change for an edit (`- old` / `+ new` lines) or the content for a write.
    pub diff: Option<String>,
    /// The CLI's own description of the call, when it gave one.
    pub description: Option<String>,
    /// The working directory the CLI reported.
    pub cwd: Option<String>,
    /// The tool call's whole input as the CLI sent it (JSON text).
    pub input: String,
    /// The cage it runs in: grants, network allowlist, limits.
    pub cage: CageState,
    pub requested: Timestamp,
    /// Seconds until `on_timeout` applies.
    pub timeout_secs: u64,
    pub on_timeout: ApprovalDefault,
}

/// The approvals waiting for an answer that the caller may answer or see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
}

/// The operator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalVerdict {
    Approve,
    Deny,
}

/// `POST /api/v1/approvals/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub verdict: ApprovalVerdict,
    /// Goes back to the agent with the answer (at most 2000 characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// How an approval ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct ApprovalOutcome {
    pub approval_id: String,
    pub session_id: String,
    pub project_id: String,
    pub decision: HookDecision,
    /// Who answered; `None` when the timeout default applied or the run went away.
    pub by: Option<String>,
    pub note: Option<String>,
}

/// The longest note an answer carries back to the agent.
pub const APPROVAL_NOTE_MAX: usize = 2000;

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn a_request_is_the_event_and_the_clis_json_and_nothing_else() {
        let r: HookRequest = serde_json::from_str(
            r#"{"event":"pre-tool-use","payload":{"tool_name":"Bash","tool_input":{"command":"ls"}}}"#,
        )
        .unwrap();
        assert_eq!(r.event, HookEvent::PreToolUse);
        assert!(
            serde_json::from_str::<HookRequest>(r#"{"event":"pre-tool-use","payload":{},"x":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<HookRequest>(r#"{"event":"sessions","payload":{}}"#).is_err()
        );
        for e in [
            HookEvent::Notification,
            HookEvent::Stop,
            HookEvent::PreToolUse,
            HookEvent::CodexNotify,
        ] {
            assert_eq!(HookEvent::parse(e.name()), Some(e));
        }
        assert_eq!(HookEvent::parse("GET /api/v1/sessions"), None);
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            HookReply::Noted,
            HookReply::Decision {
                decision: HookDecision::Deny,
                note: Some("use --dry-run".into()),
            },
            HookReply::Refused {
                reason: "rate".into(),
            },
        ] {
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<HookReply>(&text).unwrap(), r);
        }
    }
}
