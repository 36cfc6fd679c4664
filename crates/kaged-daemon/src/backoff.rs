//! Slows a peer that keeps failing to authenticate: each failure beyond a few a minute makes
//! its next refusal wait longer, up to a cap. Only refusals wait, so a local attacker sharing
//! 127.0.0.1 with the operator's browser cannot lock the operator out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Failures a peer may make per window before its refusals start to wait.
const FREE_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Peers tracked at once; beyond this the oldest windows are dropped (an attacker with many
/// addresses gets no more than a fresh start each, and memory stays bounded).
const MAX_PEERS: usize = 4096;

#[derive(Default)]
pub(crate) struct Backoff {
    peers: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    since: Duration,
    failures: u32,
}

impl Backoff {
    /// Records a failure at `now` (time since start) and says how long its refusal waits.
    pub(crate) fn failed(&self, peer: IpAddr, now: Duration) -> Duration {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            peers.retain(|_, w| now.saturating_sub(w.since) < WINDOW);
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let w = peers.entry(peer).or_insert(Window {
            since: now,
            failures: 0,
        });
        if now.saturating_sub(w.since) >= WINDOW {
            *w = Window {
                since: now,
                failures: 0,
            };
        }
        w.failures += 1;
        let over = w.failures.saturating_sub(FREE_FAILURES);
        if over == 0 {
            return Duration::ZERO;
        }
        FIRST_DELAY
            .saturating_mul(1 << over.min(16).saturating_sub(1))
            .min(MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_are_free_then_each_waits_longer_up_to_the_cap() {
        let b = Backoff::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t = Duration::from_secs(1);
        let delays: Vec<Duration> = (0..18).map(|_| b.failed(ip, t)).collect();
        assert_eq!(delays[..10], [Duration::ZERO; 10]);
        assert_eq!(delays[10], FIRST_DELAY);
        assert_eq!(delays[11], FIRST_DELAY * 2);
        assert_eq!(delays[17], MAX_DELAY);
        // Another peer is not slowed, and a new window starts afresh.
        assert_eq!(b.failed([10, 0, 0, 1].into(), t), Duration::ZERO);
        assert_eq!(b.failed(ip, t + WINDOW), Duration::ZERO);
    }
}
