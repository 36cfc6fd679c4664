//! The egress gateway's cost against its targets: per-request latency and a 64 MiB download
//! through the whole data path (client → kaged's relay on loopback → the gateway's Unix
//! socket → the gateway → upstream), each against a direct connection to the same upstream in
//! the same run, interleaved; and a cage start with the relay against today's cage.
//!
//! The relay runs on the host here (`kaged __egress-relay`, the same binary and code as in a
//! cage), and the gateway in this process: a network namespace adds nothing per byte, and the
//! cage start figure below includes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct EgressSample {
    pub direct_us: Vec<f64>,
    pub gateway_us: Vec<f64>,
    pub direct_mib_s: f64,
    pub gateway_mib_s: f64,
    /// The same three socket hops with no gateway: kaged's relay, the Unix socket, and a
    /// splice straight to the upstream (no `CONNECT`, no policy). What the topology itself
    /// allows.
    pub floor_mib_s: f64,
    pub start_today_ms: Vec<f64>,
    pub start_relay_ms: Vec<f64>,
}

/// An upstream on loopback: `/big` answers `big` bytes, anything else two bytes.
fn upstream(big: usize) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the upstream")?;
    let port = listener.local_addr()?.port();
    let body = Arc::new(vec![b'x'; big]);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut reader = BufReader::new(&conn);
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let payload: &[u8] = if first.contains("/big") { &body } else { b"ok" };
                let mut w = &conn;
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    payload.len()
                );
                let _ = w.write_all(payload);
            });
        }
    });
    Ok(port)
}

/// Reads a response to EOF; returns the bytes after the head.
fn read_response(mut s: &TcpStream) -> Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    let mut head_end = None;
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head_end.is_none() {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head_end = Some(i + 4);
                total += (head.len() - i - 4) as u64;
                head.clear();
            }
        } else {
            total += n as u64;
        }
    }
    if head_end.is_none() {
        bail!("no response head");
    }
    Ok(total)
}

fn get(port: u16, path: &str) -> Result<u64> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    let _ = s.set_nodelay(true);
    let mut w = &s;
    write!(w, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    read_response(&s)
}

/// CONNECT through the relay, then the same GET inside the tunnel.
fn get_via(relay: u16, up: u16, path: &str) -> Result<u64> {
    let s = TcpStream::connect(("127.0.0.1", relay))?;
    let _ = s.set_nodelay(true);
    let mut w = &s;
    write!(
        w,
        "CONNECT 127.0.0.1:{up} HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if (&s).read(&mut byte)? == 0 {
            bail!(
                "the gateway closed the tunnel: {}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        bail!("CONNECT refused: {}", String::from_utf8_lossy(&head));
    }
    write!(w, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n\r\n")?;
    read_response(&s)
}

/// The floor's far side: a Unix socket whose every connection is spliced to the upstream, as
/// the relay splices (`kaged_egress::relay::copy`), with nothing in between.
fn splice_to_upstream(socket: &Path, up: u16) -> Result<()> {
    use std::net::Shutdown;
    use std::os::unix::net::UnixListener;
    let listener = UnixListener::bind(socket).context("binding the floor's socket")?;
    std::thread::spawn(move || {
        for unix in listener.incoming() {
            let Ok(unix) = unix else { continue };
            std::thread::spawn(move || {
                let Ok(tcp) = TcpStream::connect(("127.0.0.1", up)) else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let (Ok(unix2), Ok(tcp2)) = (unix.try_clone(), tcp.try_clone()) else {
                    return;
                };
                let up_way = std::thread::spawn(move || {
                    kaged_egress::relay::copy(&unix2, &tcp2);
                    let _ = tcp2.shutdown(Shutdown::Write);
                });
                kaged_egress::relay::copy(&tcp, &unix);
                let _ = unix.shutdown(Shutdown::Write);
                let _ = up_way.join();
            });
        }
    });
    Ok(())
}

/// Starts kaged's relay on a free loopback port, in front of `socket`; waits until it listens.
fn relay(kaged: &Path, socket: &Path) -> Result<(Relay, u16)> {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let relay = Relay(
        Command::new(kaged)
            .arg("__egress-relay")
            .arg(port.to_string())
            .arg(socket)
            .args(["--", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} __egress-relay", kaged.display()))?,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the relay never listened on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((relay, port))
}

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One round: `samples` small requests each way, interleaved, and 3 downloads of `big` bytes
/// each way; `start_samples` cage starts each way.
pub fn round(
    kaged: &Path,
    project: &Path,
    samples: usize,
    big: usize,
    start_samples: usize,
) -> Result<EgressSample> {
    let up = upstream(big)?;
    let dir = tempfile::tempdir().context("a directory for the gateway socket")?;
    let socket = dir.path().join("gateway.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let gateway = kaged_egress::Gateway::bind(&socket)?;
    let policy = kaged_egress::Policy::new(
        &kaged_api::EgressRules {
            allow: vec![format!("127.0.0.1:{up}")],
            deny: vec![],
        },
        &[format!("127.0.0.1:{up}")],
    )?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    rt.spawn(gateway.serve(
        Arc::new(policy),
        Arc::default(),
        kaged_egress::CageIds {
            session_id: "bench".into(),
            project_id: "bench".into(),
        },
        tx,
        stop.clone(),
    ));
    // The daemon audits every record; drain them here as it would.
    rt.spawn(async move { while rx.recv().await.is_some() {} });
    let (_relay, relay_port) = relay(kaged, &socket)?;
    let floor_socket = dir.path().join("floor.sock");
    splice_to_upstream(&floor_socket, up)?;
    let (_floor_relay, floor_port) = relay(kaged, &floor_socket)?;
    // Warm both paths up.
    for _ in 0..20 {
        get(up, "/small")?;
        get_via(relay_port, up, "/small")?;
    }
    let mut direct_us = Vec::with_capacity(samples);
    let mut gateway_us = Vec::with_capacity(samples);
    for i in 0..samples {
        let order = if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for via in order {
            let t = Instant::now();
            if via {
                get_via(relay_port, up, "/small")?;
                gateway_us.push(t.elapsed().as_secs_f64() * 1e6);
            } else {
                get(up, "/small")?;
                direct_us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let (mut direct_best, mut gateway_best, mut floor_best) = (0f64, 0f64, 0f64);
    for _ in 0..3 {
        for way in 0..3 {
            let t = Instant::now();
            let n = match way {
                0 => get(up, "/big")?,
                1 => get_via(relay_port, up, "/big")?,
                _ => get(floor_port, "/big")?,
            };
            if n != big as u64 {
                bail!("downloaded {n} of {big} bytes");
            }
            let rate = n as f64 / 1048576.0 / t.elapsed().as_secs_f64();
            let best = match way {
                0 => &mut direct_best,
                1 => &mut gateway_best,
                _ => &mut floor_best,
            };
            *best = best.max(rate);
        }
    }
    stop.cancel();
    let (start_today_ms, start_relay_ms) = starts(
        kaged,
        project,
        &dir.path().join("start.sock"),
        start_samples,
    )?;
    Ok(EgressSample {
        direct_us,
        gateway_us,
        direct_mib_s: direct_best,
        gateway_mib_s: gateway_best,
        floor_mib_s: floor_best,
        start_today_ms,
        start_relay_ms,
    })
}

/// `bwrap <default cage> true` against the same cage with the relay bound in and running
/// first, alternated. Both have their own network namespace (today's `none` has one too).
fn starts(
    kaged: &Path,
    project: &Path,
    socket: &Path,
    samples: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let base = crate::metrics::bwrap_args(project);
    // The binds go in before the root is made read-only, as the compiler puts them.
    let at = base
        .iter()
        .position(|a| a == "--remount-ro")
        .context("the default cage's argv has no --remount-ro")?;
    let mut relay: Vec<String> = base[..at].to_vec();
    relay.extend([
        "--ro-bind".into(),
        kaged.display().to_string(),
        "/run/kaged-egress/kaged".into(),
        "--ro-bind".into(),
        socket
            .parent()
            .context("the gateway socket has no directory")?
            .display()
            .to_string(),
        "/run/kaged-egress/gateway".into(),
    ]);
    relay.extend(base[at..].iter().cloned());
    relay.extend([
        "/run/kaged-egress/kaged".into(),
        "__egress-relay".into(),
        "3128".into(),
        "/run/kaged-egress/gateway/gateway.sock".into(),
        "--".into(),
        "true".into(),
    ]);
    let mut today: Vec<String> = base.clone();
    today.push("true".into());
    let run = |args: &[String]| -> Result<f64> {
        let t = Instant::now();
        let status = Command::new("bwrap")
            .args(args)
            .stdin(Stdio::null())
            .status()
            .context("running bwrap")?;
        if !status.success() {
            bail!("bwrap failed ({status}): {args:?}");
        }
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    };
    // A socket must exist for the bind; nothing connects to it, as `true` makes no request.
    let _keep = std::os::unix::net::UnixListener::bind(socket)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    run(&today)?;
    run(&relay)?;
    for i in 0..samples {
        if i % 2 == 0 {
            a.push(run(&today)?);
            b.push(run(&relay)?);
        } else {
            b.push(run(&relay)?);
            a.push(run(&today)?);
        }
    }
    Ok((a, b))
}

/// The `q` quantile (0..=1) of `v`.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i.min(s.len() - 1)]
}
