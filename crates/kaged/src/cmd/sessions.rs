//! What the session commands share: finding a session by a unique id prefix, and showing one.

use anyhow::{Result, bail};
use kaged_api::{SessionInfo, SessionKind, SessionList, Timestamp};

use crate::client::Client;

/// Session ids are 32 hex digits; like git and docker, any unique prefix names one.
pub fn resolve(client: &Client, id: &str) -> Result<SessionInfo> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{id:?} is not a session id; `kaged ps -a` lists them");
    }
    if id.len() == 32 {
        return client.get(&format!("/api/v1/sessions/{id}"));
    }
    let all: SessionList = client.get("/api/v1/sessions")?;
    let mut matching: Vec<SessionInfo> = all
        .sessions
        .into_iter()
        .filter(|s| s.id.starts_with(&id.to_ascii_lowercase()))
        .collect();
    match matching.len() {
        0 => bail!("no session id starts with {id:?}; `kaged ps -a` lists them"),
        1 => Ok(matching.remove(0)),
        n => {
            let ids: Vec<&str> = matching.iter().map(|s| s.id.as_str()).collect();
            bail!(
                "{id:?} matches {n} sessions ({}); give more of the id",
                ids.join(", ")
            )
        }
    }
}

/// The first 8 hex digits: unique in practice, and what `ps` shows.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// What runs, for a one-line listing: `agent primary`, `task lint`, the shell or the argv.
pub fn what(s: &SessionInfo) -> String {
    let o = &s.origin;
    match (o.kind, &o.name) {
        (SessionKind::Agent, Some(n)) => format!("agent {n}"),
        (SessionKind::Task, Some(n)) => format!("task {n}"),
        (SessionKind::Shell, _) => "shell".to_owned(),
        _ => o.command.join(" "),
    }
}

/// `42s`, `5m`, `3h`, `2d`.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = since.seconds_until(now);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ages_are_short_and_never_negative() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        let start = t("2026-12-02T10:00:00Z");
        assert_eq!(age(start, t("2026-12-02T10:00:42Z")), "42s");
        assert_eq!(age(start, t("2026-12-02T10:05:00Z")), "5m");
        assert_eq!(age(start, t("2026-12-02T13:00:00Z")), "3h");
        assert_eq!(age(start, t("2026-12-04T10:00:00Z")), "2d");
        assert_eq!(age(start, t("2026-12-02T09:00:00Z")), "0s");
    }
}
