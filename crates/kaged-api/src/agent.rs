//! The state of an agent run, the same for every CLI: what an operator supervising from a
//! phone needs to know (is it working, does it wait for me, did it finish or fail), and the
//! Web Push subscriptions that carry it to them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::timestamp::Timestamp;

/// Where a declared agent's session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Started, nothing written yet.
    Starting,
    /// Writing output.
    Working,
    /// Waiting for the operator: it rang the bell, sent a notification, or went quiet.
    Waiting,
    /// The process exited with status 0.
    Done,
    /// It exited with another status, was killed by a signal, or ended for another reason
    /// (walltime, shutdown, a lost holder).
    Error,
}

impl AgentStatus {
    /// Whether the operator wants to hear about it away from the screen.
    pub fn needs_operator(self) -> bool {
        match self {
            AgentStatus::Waiting | AgentStatus::Done | AgentStatus::Error => true,
            AgentStatus::Starting | AgentStatus::Working => false,
        }
    }
}

/// What told kaged the state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum AgentSignal {
    /// The session started.
    Start,
    /// New output.
    Output,
    /// A bell (BEL outside any escape sequence).
    Bell,
    /// `OSC 9 ; text` (iTerm2, Windows Terminal, ConEmu).
    Osc9,
    /// `OSC 777 ; notify ; title ; body` (rxvt-unicode, VTE, foot).
    Osc777,
    /// `OSC 99 ; metadata ; payload` (kitty's desktop notifications).
    Osc99,
    /// The screen unchanged for `sessions.agent_idle_ms`: no output, or output that redrew
    /// the same screen.
    Idle,
    /// The process ended.
    Exit,
    /// The CLI's own hook, through the cage's agent socket.
    Hook,
}

/// An agent run's state with a short reason: the notification's text, or the last line
/// before the wait, at most [`AgentState::REASON_MAX`] characters, control characters removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct AgentState {
    pub status: AgentStatus,
    pub reason: Option<String>,
    pub signal: AgentSignal,
    /// For `done` and `error`: the exit status, when the process exited on its own.
    pub exit_code: Option<i32>,
    pub since: Timestamp,
}

impl AgentState {
    /// Longest reason kept: a summary, never a transcript.
    pub const REASON_MAX: usize = 160;

    pub fn new(status: AgentStatus, signal: AgentSignal, reason: Option<&str>) -> Self {
        AgentState {
            status,
            reason: reason.and_then(summarise),
            signal,
            exit_code: None,
            since: Timestamp::now(),
        }
    }
}

/// One line of at most [`AgentState::REASON_MAX`] characters with control characters and
/// surrounding blanks removed; `None` when nothing is left.
pub fn summarise(text: &str) -> Option<String> {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = flat.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.is_empty() {
        return None;
    }
    let mut out: String = joined.chars().take(AgentState::REASON_MAX).collect();
    if joined.chars().count() > AgentState::REASON_MAX {
        out.pop();
        out.push('…');
    }
    Some(out)
}

/// The keys of a browser's push subscription (RFC 8291), base64url as `PushSubscription.toJSON()`
/// gives them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PushKeys {
    /// The browser's P-256 public key (65 bytes, uncompressed).
    pub p256dh: String,
    /// The 16-byte authentication secret.
    pub auth: String,
}

/// Never shows the keys: with the endpoint they let anyone push to the browser.
impl std::fmt::Debug for PushKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushKeys([redacted])")
    }
}

/// `POST /api/v1/push/subscriptions`: a browser's `PushSubscription.toJSON()`, plus a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct PushSubscribe {
    /// The push service URL: `https://` (or `http://` to a loopback address, for tests).
    pub endpoint: String,
    pub keys: PushKeys,
    /// What the operator calls this device ("phone"); at most 80 characters.
    #[serde(default)]
    pub label: Option<String>,
    /// Ignored; browsers send it with `toJSON()`.
    #[serde(default, rename = "expirationTime")]
    #[ts(skip)]
    pub expiration_time: Option<serde_json::Value>,
}

/// A stored subscription as its owner sees it. The endpoint's path is a capability of the
/// push service, so only its origin is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct PushSubscriptionView {
    pub id: String,
    pub label: Option<String>,
    /// The push service, e.g. `https://fcm.googleapis.com`.
    pub service: String,
    pub created_at: Timestamp,
}

/// `GET /api/v1/push`: the key browsers subscribe with and the caller's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct PushInfo {
    /// The VAPID public key (RFC 8292), base64url: `applicationServerKey` for `subscribe()`.
    pub vapid_public_key: String,
    pub subscriptions: Vec<PushSubscriptionView>,
}

/// `DELETE /api/v1/push/subscriptions/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct PushRevoked {
    pub id: String,
}

/// A key of the terminal's key bar on touch screens, in bar order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema, TS,
)]
#[serde(rename_all = "lowercase")]
pub enum BarKey {
    Esc,
    Tab,
    /// Shift+Tab (`ESC [ Z`).
    Stab,
    Ctrl,
    Alt,
    Left,
    Up,
    Down,
    Right,
    Pgup,
    Pgdn,
    /// Ctrl-C.
    Ctrlc,
    Paste,
    Copy,
}

impl BarKey {
    pub const ALL: [BarKey; 14] = [
        BarKey::Esc,
        BarKey::Tab,
        BarKey::Stab,
        BarKey::Ctrl,
        BarKey::Alt,
        BarKey::Left,
        BarKey::Up,
        BarKey::Down,
        BarKey::Right,
        BarKey::Pgup,
        BarKey::Pgdn,
        BarKey::Ctrlc,
        BarKey::Paste,
        BarKey::Copy,
    ];
}

/// `GET` and `PUT /api/v1/me/keybar`: the keys the caller's key bar shows, on every device
/// they sign in from. Kept in bar order, each once; never set, every key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct KeyBarChoice {
    pub keys: Vec<BarKey>,
}

impl KeyBarChoice {
    /// In bar order, each key once.
    pub fn normalised(mut self) -> KeyBarChoice {
        self.keys.sort_unstable();
        self.keys.dedup();
        self
    }
}

impl Default for KeyBarChoice {
    fn default() -> Self {
        KeyBarChoice {
            keys: BarKey::ALL.to_vec(),
        }
    }
}

/// What a push message carries, as the service worker reads it. No secret and no command
/// text beyond the short reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct PushMessage {
    pub title: String,
    pub body: String,
    /// The page to open on a tap, relative to the UI (`/#/sessions/<id>`).
    pub url: String,
    pub session_id: String,
    pub status: AgentStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_one_short_line() {
        assert_eq!(summarise("  \x1b \n\t "), None);
        assert_eq!(
            summarise("Allow\r\nrunning   `ls`?\x07").as_deref(),
            Some("Allow running `ls`?")
        );
        let long = "x".repeat(500);
        let s = summarise(&long).unwrap_or_default();
        assert_eq!(s.chars().count(), AgentState::REASON_MAX);
        assert!(s.ends_with('…'));
    }
}
