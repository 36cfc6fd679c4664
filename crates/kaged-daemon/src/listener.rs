//! The accept loop in front of hyper's HTTP/1 server. Every socket gets TCP_NODELAY and its
//! peer address (for the gate's `ConnectInfo`), every connection a header-read timeout, and
//! the caps below decide who keeps a connection when slow or numerous clients crowd the
//! daemon. It never looks inside a request beyond noting that a head arrived: what a request
//! may do is the gate's business.
//!
//! Why these caps, and why a slow connection is closed to make room instead of the newcomer
//! being refused:
//! - Every local client shares 127.0.0.1 (the operator's browser tabs, `kaged auth open`,
//!   the bench's 1000 WebSockets), and in sidecar mode every request comes from the
//!   sidecar's address. A per-address cap on *all* connections would let one hostile local
//!   process lock the operator out. So the per-address cap (`server.max_pending_per_peer`)
//!   counts only *pending* connections: those that have not yet delivered their first
//!   request head. A real client sends its head within a millisecond of connecting; a
//!   slowloris never finishes one.
//! - At a cap, the oldest pending connection is closed and the newcomer admitted. A
//!   slowloris's connections are by construction the oldest pending ones, so the operator's
//!   fresh connection always gets in. Refusing newcomers instead would let anyone who keeps
//!   the cap full (reconnecting as the header timeout closes them) refuse the operator too.
//! - The total cap (`server.max_connections`) bounds file descriptors and memory. Once it is
//!   reached, a pending connection is closed to make room if there is one; if there is none,
//!   every open connection has made a real request or is a WebSocket that crossed the gate,
//!   which is load, not a slow client, and the newcomer is refused.
//! - The header-read timeout (`server.header_read_timeout_secs`) runs whenever hyper waits
//!   for a request head, so it also closes a keep-alive connection that sits idle that long:
//!   an established connection cannot be parked for free either.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::future::RouteFuture;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use kaged_config::ServerLimits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// At most one warning per this interval about closed or refused connections, so a flood
/// cannot flood the journal too.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Serves `app` on `listener` until `drain` is cancelled, then stops accepting, asks every
/// connection to finish its current request, and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ServerLimits,
    drain: CancellationToken,
) {
    // Turns every route into its final service once rather than on each request.
    let app: Router = app.with_state(());
    let caps = Arc::new(Caps::new(limits));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.value);
    let tasks = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&caps, e).await;
                    continue;
                }
            },
            () = drain.cancelled() => break,
        };
        // Terminal output is many small writes: without TCP_NODELAY, Nagle holds a frame back
        // until the previous one is ACKed, and a delayed ACK makes that up to 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        let Some((slot, evict)) = caps.admit(peer.ip()) else {
            continue;
        };
        let handler = Handler {
            router: app.clone(),
            peer,
            caps: caps.clone(),
            id: slot.id,
            head_seen: AtomicBool::new(false),
        };
        let io = TokioIo::new(Tracked { tcp, _slot: slot });
        let conn = http.serve_connection(io, handler).with_upgrades();
        tasks.spawn(drive(conn, peer, evict, drain.clone()));
    }
    drop(listener);
    // Connections still waiting for their first head have no request to finish; hyper would
    // let them run to the header timeout, past the drain grace.
    caps.table().evict_all_pending();
    tasks.close();
    tasks.wait().await;
}

/// Runs one connection until it ends, is evicted, or (on drain) has finished its request.
async fn drive(
    conn: http1::UpgradeableConnection<TokioIo<Tracked>, Handler>,
    peer: SocketAddr,
    evict: CancellationToken,
    drain: CancellationToken,
) {
    let mut conn = pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                // Header timeouts and resets are what slow and hostile clients cause; they are
                // not the operator's concern.
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = evict.cancelled() => {
                tracing::debug!(%peer, "closed a pending connection to make room");
                return;
            }
            () = drain.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn accept_failed(caps: &Caps, e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    // The peer gave up between SYN and accept: nothing to do.
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if caps.table().should_warn() {
        tracing::warn!(
            error = %e,
            "cannot accept connections; if this says too many open files, raise the open-file limit (LimitNOFILE= in the unit) or lower server.max_connections"
        );
    }
    // Without a pause, a full descriptor table turns this loop into a busy spin.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The connection caps and the table they are checked against.
struct Caps {
    max_connections: usize,
    max_pending_per_peer: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// Connections accepted and neither closed nor evicted, WebSockets included.
    open: usize,
    /// Connections that have not delivered a request head yet, by id. Ids only grow, so the
    /// first entry is the oldest.
    pending: BTreeMap<u64, Pending>,
    pending_by_peer: HashMap<IpAddr, BTreeSet<u64>>,
    /// Evicted connections whose tasks have not closed them yet; they no longer count as
    /// open, so the place they leave is the newcomer's at once.
    evicted: HashSet<u64>,
    last_warning: Option<Instant>,
}

struct Pending {
    peer: IpAddr,
    evict: CancellationToken,
}

impl Caps {
    fn new(limits: &ServerLimits) -> Caps {
        Caps {
            max_connections: limits.max_connections.value,
            max_pending_per_peer: limits.max_pending_per_peer.value,
            table: Mutex::new(Table::default()),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `peer`, closing the oldest pending connection (the
    /// peer's own first) when a cap is reached; `None` when every open connection is busy.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<(Slot, CancellationToken)> {
        let mut t = self.table();
        let peer_oldest = t
            .pending_by_peer
            .get(&peer)
            .filter(|ids| ids.len() >= self.max_pending_per_peer)
            .and_then(|ids| ids.first().copied());
        if let Some(id) = peer_oldest {
            t.evict(id);
            if t.should_warn() {
                tracing::warn!(
                    %peer,
                    max = self.max_pending_per_peer,
                    "{peer} holds too many connections that have not sent a request; closing its oldest (server.max_pending_per_peer)"
                );
            }
        } else if t.open >= self.max_connections {
            let Some(id) = t.pending.keys().next().copied() else {
                if t.should_warn() {
                    tracing::warn!(
                        max = self.max_connections,
                        "refusing connections: every one of the allowed connections is in use; raise server.max_connections if this is real load"
                    );
                }
                return None;
            };
            t.evict(id);
        }
        let id = t.next_id;
        t.next_id += 1;
        t.open += 1;
        let evict = CancellationToken::new();
        t.pending.insert(
            id,
            Pending {
                peer,
                evict: evict.clone(),
            },
        );
        t.pending_by_peer.entry(peer).or_default().insert(id);
        Some((
            Slot {
                caps: self.clone(),
                id,
            },
            evict,
        ))
    }
}

impl Table {
    fn forget_pending(&mut self, id: u64) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        if let Some(ids) = self.pending_by_peer.get_mut(&p.peer) {
            ids.remove(&id);
            if ids.is_empty() {
                self.pending_by_peer.remove(&p.peer);
            }
        }
        Some(p)
    }

    fn evict(&mut self, id: u64) {
        if let Some(p) = self.forget_pending(id) {
            p.evict.cancel();
            self.open -= 1;
            self.evicted.insert(id);
        }
    }

    fn evict_all_pending(&mut self) {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            self.evict(id);
        }
    }

    fn should_warn(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
        if due {
            self.last_warning = Some(now);
        }
        due
    }
}

/// A connection's place under the caps, given back when its socket closes.
struct Slot {
    caps: Arc<Caps>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.caps.table();
        t.forget_pending(self.id);
        if !t.evicted.remove(&self.id) {
            t.open -= 1;
        }
    }
}

/// The socket together with its [`Slot`]. Hyper hands the socket to a WebSocket on upgrade
/// and forgets the connection, so the slot must live exactly as long as the socket.
struct Tracked {
    tcp: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// The app as one connection sees it: the peer address goes into every request, and the
/// first request head takes the connection off the pending list.
struct Handler {
    router: Router,
    peer: SocketAddr,
    caps: Arc<Caps>,
    id: u64,
    head_seen: AtomicBool,
}

impl hyper::service::Service<http::Request<Incoming>> for Handler {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        if !self.head_seen.load(Ordering::Relaxed) {
            self.head_seen.store(true, Ordering::Relaxed);
            self.caps.table().forget_pending(self.id);
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        tower::Service::call(&mut self.router.clone(), req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaged_api::{Source, Sourced};
    use pretty_assertions::assert_eq;

    fn caps(max_connections: usize, max_pending_per_peer: usize) -> Arc<Caps> {
        Arc::new(Caps::new(&ServerLimits {
            header_read_timeout: Sourced::new(Duration::from_secs(10), Source::Default),
            max_connections: Sourced::new(max_connections, Source::Default),
            max_pending_per_peer: Sourced::new(max_pending_per_peer, Source::Default),
        }))
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_full_peer_loses_its_oldest_pending_connection_not_the_newcomer() {
        let c = caps(100, 2);
        let (a, a_evict) = c.admit(ip(1)).unwrap();
        let (_b, b_evict) = c.admit(ip(1)).unwrap();
        let (_other, other_evict) = c.admit(ip(2)).unwrap();
        let (_d, d_evict) = c.admit(ip(1)).unwrap();
        assert_eq!(
            [
                a_evict.is_cancelled(),
                b_evict.is_cancelled(),
                other_evict.is_cancelled(),
                d_evict.is_cancelled()
            ],
            [true, false, false, false]
        );
        assert_eq!(c.table().open, 3);
        drop(a);
        let t = c.table();
        assert_eq!((t.open, t.evicted.len()), (3, 0));
    }

    #[test]
    fn connections_that_sent_a_request_do_not_count_as_pending() {
        let c = caps(100, 1);
        let (a, a_evict) = c.admit(ip(1)).unwrap();
        c.table().forget_pending(a.id);
        let (_b, _) = c.admit(ip(1)).unwrap();
        assert!(!a_evict.is_cancelled());
    }

    #[test]
    fn at_the_total_cap_the_oldest_pending_goes_and_without_one_the_newcomer_is_refused() {
        let c = caps(2, 10);
        let (a, a_evict) = c.admit(ip(1)).unwrap();
        let (b, b_evict) = c.admit(ip(2)).unwrap();
        c.table().forget_pending(b.id);
        let (cc, _) = c.admit(ip(3)).unwrap();
        assert!(a_evict.is_cancelled() && !b_evict.is_cancelled());
        drop(a);
        c.table().forget_pending(cc.id);
        assert!(c.admit(ip(4)).is_none());
        drop(cc);
        assert!(c.admit(ip(4)).is_some());
    }
}
