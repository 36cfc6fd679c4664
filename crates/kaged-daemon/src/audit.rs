//! The daemon's side of the audit log (design §8): one place that records rows, aggregates
//! plain authenticated reads, and caps refusal rows. Nothing here ever receives a secret: the
//! writer cannot tell a nonce from any other string, so callers pass only names and ids.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use kaged_store::{AuditEvent, AuditWriter, EventType};
use serde_json::json;

/// At most this many `auth.rejected` rows per second; the rest are counted and reported in the
/// next row that gets through, so a hostile tab cannot flood the log.
const REJECTIONS_PER_SECOND: u32 = 20;

pub struct Audit {
    writer: AuditWriter,
    reads: ReadCounter,
    rejections: RejectLimiter,
    started: Instant,
}

impl Audit {
    pub(crate) fn new(writer: AuditWriter) -> Audit {
        Audit {
            writer,
            reads: ReadCounter::default(),
            rejections: RejectLimiter::default(),
            started: Instant::now(),
        }
    }

    /// Records one row. A failure is logged, never surfaced: the writer only stops when the
    /// daemon is already shutting down.
    pub async fn record(&self, event: AuditEvent) {
        if let Err(e) = self.writer.record(event).await {
            tracing::warn!(error = %e, "audit event dropped during shutdown");
        }
    }

    /// Resolves once every row recorded before it is committed, so a reader sees its own
    /// writes.
    pub async fn flush(&self) -> Result<(), kaged_store::StoreError> {
        self.writer.flush().await
    }

    /// A state-changing request or an upgrade: one row each, with the path but never the
    /// query string (it can carry a CSRF token).
    pub async fn request(
        &self,
        actor: &str,
        method: &str,
        path: &str,
        status: u16,
        peer: Option<SocketAddr>,
    ) {
        self.record(AuditEvent::new(
            EventType::HttpRequest,
            Some(actor),
            json!({"method": method, "path": path, "status": status,
                   "peer": peer.map(|p| p.to_string())}),
        ))
        .await;
    }

    /// A plain authenticated read: counted per actor, route and status, and written once a
    /// second as `http.reads`, because a row per poll made the writer the daemon's main cost.
    pub fn count_read(&self, actor: &str, method: &str, route: &'static str, status: u16) {
        self.reads.count(actor, method, route, status);
    }

    /// Writes the counted reads; the daemon calls it every second and at shutdown.
    pub async fn flush_reads(&self) {
        for (actor, (method, route, status), count) in self.reads.take() {
            self.record(AuditEvent::new(
                EventType::HttpReads,
                Some(&actor),
                json!({"method": method, "route": route, "status": status, "count": count}),
            ))
            .await;
        }
    }

    /// A refused request (`auth.rejected`), under the per-second cap. Every refusal goes
    /// through here, so no path of refusals can flood the writer ahead of real work.
    pub async fn rejected(&self, refusal: Refusal<'_>) {
        let peer = refusal.peer.map(|p| p.to_string());
        let Refusal {
            reason,
            method,
            path,
            user_agent,
            ..
        } = refusal;
        tracing::info!(reason, method, path, peer, "request refused");
        let Some(suppressed) = self.rejections.admit(self.started.elapsed().as_secs()) else {
            return;
        };
        let mut data = json!({"reason": reason, "method": method, "path": path, "peer": peer,
                              "suppressed_before": suppressed});
        if let Some(ua) = user_agent {
            data["user_agent"] = json!(ua);
        }
        self.record(AuditEvent::new(EventType::AuthRejected, None, data))
            .await;
    }
}

/// What an `auth.rejected` row says: why, what was asked, and by whom.
pub struct Refusal<'a> {
    /// Stable machine-readable reason, e.g. `bad_cookie`.
    pub reason: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub peer: Option<SocketAddr>,
    pub user_agent: Option<&'a str>,
    /// A credential was presented and was wrong (a guess, or a stale one), as opposed to
    /// none at all or a refused Host or Origin: only these slow the peer down.
    pub wrong_credential: bool,
}

/// (method, route, status) of an authenticated read; the route is the table's pattern.
type ReadKey = (&'static str, &'static str, u16);

#[derive(Default)]
struct ReadCounter {
    counts: Mutex<HashMap<String, HashMap<ReadKey, u64>>>,
}

impl ReadCounter {
    fn count(&self, actor: &str, method: &str, route: &'static str, status: u16) {
        let method = if method == "HEAD" { "HEAD" } else { "GET" };
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        // Allocates only for an actor's first read since the last flush.
        let per_actor = match m.get_mut(actor) {
            Some(per_actor) => per_actor,
            None => m.entry(actor.to_owned()).or_default(),
        };
        *per_actor.entry((method, route, status)).or_default() += 1;
    }

    fn take(&self) -> Vec<(String, ReadKey, u64)> {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        m.drain()
            .flat_map(|(actor, keys)| {
                keys.into_iter()
                    .map(move |(key, count)| (actor.clone(), key, count))
            })
            .collect()
    }
}

#[derive(Default)]
struct RejectLimiter {
    second: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

impl RejectLimiter {
    /// `Some(rows suppressed since the last admitted one)` when this row may be written.
    fn admit(&self, now_secs: u64) -> Option<u64> {
        if self.second.swap(now_secs, Ordering::Relaxed) != now_secs {
            self.count.store(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= REJECTIONS_PER_SECOND {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_beyond_the_cap_are_counted_into_the_next_admitted_row() {
        let lim = RejectLimiter::default();
        let admitted = (0..25).filter(|_| lim.admit(7).is_some()).count();
        assert_eq!(admitted, REJECTIONS_PER_SECOND as usize);
        assert_eq!(lim.admit(8), Some(5));
        assert_eq!(lim.admit(8), Some(0));
    }

    #[test]
    fn reads_are_aggregated_per_actor_route_and_status() {
        let reads = ReadCounter::default();
        for _ in 0..3 {
            reads.count("alice", "GET", "/api/v1/status", 200);
        }
        reads.count("alice", "HEAD", "/api/v1/status", 200);
        reads.count("bob", "GET", "/api/v1/status", 200);
        let mut rows = reads.take();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("alice".into(), ("GET", "/api/v1/status", 200), 3),
                ("alice".into(), ("HEAD", "/api/v1/status", 200), 1),
                ("bob".into(), ("GET", "/api/v1/status", 200), 1),
            ]
        );
        assert!(reads.take().is_empty());
    }
}
