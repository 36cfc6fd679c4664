//! The PTY WebSocket protocol of `GET /api/v1/sessions/{id}/pty` (design §6). Binary frames
//! carry terminal bytes in both directions; text frames carry these JSON control messages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What a viewer sends as a text frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientControl {
    /// The first message: replay from `offset`, or from the start of the scrollback when it
    /// is missing or older than what is held.
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// The viewer's terminal size, 1 to 1000 each.
    Resize {
        cols: u16,
        rows: u16,
    },
    Ping,
}

/// What the daemon sends as a text frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerControl {
    /// Attached: the next binary frame starts at `offset`.
    Hello {
        offset: u64,
        session: String,
    },
    /// Bytes `from..to` are no longer held; the next binary frame starts at `to`.
    Gap {
        from: u64,
        to: u64,
    },
    /// The process ended; sent once, after the last byte.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    Pong,
    /// A control message the daemon could not understand.
    Error {
        message: String,
    },
}
