//! The daemon process itself: no core dumps, not dumpable, a peer guessing credentials gets
//! slower answers while the operator's own requests do not, and loud warnings for exposed
//! binds and a root system daemon.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use kaged_api::ErrorCode;

use crate::fixture::{SYSTEM_PORT, daemon};

#[test]
fn the_daemon_dumps_no_core_and_hides_its_memory_from_its_own_user() {
    // As `nobody`, so ownership shows dumpability: /proc/<pid> of a non-dumpable process
    // belongs to root.
    let d = daemon().run_as_nobody().start();
    // `setpriv` execs kaged, so the child's pid is the daemon's.
    let proc = format!("/proc/{}", d.pid());
    let limits = std::fs::read_to_string(format!("{proc}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(
        std::fs::metadata(format!("{proc}/environ")).unwrap().uid(),
        0
    );
}

#[test]
fn wrong_credentials_slow_their_peer_down_but_never_the_operator() {
    let d = daemon().start();
    let s = d.login();
    let cookie = format!("kaged_session_{}=forged.forged", d.addr.port());
    let forged = [("Cookie", cookie.as_str())];
    let mut slowest = Duration::ZERO;
    for _ in 0..14 {
        let t = Instant::now();
        let r = d.get("/api/v1/status", &forged);
        assert_eq!(
            (r.status, r.error_code()),
            (401, ErrorCode::Unauthenticated)
        );
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest >= Duration::from_millis(400),
        "never slowed: {slowest:?}"
    );
    // The operator, from the same address, is answered at once.
    let t = Instant::now();
    assert_eq!(d.get_as(&s, "/api/v1/status").status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // No credential at all (a browser after a restart) is not a guess.
    let t = Instant::now();
    for _ in 0..5 {
        assert_eq!(d.get("/api/v1/status", &[]).status, 401);
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_specific_non_loopback_bind_warns_like_a_wildcard() {
    let d = daemon()
        .arg("--bind")
        .arg("127.0.0.1:0")
        .env("KAGED_INSECURE_BIND", "1")
        .start();
    assert!(!d.stderr().contains("exposes kaged"), "{}", d.stderr());
    // Any address of this host that is not loopback will do.
    let Some(ip) = non_loopback_address() else {
        eprintln!("SKIPPED: this host has no non-loopback IPv4 address");
        return;
    };
    let d = daemon()
        .arg("--bind")
        .arg(&format!("{ip}:0"))
        .env("KAGED_INSECURE_BIND", "1")
        .start();
    assert!(
        d.stderr()
            .contains(&format!("exposes kaged to every host that can reach {ip}")),
        "{}",
        d.stderr()
    );
}

#[test]
fn a_root_system_daemon_says_how_to_run_as_the_kaged_user() {
    let _g = SYSTEM_PORT.lock().unwrap_or_else(|p| p.into_inner());
    let d = daemon()
        .system_namespace()
        .env(
            "KAGED_AUTH_SIDECAR_NONCE",
            "0123456789abcdef0123456789abcdef-rootwarn",
        )
        .start();
    let err = d.stderr();
    assert!(err.contains("running system-wide as root"), "{err}");
    assert!(err.contains("User=kaged"), "{err}");
}

pub(crate) fn non_loopback_address() -> Option<std::net::Ipv4Addr> {
    // The source address the kernel would use to reach a public address; no packet is sent.
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9").ok()?;
    match sock.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

#[test]
fn the_cli_sends_its_nonce_only_to_a_listener_of_its_own_user() {
    let d = daemon().start();
    assert!(d.cli(&["ps"]).status.success());
    // Another user's server on another port, and an endpoint file that points there (as after
    // a crash, with the port taken over).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut other = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
        ])
        .arg(port.to_string())
        .current_dir("/tmp")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::fixture::eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let file = d.runtime_dir().join("endpoint.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let moved = text.replace(&format!(":{}\"", d.addr.port()), &format!(":{port}\""));
    assert_ne!(moved, text);
    std::fs::write(&file, moved).unwrap();
    let out = d.cli(&["ps"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    other.kill().unwrap();
    other.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut other.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        !log.contains("GET"),
        "the other user's server was contacted: {log}"
    );
}
