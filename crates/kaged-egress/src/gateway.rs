//! The host side of one cage's egress: an HTTP proxy on a Unix socket that only that cage can
//! reach (its relay copies `127.0.0.1:<port>` in the cage to it). It speaks `CONNECT host:port`
//! and plain HTTP in absolute form, and for each request:
//! 1. checks the host against the cage's `deny` then `allow` lists (deny wins);
//! 2. resolves the name itself and keeps only addresses that are public, or that the operator
//!    named in `[egress] allow_private`;
//! 3. connects to the address it checked, never to the name again, so a second lookup cannot
//!    rebind it to 127.0.0.1;
//! 4. reports the connection (allowed when it ends, with bytes each way and duration; refused
//!    at once) through the sink, which the daemon audits and streams.
//!
//! A refusal is a `403` whose body names the rule and how to allow it, so an agent that reads
//! it learns why instead of retrying.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kaged_api::{EgressConnection, EgressDecision, EgressVia, normalise_host};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::classify::classify;
use crate::policy::{Policy, Refusal};
use crate::providers::{KeyHeader, Providers};

type Body = BoxBody<Bytes, hyper::Error>;

/// How long a name may take to resolve, and an upstream to accept.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Per direction of a tunnel; tokio's default (8 KiB) costs a bulk download a third of its
/// rate in system calls.
const TUNNEL_BUF: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("cannot listen on the egress socket {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("[providers.{name}] in local.toml: {message}")]
    Provider { name: String, message: String },
    #[error(
        "[egress] extra_ca_file {path} in local.toml: {message}; point it at a PEM file of CA certificates"
    )]
    CaFile { path: PathBuf, message: String },
    #[error("cannot set up TLS for provider upstreams: {0}")]
    Tls(String),
}

/// Which cage a gateway serves, for its records.
#[derive(Debug, Clone)]
pub struct CageIds {
    pub session_id: String,
    pub project_id: String,
}

/// A bound, not yet serving gateway. Bind before the cage is spawned (bwrap mounts the
/// socket); serve once the session's id is known. Connections made in between wait in the
/// backlog.
pub struct Gateway {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
}

impl Gateway {
    /// Binds `path`, replacing a stale socket a previous daemon left there.
    pub fn bind(path: &Path) -> Result<Gateway, EgressError> {
        let err = |source| EgressError::Bind {
            path: path.to_owned(),
            source,
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(Gateway {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `stop` is cancelled (the cage has ended), then closes every tunnel and
    /// removes the socket.
    pub async fn serve(
        self,
        policy: Arc<Policy>,
        providers: Arc<Providers>,
        ids: CageIds,
        sink: UnboundedSender<EgressConnection>,
        stop: CancellationToken,
    ) {
        let ctx = Arc::new(Ctx {
            policy,
            providers,
            ids,
            sink,
            stop: stop.clone(),
        });
        let path = self.path.clone();
        match tokio::net::UnixListener::from_std(self.listener) {
            Ok(listener) => loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "egress gateway accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = stop.cancelled() => break,
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(|req| handle(req, ctx.clone()));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        () = ctx.stop.cancelled() => {}
                    }
                });
            },
            Err(e) => tracing::warn!(error = %e, "egress gateway cannot serve"),
        }
        let _ = std::fs::remove_file(&path);
    }
}

struct Ctx {
    policy: Arc<Policy>,
    providers: Arc<Providers>,
    ids: CageIds,
    sink: UnboundedSender<EgressConnection>,
    stop: CancellationToken,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        via: EgressVia,
        host: &str,
        port: u16,
        address: Option<SocketAddr>,
        decision: EgressDecision,
        rule: String,
        counters: Option<&Counters>,
        started: Instant,
    ) {
        let (bytes_up, bytes_down) = counters.map_or((0, 0), |c| {
            (c.up.load(Ordering::Relaxed), c.down.load(Ordering::Relaxed))
        });
        let _ = self.sink.send(EgressConnection {
            session_id: self.ids.session_id.clone(),
            project_id: self.ids.project_id.clone(),
            via,
            host: host.to_owned(),
            port,
            address: address.map(|a| a.ip().to_string()),
            decision,
            rule,
            bytes_up,
            bytes_down,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
}

/// What the cage asked for: `(via, host, port)`, or a 400 message.
fn target(req: &Request<Incoming>) -> Result<(EgressVia, String, u16), String> {
    let uri = req.uri();
    if req.method() == Method::CONNECT {
        let Some(auth) = uri.authority() else {
            return Err("CONNECT needs host:port".into());
        };
        let Some(port) = auth.port_u16() else {
            return Err(format!("CONNECT {auth} names no port; give host:port"));
        };
        return Ok((EgressVia::Connect, normalise_host(auth.host()), port));
    }
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(auth)) => Ok((
            EgressVia::Http,
            normalise_host(auth.host()),
            auth.port_u16().unwrap_or(80),
        )),
        (Some("https"), _) => Err(
            "send HTTPS through the proxy with CONNECT (HTTPS_PROXY is set in the cage), not as \
             an absolute https:// request"
                .into(),
        ),
        _ => Err(format!(
            "this is the cage's egress gateway, an HTTP proxy: request absolute URLs \
             (http://host/path) or CONNECT host:port, not {uri}"
        )),
    }
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    if req.method() != Method::CONNECT
        && req.uri().scheme().is_none()
        && req.uri().path().starts_with("/p/")
    {
        return provider(req, ctx, started).await;
    }
    let (via, host, port) = match target(&req) {
        Ok(t) => t,
        Err(msg) => return Ok(text(StatusCode::BAD_REQUEST, msg)),
    };
    let target_text = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let deny = |rule: String, address: Option<SocketAddr>, body: String| {
        ctx.record(
            via,
            &host,
            port,
            address,
            EgressDecision::Denied,
            rule,
            None,
            started,
        );
        Ok(refused(body))
    };
    let allowed_by = match ctx.policy.check_host(&host, port) {
        Ok(rule) => rule,
        Err(Refusal::Denied(entry)) => {
            return deny(
                format!("deny {entry}"),
                None,
                format!(
                    "kaged egress gateway: {target_text} is refused by the `deny` entry \
                     `{entry}` of this cage's network policy (deny wins over allow). To allow \
                     it, remove that entry from `network.deny` in the project's \
                     .kaged/project.yaml.\n"
                ),
            );
        }
        Err(Refusal::NotAllowed) => {
            return deny(
                "no allow entry matches".into(),
                None,
                format!(
                    "kaged egress gateway: {target_text} is not in this cage's `network.allow` \
                     list. To allow it, add `{target_text}` (or `{host}` for any port) to \
                     `network.allow` in the project's .kaged/project.yaml.\n"
                ),
            );
        }
    };
    let fail = |address: Option<SocketAddr>, why: String| {
        ctx.record(
            via,
            &host,
            port,
            address,
            EgressDecision::Failed,
            why.clone(),
            None,
            started,
        );
        Ok(text(
            StatusCode::BAD_GATEWAY,
            format!("kaged egress gateway: {target_text}: {why}\n"),
        ))
    };
    let addrs = match resolve(&host, port).await {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return fail(None, "the name resolves to no address".into()),
        Err(e) => return fail(None, format!("cannot resolve the name: {e}")),
    };
    let checked: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| {
            ctx.policy
                .may_reach(&host, a.ip(), port, classify(a.ip()).0)
        })
        .collect();
    if checked.is_empty() {
        let first = addrs[0];
        let (class, mapped) = classify(first.ip());
        let what = match mapped {
            Some(v4) => format!("{} (IPv4-mapped {v4}, a {class} address)", first.ip()),
            None => format!("{}, a {class} address", first.ip()),
        };
        return deny(
            format!("{} is {class}", first.ip()),
            Some(first),
            format!(
                "kaged egress gateway: {target_text} resolves to {what}, which no cage may reach: \
                 loopback, private, link-local, CGNAT, multicast and reserved addresses are \
                 refused whatever the project file says. An operator who trusts this service \
                 can add \"{target_text}\" to `allow_private` under [egress] in local.toml.\n"
            ),
        );
    }
    let (tcp, addr) = match connect(&checked).await {
        Ok(pair) => pair,
        Err((addr, why)) => return fail(Some(addr), why),
    };
    let counters = Counters::default();
    let upstream = Counted {
        inner: tcp,
        up: counters.up.clone(),
        down: counters.down.clone(),
    };
    let rule = format!("allow {allowed_by}");
    match via {
        EgressVia::Connect => {
            let ctx2 = ctx.clone();
            tokio::spawn(async move {
                if let Ok(upgraded) = hyper::upgrade::on(req).await {
                    tokio::select! {
                        () = tunnel(upgraded, upstream) => {}
                        () = ctx2.stop.cancelled() => {}
                    }
                }
                ctx2.record(
                    via,
                    &host,
                    port,
                    Some(addr),
                    EgressDecision::Allowed,
                    rule,
                    Some(&counters),
                    started,
                );
            });
            Ok(Response::new(empty()))
        }
        // `target` never says Provider: `/p/` requests went to `provider` above.
        EgressVia::Http | EgressVia::Provider => {
            forward(req, upstream, &ctx, (host, port, addr, rule, counters)).await
        }
    }
}

/// Carries a tunnel to its end: spliced in the kernel when the cage's side is the Unix socket
/// itself (always, from [`Gateway::serve`]), else copied through buffers.
async fn tunnel(upgraded: hyper::upgrade::Upgraded, mut upstream: Counted) {
    match upgraded.downcast::<TokioIo<tokio::net::UnixStream>>() {
        Ok(parts) => {
            let cage = parts.io.into_inner();
            // What the cage sent after its CONNECT, already read by hyper, goes first.
            if !parts.read_buf.is_empty() {
                use tokio::io::AsyncWriteExt;
                if upstream.write_all(&parts.read_buf).await.is_err() {
                    return;
                }
            }
            let Counted { inner, up, down } = upstream;
            let _ = crate::tunnel::splice_both(&cage, &inner, &up, &down).await;
        }
        Err(upgraded) => {
            let mut cage = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut cage,
                &mut upstream,
                TUNNEL_BUF,
                TUNNEL_BUF,
            )
            .await;
        }
    }
}

/// Sends one absolute-form request upstream as origin-form, over the checked connection, and
/// streams the answer back; the record is written when the upstream connection ends.
async fn forward(
    mut req: Request<Incoming>,
    upstream: Counted,
    ctx: &Arc<Ctx>,
    (host, port, addr, rule, counters): (String, u16, SocketAddr, String, Counters),
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(upstream)).await {
            Ok(pair) => pair,
            Err(e) => {
                return Ok(text(
                    StatusCode::BAD_GATEWAY,
                    format!("kaged egress gateway: {addr}: {e}\n"),
                ));
            }
        };
    let ctx2 = ctx.clone();
    let host2 = host.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = conn => {}
            () = ctx2.stop.cancelled() => {}
        }
        ctx2.record(
            EgressVia::Http,
            &host2,
            port,
            Some(addr),
            EgressDecision::Allowed,
            rule,
            Some(&counters),
            started,
        );
    });
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *req.uri_mut() = path.parse::<Uri>().unwrap_or_default();
    let headers = req.headers_mut();
    for name in [
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        headers.remove(name);
    }
    // One request per upstream connection, so the connection's end is the request's end.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    match sender.send_request(req).await {
        Ok(resp) => Ok(resp.map(BodyExt::boxed)),
        Err(e) => Ok(text(
            StatusCode::BAD_GATEWAY,
            format!("kaged egress gateway: {host}:{port}: {e}\n"),
        )),
    }
}

/// `/p/<name>/<rest>`: to the provider's upstream over TLS, with the real key in place of
/// whatever key the cage sent. The upstream is the operator's, but its address is checked
/// like any other: a private one needs `[egress] allow_private` too.
async fn provider(
    mut req: Request<Incoming>,
    ctx: Arc<Ctx>,
    started: Instant,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix("/p/").unwrap_or_default();
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(route) = ctx.providers.routes.iter().find(|r| r.name == name) else {
        let known: Vec<&str> = ctx
            .providers
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        return Ok(text(
            StatusCode::NOT_FOUND,
            format!(
                "kaged egress gateway: no provider {name:?} is declared for gateways (declared: \
                 {}); the operator adds one under [providers.{name}] in local.toml, with \
                 api_key_env and, unless it is anthropic or openai, base_url\n",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let (host, port) = (route.host.clone(), route.port);
    let rule = format!("provider {}", route.name);
    let fail = |status: StatusCode, address: Option<SocketAddr>, why: String| {
        ctx.record(
            EgressVia::Provider,
            &host,
            port,
            address,
            EgressDecision::Failed,
            format!("{rule}: {why}"),
            None,
            started,
        );
        Ok(text(
            status,
            format!("kaged egress gateway: provider {}: {why}\n", route.name),
        ))
    };
    let Some(key) = route.key.clone() else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!(
                "its key variable {} is not set in kaged's environment; the operator sets it \
                 and restarts kaged",
                route.key_env
            ),
        );
    };
    let Some(tls) = ctx.providers.tls.clone() else {
        let why = ctx.providers.tls_error.clone().unwrap_or_default();
        return fail(StatusCode::BAD_GATEWAY, None, format!("no TLS: {why}"));
    };
    let addrs = match resolve(&host, port).await {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                None,
                "resolves to no address".into(),
            );
        }
        Err(e) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                None,
                format!("cannot resolve: {e}"),
            );
        }
    };
    let checked: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| {
            ctx.policy
                .may_reach(&host, a.ip(), port, classify(a.ip()).0)
        })
        .collect();
    if checked.is_empty() {
        let first = addrs[0];
        let class = classify(first.ip()).0;
        ctx.record(
            EgressVia::Provider,
            &host,
            port,
            Some(first),
            EgressDecision::Denied,
            format!("{} is {class}", first.ip()),
            None,
            started,
        );
        return Ok(refused(format!(
            "kaged egress gateway: provider {} at {host}:{port} resolves to {}, a {class} \
             address; the operator allows it with \"{host}:{port}\" in `allow_private` under \
             [egress] in local.toml\n",
            route.name,
            first.ip()
        )));
    }
    let (tcp, addr) = match connect(&checked).await {
        Ok(pair) => pair,
        Err((addr, why)) => return fail(StatusCode::BAD_GATEWAY, Some(addr), why),
    };
    let counters = Counters::default();
    let upstream = Counted {
        inner: tcp,
        up: counters.up.clone(),
        down: counters.down.clone(),
    };
    let server_name = match rustls_pki_types::ServerName::try_from(host.clone()) {
        Ok(n) => n,
        Err(e) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                Some(addr),
                format!("bad TLS name: {e}"),
            );
        }
    };
    let tls_stream = match tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, upstream)
        .await
    {
        Ok(s) => s,
        Err(e) => return fail(StatusCode::BAD_GATEWAY, Some(addr), format!("TLS: {e}")),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake::<_, Incoming>(
        TokioIo::new(tls_stream),
    )
    .await
    {
        Ok(pair) => pair,
        Err(e) => return fail(StatusCode::BAD_GATEWAY, Some(addr), e.to_string()),
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target = format!("{}/{tail}{query}", route.base_path);
    let Ok(uri) = target.parse::<Uri>() else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            format!("kaged egress gateway: {target:?} is not a valid request path\n"),
        ));
    };
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    for name in [
        "authorization",
        "x-api-key",
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        headers.remove(name);
    }
    let authority = if port == 443 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    if let Ok(v) = HeaderValue::from_str(&authority) {
        headers.insert(header::HOST, v);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let (name, value) = match route.header {
        KeyHeader::XApiKey => ("x-api-key", key.expose().to_owned()),
        KeyHeader::Bearer => ("authorization", format!("Bearer {}", key.expose())),
    };
    match HeaderValue::from_str(&value) {
        Ok(mut v) => {
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        Err(_) => {
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(addr),
                format!("the value of {} is not a valid header value", route.key_env),
            );
        }
    }
    let ctx2 = ctx.clone();
    let host2 = host.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = conn => {}
            () = ctx2.stop.cancelled() => {}
        }
        ctx2.record(
            EgressVia::Provider,
            &host2,
            port,
            Some(addr),
            EgressDecision::Allowed,
            rule,
            Some(&counters),
            started,
        );
    });
    match sender.send_request(req).await {
        Ok(resp) => Ok(resp.map(BodyExt::boxed)),
        Err(e) => Ok(text(
            StatusCode::BAD_GATEWAY,
            format!("kaged egress gateway: provider {name}: {e}\n"),
        )),
    }
}

/// Connects to the first of the checked addresses that answers (a name often has an IPv6
/// and an IPv4 address, and a service listens on one); never to anything unchecked.
async fn connect(checked: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), (SocketAddr, String)> {
    let mut last = (checked[0], String::new());
    for addr in checked {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok((tcp, *addr));
            }
            Ok(Err(e)) => last = (*addr, format!("cannot connect to {addr}: {e}")),
            Err(_) => last = (*addr, format!("{addr} did not answer in time")),
        }
    }
    Err(last)
}

async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(addrs) => Ok(addrs?.collect()),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
    }
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn refused(body: String) -> Response<Body> {
    let mut resp = text(StatusCode::FORBIDDEN, body);
    resp.headers_mut()
        .insert("x-kaged-egress", HeaderValue::from_static("denied"));
    resp
}

#[derive(Default, Clone)]
struct Counters {
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

/// The upstream connection, counting bytes each way for the record.
struct Counted {
    inner: TcpStream,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        this.down.fetch_add(read as u64, Ordering::Relaxed);
        res
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.up.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
