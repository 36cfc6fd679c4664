//! Slow and hostile clients (design §5): a connection that never finishes its request head is
//! closed after the header-read timeout, one address holds at most its share of unfinished
//! connections, the total is capped, and through all of it the operator's authenticated
//! requests are answered at once.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;

use crate::fixture::{Session, TestDaemon, daemon, eventually};

/// What the slow clients dribble, one byte at a time; they never get to the blank line.
const SLOW_HEAD: &[u8] =
    b"GET /api/v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n";

/// The operator's status must come back this fast however busy the slow clients keep the
/// daemon, or within 20 times what it takes with no slow clients when the machine itself is
/// that slow right now (a shared 2-vCPU host under a parallel build): see [`fast_bound`].
const FAST: Duration = Duration::from_millis(100);

/// The bound for this run: `FAST`, or 20 × the median of five status requests before any slow
/// client connects, whichever is larger. A daemon stalled by slow clients answers after the
/// header timeout (seconds), far past either.
fn fast_bound(d: &TestDaemon, s: &Session) -> Duration {
    let mut t: Vec<Duration> = (0..5).map(|_| timed_status(d, s)).collect();
    t.sort();
    FAST.max(t[2] * 20)
}

/// A header timeout far past each test's length: everything these tests see closed was
/// closed by a cap, except in the test of the timeout itself.
const LONG_HEADER_TIMEOUT: &str = "[server]\nheader_read_timeout_secs = 120\n";

/// Raises this process's open-file soft limit to its hard limit; returns the limit.
fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A socket from `from` (any address in 127.0.0.0/8 is this machine), left non-blocking.
fn connect_from(rt: &tokio::runtime::Runtime, from: IpAddr, to: SocketAddr) -> TcpStream {
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(from, 0)).unwrap();
        s.connect(to).await.unwrap().into_std().unwrap()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap()
}

/// Whether the daemon has closed this non-blocking socket: end of stream or a reset, as
/// opposed to nothing to read yet.
fn closed_by_daemon(s: &TcpStream) -> bool {
    match s.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// Indexes of the sockets the daemon has closed.
fn closed(sockets: &[TcpStream]) -> Vec<usize> {
    (0..sockets.len())
        .filter(|&i| closed_by_daemon(&sockets[i]))
        .collect()
}

/// Descriptors the daemon process holds.
fn open_files(d: &TestDaemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .count()
}

/// The operator's authenticated status on a fresh connection, timed.
fn timed_status(d: &TestDaemon, s: &Session) -> Duration {
    let t = Instant::now();
    let r = d.get_as(s, "/api/v1/status");
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    took
}

/// One request on a kept-alive connection; returns the status. Responses here carry a
/// `Content-Length`, which is all this reads.
fn exchange(s: &TcpStream, host: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    (&*s).write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut length = 0;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    status
}

/// Blocks until the daemon closes `s`; returns how long that took.
fn wait_for_close(s: &TcpStream, within: Duration) -> Duration {
    let t = Instant::now();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {within:?}")
            }
            Err(_) => return t.elapsed(),
        }
    }
}

#[test]
fn two_thousand_slow_clients_do_not_slow_the_operator_down() {
    const SLOW: usize = 2000;
    const ADDRESSES: usize = 8;
    let limit = raise_open_file_limit();
    if limit < 3 * SLOW as u64 {
        eprintln!("skipped: the open-file hard limit is {limit}; this test holds {SLOW} sockets");
        return;
    }
    let d = daemon().config(LONG_HEADER_TIMEOUT, 0o600).start();
    let s = d.login();
    let fast = fast_bound(&d, &s);
    let rt = runtime();
    // 250 from each of 8 addresses: under the per-address cap on unfinished connections
    // (256 by default), so the daemon really holds all 2,000 at once.
    let slow: Vec<TcpStream> = (0..SLOW)
        .map(|i| connect_from(&rt, loopback(2 + (i % ADDRESSES) as u8), d.addr))
        .collect();
    eventually(Duration::from_secs(10), || {
        let n = open_files(&d);
        (n >= SLOW)
            .then_some(())
            .ok_or(format!("daemon holds {n} files"))
    });

    // Every slow client sends one more byte of its head every 2 s while the operator asks.
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                for s in &slow {
                    let _ = (&*s).write(&SLOW_HEAD[next..=next]);
                }
                next = (next + 1) % SLOW_HEAD.len();
                for _ in 0..20 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            slow
        }
    });
    let mut times = Vec::new();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        times.push(timed_status(&d, &s));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let slow = dripper.join().unwrap();

    assert_eq!(
        closed(&slow),
        Vec::<usize>::new(),
        "slow clients were dropped"
    );
    times.sort();
    let worst = times[times.len() - 1];
    eprintln!(
        "{} status requests beside {SLOW} slow clients: median {:?}, worst {worst:?}",
        times.len(),
        times[times.len() / 2]
    );
    assert!(
        worst < fast,
        "status took {worst:?} beside {SLOW} slow clients"
    );
}

#[test]
fn one_address_keeps_its_newest_unfinished_connections_and_the_operator_still_gets_in() {
    const CAP: usize = 256;
    const OVER: usize = 44;
    raise_open_file_limit();
    let d = daemon().config(LONG_HEADER_TIMEOUT, 0o600).start();
    let s = d.login();
    let fast = fast_bound(&d, &s);
    let rt = runtime();
    // From 127.0.0.1, the address the operator's own browser and CLI share.
    let slow: Vec<TcpStream> = (0..CAP + OVER)
        .map(|_| connect_from(&rt, loopback(1), d.addr))
        .collect();
    let expect_closed = |n: usize| {
        eventually(Duration::from_secs(10), || {
            let c = closed(&slow);
            (c == (0..n).collect::<Vec<_>>())
                .then_some(())
                .ok_or(format!("closed: {c:?}"))
        })
    };
    expect_closed(OVER);
    // The operator's fresh connection from the same address takes the place of the oldest
    // slow one and is answered at once. Having sent its head it no longer counts against the
    // address, so the next ones push nobody out.
    for _ in 0..3 {
        let took = timed_status(&d, &s);
        assert!(took < fast, "status took {took:?}");
    }
    expect_closed(OVER + 1);
    eventually(Duration::from_secs(10), || {
        let log = d.stderr();
        log.contains("server.max_pending_per_peer")
            .then_some(())
            .ok_or(format!("no warning naming the setting:\n{log}"))
    });
}

#[test]
fn at_the_connection_cap_slow_clients_make_room_and_busy_ones_refuse_newcomers() {
    raise_open_file_limit();
    let d = daemon()
        .config(
            "[server]\nheader_read_timeout_secs = 120\nmax_connections = 16\nmax_pending_per_peer = 4\n",
            0o600,
        )
        .start();
    let s = d.login();
    let fast = fast_bound(&d, &s);
    let host = d.host();
    let rt = runtime();
    // 16 unfinished connections, 4 from each of 4 addresses: the total cap is reached.
    let slow: Vec<TcpStream> = (0..16)
        .map(|i| connect_from(&rt, loopback(2 + (i / 4) as u8), d.addr))
        .collect();
    eventually(Duration::from_secs(5), || {
        let c = closed(&slow);
        c.is_empty().then_some(()).ok_or(format!("closed: {c:?}"))
    });
    // The operator gets in by closing the oldest unfinished connection.
    let took = timed_status(&d, &s);
    assert!(took < fast, "status took {took:?}");
    eventually(Duration::from_secs(5), || {
        let c = closed(&slow);
        (c == [0]).then_some(()).ok_or(format!("closed: {c:?}"))
    });

    // Now fill every place with connections that made a real request and stay open: the
    // operator's own, then 15 health checks. Each pushes out one more slow client.
    let operator = connect_from(&rt, loopback(1), d.addr);
    let cookie = [
        ("Cookie", s.cookie.as_str()),
        ("X-Kaged-Page", s.page.as_str()),
    ];
    assert_eq!(exchange(&operator, &host, "/api/v1/status", &cookie), 200);
    let busy: Vec<TcpStream> = (0..15)
        .map(|_| {
            let b = connect_from(&rt, loopback(6), d.addr);
            assert_eq!(exchange(&b, &host, "/api/v1/healthz", &[]), 200);
            b
        })
        .collect();
    eventually(Duration::from_secs(5), || {
        let c = closed(&slow);
        (c.len() == slow.len())
            .then_some(())
            .ok_or(format!("closed: {c:?}"))
    });

    // Nothing is left to push out: a newcomer is refused without an answer, and the
    // operator's open connection still works.
    let newcomer = connect_from(&rt, loopback(7), d.addr);
    let _ = (&newcomer)
        .write_all(format!("GET /api/v1/healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    wait_for_close(&newcomer, Duration::from_secs(5));
    let t = Instant::now();
    assert_eq!(exchange(&operator, &host, "/api/v1/status", &cookie), 200);
    assert!(t.elapsed() < fast, "status took {:?}", t.elapsed());
    // The warning is written as the newcomer is refused; the log reaches us a moment later.
    eventually(Duration::from_secs(10), || {
        let log = d.stderr();
        log.contains("server.max_connections")
            .then_some(())
            .ok_or(format!("no warning naming the setting:\n{log}"))
    });
    drop(busy);
}

#[test]
fn a_head_not_finished_within_the_header_timeout_is_closed_however_it_trickles() {
    let d = daemon()
        .config("[server]\nheader_read_timeout_secs = 1\n", 0o600)
        .start();
    let host = d.host();
    let rt = runtime();
    let in_time = |took: Duration| {
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "closed after {took:?}, expected about 1 s"
        );
    };

    // Silent from the start.
    let silent = connect_from(&rt, loopback(1), d.addr);
    in_time(wait_for_close(&silent, Duration::from_secs(10)));

    // A byte every 100 ms does not keep a head alive: the timeout is for the whole head.
    let trickle = connect_from(&rt, loopback(1), d.addr);
    let t = Instant::now();
    let mut next = 0;
    while !closed_by_daemon(&trickle) {
        assert!(t.elapsed() < Duration::from_secs(10), "never closed");
        let _ = (&trickle).write(&SLOW_HEAD[next..=next]);
        next = (next + 1) % SLOW_HEAD.len();
        std::thread::sleep(Duration::from_millis(100));
    }
    in_time(t.elapsed());

    // A kept-alive connection that goes quiet after a request is closed the same way.
    let idle = connect_from(&rt, loopback(1), d.addr);
    assert_eq!(exchange(&idle, &host, "/api/v1/healthz", &[]), 200);
    in_time(wait_for_close(&idle, Duration::from_secs(10)));

    // A head that arrives in time is answered as usual.
    assert_eq!(d.get("/api/v1/healthz", &[]).status, 200);
}

#[test]
fn slow_clients_do_not_hold_up_a_shutdown() {
    let mut d = daemon().config(LONG_HEADER_TIMEOUT, 0o600).start();
    let rt = runtime();
    let slow: Vec<TcpStream> = (0..50)
        .map(|i| {
            let s = connect_from(&rt, loopback(2 + (i % 2) as u8), d.addr);
            let _ = (&s).write(&SLOW_HEAD[..10]);
            s
        })
        .collect();
    eventually(Duration::from_secs(5), || {
        let n = open_files(&d);
        (n >= slow.len())
            .then_some(())
            .ok_or(format!("daemon holds {n} files"))
    });
    let t = Instant::now();
    assert!(d.terminate().success(), "{}", d.stderr());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?} beside {} slow clients",
        t.elapsed(),
        slow.len()
    );
}
