//! Honest input over the PTY WebSocket: sequenced frames reach the process exactly once and in
//! order across a connection that drops mid-typing, through a TCP proxy the test controls.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kaged_api::{ClientControl, ServerControl, SessionInfo};
use pretty_assertions::assert_eq;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::fixture::{Session, TestDaemon, daemon, eventually, project_dir};

type ProxiedWs = tokio_tungstenite::WebSocketStream<TcpStream>;

/// How a proxied connection behaves right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Bytes flow both ways.
    Up,
    /// Client → daemon still flows; daemon → client is swallowed (acks get lost).
    Deaf,
    /// Every connection open now is cut; new ones work.
    Cut,
}

/// A TCP proxy in front of the daemon whose connections the test can degrade and cut.
struct Proxy {
    addr: SocketAddr,
    line: watch::Sender<Line>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (line, _) = watch::channel(Line::Up);
        let lines = line.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, lines.subscribe()));
            }
        });
        Proxy { addr, line }
    }

    fn set(&self, l: Line) {
        self.line.send_replace(l);
    }

    /// Opens the session's PTY socket through the proxy, as [`TestDaemon::ws`] would directly.
    async fn ws(&self, d: &TestDaemon, s: &Session, id: &str) -> ProxiedWs {
        // A new connection starts healthy; only the ones open at a cut are cut.
        self.set(Line::Up);
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let req = d.ws_request(&format!("/api/v1/sessions/{id}/pty"), s);
        let (ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
        assert_eq!(resp.status(), 101);
        ws
    }
}

async fn pipe(client: TcpStream, server: TcpStream, mut line: watch::Receiver<Line>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = [0u8; 16 << 10];
    let mut down = [0u8; 16 << 10];
    loop {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tokio::select! {
            n = cr.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if sw.write_all(&up[..n]).await.is_err() { return },
            },
            n = sr.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if *line.borrow() == Line::Deaf {
                        continue;
                    }
                    if cw.write_all(&down[..n]).await.is_err() { return }
                }
            },
            changed = line.changed() => {
                if changed.is_err() || *line.borrow() == Line::Cut {
                    return;
                }
            }
        }
    }
}

/// A frame of sequenced input: 8-byte big-endian `seq`, then the bytes.
fn frame(seq: u64, data: &[u8]) -> Message {
    let mut f = seq.to_be_bytes().to_vec();
    f.extend_from_slice(data);
    Message::Binary(f.into())
}

async fn say_hello(ws: &mut ProxiedWs, client: Option<&str>) {
    let hello = ClientControl::Hello {
        offset: None,
        client: client.map(str::to_owned),
        screen: None,
    };
    let text = serde_json::to_string(&hello).unwrap();
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// The next control message, skipping terminal output.
async fn next_control(ws: &mut ProxiedWs) -> ServerControl {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a control message within 20 s")
            .expect("the socket to stay open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Starts a session whose process writes what it is typed, untouched, to `typed.log`.
fn start_recorder(d: &TestDaemon, s: &Session, root: &Path) -> SessionInfo {
    let r = d.post(s, "/api/v1/projects", &json!({"path": root}));
    assert_eq!(r.status, 200, "{}", r.body);
    let argv = [
        "sh",
        "-c",
        "stty raw -echo && echo ready && exec cat > typed.log",
    ];
    let r = d.post(
        s,
        "/api/v1/projects/typing/sessions",
        &json!({"argv": argv, "cols": 80, "rows": 24}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json_as()
}

fn keystrokes(n: u64) -> Vec<Vec<u8>> {
    (1..=n).map(|i| format!("<{i}>").into_bytes()).collect()
}

fn wait_for_log(root: &Path, want: &[u8]) {
    eventually(Duration::from_secs(20), || {
        let got = std::fs::read(root.join("typed.log")).unwrap_or_default();
        if got == want {
            Ok(())
        } else if got.len() >= want.len() {
            Err(format!(
                "typed.log is not the keystrokes once each in order:\n got  {}\n want {}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want)
            ))
        } else {
            Err(format!(
                "typed.log has {} of {} bytes",
                got.len(),
                want.len()
            ))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystrokes_survive_a_dropped_socket_exactly_once_and_in_order() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir("version: 1\nproject: typing\n");
    let info = start_recorder(&d, &s, proj.path());
    let proxy = Proxy::start(d.host().parse().unwrap()).await;
    let client = "tab-1";
    let keys = keystrokes(60);

    // First connection: the first 20 keystrokes, each acknowledged.
    let mut ws = proxy.ws(&d, &s, &info.id).await;
    say_hello(&mut ws, Some(client)).await;
    match next_control(&mut ws).await {
        ServerControl::Hello { input_seq, .. } => assert_eq!(input_seq, Some(0)),
        other => panic!("expected hello, got {other:?}"),
    }
    for (i, k) in keys[..20].iter().enumerate() {
        let seq = i as u64 + 1;
        ws.send(frame(seq, k)).await.unwrap();
        assert_eq!(next_control(&mut ws).await, ServerControl::Ack { seq });
    }

    // The line goes deaf: keystrokes 21..40 still reach the daemon, their acks do not come
    // back, and then the connection dies mid-typing, as a phone going through a tunnel does.
    proxy.set(Line::Deaf);
    for (i, k) in keys[20..40].iter().enumerate() {
        ws.send(frame(i as u64 + 21, k)).await.unwrap();
    }
    wait_for_log(proj.path(), &keys[..40].concat());
    proxy.set(Line::Cut);
    drop(ws);

    // Reconnect: the daemon says what it applied; the client resends everything it holds
    // unacknowledged (21..40, all duplicates now) and then types on.
    let mut ws = proxy.ws(&d, &s, &info.id).await;
    say_hello(&mut ws, Some(client)).await;
    match next_control(&mut ws).await {
        ServerControl::Hello { input_seq, .. } => assert_eq!(input_seq, Some(40)),
        other => panic!("expected hello, got {other:?}"),
    }
    for (i, k) in keys[20..].iter().enumerate() {
        let seq = i as u64 + 21;
        ws.send(frame(seq, k)).await.unwrap();
        assert_eq!(next_control(&mut ws).await, ServerControl::Ack { seq });
    }
    wait_for_log(proj.path(), &keys.concat());

    // Another tab has its own numbering and cannot replay this one's.
    let mut other = proxy.ws(&d, &s, &info.id).await;
    say_hello(&mut other, Some("tab-2")).await;
    match next_control(&mut other).await {
        ServerControl::Hello { input_seq, .. } => assert_eq!(input_seq, Some(0)),
        other => panic!("expected hello, got {other:?}"),
    }
    other.send(frame(1, b"[tab-2]")).await.unwrap();
    assert_eq!(
        next_control(&mut other).await,
        ServerControl::Ack { seq: 1 }
    );
    let mut want = keys.concat();
    want.extend_from_slice(b"[tab-2]");
    wait_for_log(proj.path(), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sequenced_input_gets_a_clear_error_and_nothing_is_written() {
    let d = daemon().start();
    let s = d.login();
    let proj = project_dir("version: 1\nproject: typing\n");
    let info = start_recorder(&d, &s, proj.path());
    let proxy = Proxy::start(d.host().parse().unwrap()).await;

    // A client id that is not one: an error, then the socket closes.
    let mut ws = proxy.ws(&d, &s, &info.id).await;
    say_hello(&mut ws, Some("tab 1; rm -rf /")).await;
    match next_control(&mut ws).await {
        ServerControl::Error { message } => {
            assert!(message.contains("hello.client"), "{message}");
            assert!(message.contains("A-Z a-z 0-9 _ -"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }

    let mut ws = proxy.ws(&d, &s, &info.id).await;
    say_hello(&mut ws, Some("tab-1")).await;
    assert!(matches!(
        next_control(&mut ws).await,
        ServerControl::Hello { .. }
    ));
    // Too short to hold a sequence number.
    ws.send(Message::Binary(b"abc".to_vec().into()))
        .await
        .unwrap();
    match next_control(&mut ws).await {
        ServerControl::Error { message } => assert!(message.contains("8-byte"), "{message}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // A frame that skips one is refused and names the frame to resend from.
    ws.send(frame(2, b"second")).await.unwrap();
    match next_control(&mut ws).await {
        ServerControl::InputRefused { seq, message } => {
            assert_eq!(seq, 2);
            assert!(message.contains("resend from 1"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    ws.send(frame(1, b"first")).await.unwrap();
    assert_eq!(next_control(&mut ws).await, ServerControl::Ack { seq: 1 });
    ws.send(frame(2, b"second")).await.unwrap();
    assert_eq!(next_control(&mut ws).await, ServerControl::Ack { seq: 2 });
    wait_for_log(proj.path(), b"firstsecond");
}
