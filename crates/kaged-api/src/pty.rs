//! The PTY WebSocket protocol of `GET /api/v1/sessions/{id}/pty` (design §6). Binary frames
//! carry terminal bytes in both directions; text frames carry these JSON control messages.
//!
//! Sequenced input: a viewer whose `hello` names a `client` prefixes every binary frame it
//! sends with an 8-byte big-endian sequence number (1, 2, 3, … per client). The daemon writes
//! each frame to the PTY at most once, answers `ack{seq}` once it is written, and tells a
//! reconnecting client in its `hello` which frame it applied last, so resending everything
//! unacknowledged is safe.
//!
//! Screens: a viewer whose `hello` carries `screen` (its terminal size) gets the session's
//! screen from the daemon's terminal model instead of old bytes: `screen{offset,cols,rows}`,
//! then one binary frame to write to a freshly reset terminal of that size, then the live
//! stream from `offset`. It gets the same after every `gap`, and `size{cols,rows}` whenever
//! the PTY's size changes. One PTY has one size: the viewer that was active last (attached,
//! typed, or sent `resize`) sets it; when it leaves, the one active before it takes over.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Bytes of the sequence number in front of each input frame of a sequenced client.
pub const INPUT_SEQ_BYTES: usize = 8;

/// What a viewer sends as a text frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientControl {
    /// The first message: replay from `offset`, or from the start of the scrollback when it
    /// is missing or older than what is held.
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// Turns on sequenced input for this connection: 1 to 64 of `A-Z a-z 0-9 _ -`, the
        /// same for every reconnect of one viewer (a browser tab, a CLI attach).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        /// Asks for screens (see the module docs) and says this viewer's terminal size. With
        /// `offset` as well, the raw stream resumes there and only a gap brings a screen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        screen: Option<ScreenSize>,
    },
    /// The viewer's terminal size, 1 to 1000 each.
    Resize {
        cols: u16,
        rows: u16,
    },
    Ping,
}

/// A terminal size, 1 to 1000 each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct ScreenSize {
    pub cols: u16,
    pub rows: u16,
}

/// What the daemon sends as a text frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerControl {
    /// Attached: the next binary frame starts at `offset`.
    Hello {
        offset: u64,
        session: String,
        /// For a sequenced client: the last of its input frames written to the PTY (0 for
        /// none). The client resends whatever it holds after this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_seq: Option<u64>,
    },
    /// Input frames up to `seq` are written to the PTY.
    Ack {
        seq: u64,
    },
    /// Input frame `seq` was not written and never will be; `message` says why (a read-only
    /// share, a frame that skipped one).
    InputRefused {
        seq: u64,
        message: String,
    },
    /// Bytes `from..to` are no longer held; the next binary frame starts at `to` (for a
    /// screen viewer, a `screen` at `to` comes first).
    Gap {
        from: u64,
        to: u64,
    },
    /// The next binary frame is the whole screen at `offset`, for a terminal of
    /// `cols`×`rows`: reset the terminal, set that size, write the frame. Live bytes
    /// continue from `offset`.
    Screen {
        offset: u64,
        cols: u16,
        rows: u16,
    },
    /// The PTY is now `cols`×`rows`; the program redraws for that size.
    Size {
        cols: u16,
        rows: u16,
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

/// Whether `client` is a well-formed sequenced-input client id.
pub fn check_client_id(client: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&client.len())
        && client
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        let shown: String = client.chars().take(64).collect();
        Err(format!(
            "hello.client {shown:?} is not a client id; use 1 to 64 of A-Z a-z 0-9 _ -"
        ))
    }
}
