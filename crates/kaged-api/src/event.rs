//! `GET /api/v1/events`: daemon events as JSON text frames, one [`DaemonEvent`] each.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::agent::AgentState;
use crate::egress::EgressConnection;
use crate::hook::{Approval, ApprovalOutcome};
use crate::session::SessionInfo;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "type")]
pub enum DaemonEvent {
    #[serde(rename = "session.started")]
    SessionStarted { session: SessionInfo },
    #[serde(rename = "session.exited")]
    SessionExited { session: SessionInfo },
    #[serde(rename = "session.attached")]
    SessionAttached {
        session_id: String,
        project_id: String,
        actor: String,
    },
    /// A declared agent's session started: an agent run.
    #[serde(rename = "run.started")]
    RunStarted { session: SessionInfo, agent: String },
    #[serde(rename = "run.ended")]
    RunEnded { session: SessionInfo, agent: String },
    /// An agent run's state changed (working, waiting for the operator, done, error).
    #[serde(rename = "agent.state")]
    AgentState {
        session_id: String,
        project_id: String,
        agent: String,
        state: AgentState,
    },
    /// An agent's tool call is held for the operator's answer.
    #[serde(rename = "approval.requested")]
    ApprovalRequested { approval: Approval },
    /// A held tool call was answered, or its default applied.
    #[serde(rename = "approval.answered")]
    ApprovalAnswered { outcome: ApprovalOutcome },
    /// A cage's egress gateway allowed (when the connection ended) or refused a connection.
    #[serde(rename = "egress")]
    Egress { connection: EgressConnection },
    /// This subscriber fell behind and missed `missed` events; refetch what it shows.
    #[serde(rename = "gap")]
    Gap { missed: u64 },
    /// The answer to a client's `{"type":"ping"}`.
    #[serde(rename = "pong")]
    Pong,
}
