//! `GET /api/v1/audit`: the append-only audit log (design §8), newest first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::timestamp::Timestamp;

/// One audit row. `data` differs per event type and never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct AuditRow {
    pub id: i64,
    pub ts: Timestamp,
    /// Dotted event name, e.g. `session.started`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user id of whoever caused it; none for the daemon's own events.
    pub actor: Option<String>,
    pub project_id: Option<String>,
    pub session_id: Option<String>,
    #[ts(type = "unknown")]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct AuditPage {
    pub events: Vec<AuditRow>,
    /// Pass as `before` for the next (older) page; none on the last page.
    pub next_before: Option<i64>,
}

/// The query of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only rows older than this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// Rows per page, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// An exact type (`session.started`) or a prefix ending in `.` (`session.`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}
