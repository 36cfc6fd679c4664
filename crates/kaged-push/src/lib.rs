//! `push` owns Web Push to the operator's devices (RFC 8030, 8291, 8292): the daemon's VAPID
//! key pair, generated once and kept in the state dir (0600); the aes128gcm encryption of each
//! message to one browser's keys; and its delivery over HTTP/1.1, with TLS from the caller's
//! rustls configuration (the one the egress gateway uses, so the same roots apply). It never
//! decides who is told what; the daemon does, and keeps secrets and command text out of it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::p256;

/// How long a push service keeps a message for an offline device.
const TTL: Duration = Duration::from_secs(24 * 3600);
/// The VAPID token's lifetime; RFC 8292 allows at most 24 hours.
const TOKEN_LIFETIME_HOURS: u64 = 12;
/// Connect, send and read the answer within this.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// RFC 8291 leaves room for 4 KiB records; a notification needs far less.
pub const MAX_PAYLOAD: usize = 3 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot {action} the VAPID key {path}: {source}")]
    KeyIo {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the VAPID key {path} {problem}; remove it (browsers then need to subscribe again) or fix its owner and mode (0600)"
    )]
    KeyFile { path: PathBuf, problem: String },
    #[error(
        "push endpoint {endpoint:?} is not allowed: {why}; subscribe from a browser, whose push service speaks https"
    )]
    Endpoint { endpoint: String, why: &'static str },
    #[error("push subscription key `{key}` is malformed: {why}; send PushSubscription.toJSON()")]
    Keys { key: &'static str, why: String },
    #[error("the push message is {len} bytes, more than {MAX_PAYLOAD}")]
    TooLong { len: usize },
    #[error("cannot encrypt or sign the push message: {0}")]
    Crypto(String),
    #[error("push to {service} failed: {why}")]
    Delivery { service: String, why: String },
}

/// The daemon's VAPID key pair (RFC 8292). The public half is what browsers subscribe with.
pub struct Vapid {
    key: ES256KeyPair,
    public: String,
}

/// Never shows the private key.
impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// Reads the key at `path`, or generates one and writes it there (mode 0600, refusing a
    /// symlink). A key that is another user's, or readable by group or others, is refused.
    pub fn load_or_create(path: &Path) -> Result<Vapid, PushError> {
        let io = |action| {
            move |source| PushError::KeyIo {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let bad = |problem: String| PushError::KeyFile {
            path: path.to_owned(),
            problem,
        };
        let key = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => read_key(file, path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ES256KeyPair::generate();
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(io("create"))?;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(io("chmod"))?;
                let text = format!("{}\n", B64.encode(key.to_bytes()));
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io("write"))?;
                key
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(bad("is a symlink".into()));
            }
            Err(e) => return Err(io("open")(e)),
        };
        let public = B64.encode(key.public_key().public_key().to_bytes_uncompressed());
        Ok(Vapid { key, public })
    }

    /// The public key, base64url of the uncompressed point: `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `endpoint` (RFC 8292 §3): a JWT for the
    /// push service's origin, with the port when it is not the scheme's default (the crate's
    /// own helper leaves it out).
    fn authorization(&self, endpoint: &url::Url, contact: &str) -> Result<String, PushError> {
        let audience = endpoint.origin().ascii_serialization();
        let claims = Claims::create(web_push_native::jwt_simple::prelude::Duration::from_hours(
            TOKEN_LIFETIME_HOURS,
        ))
        .with_audience(audience)
        .with_subject(contact);
        let token = self
            .key
            .sign(claims)
            .map_err(|e| PushError::Crypto(e.to_string()))?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

fn read_key(mut file: File, path: &Path) -> Result<ES256KeyPair, PushError> {
    let bad = |problem: String| PushError::KeyFile {
        path: path.to_owned(),
        problem,
    };
    let meta = file.metadata().map_err(|source| PushError::KeyIo {
        action: "stat",
        path: path.to_owned(),
        source,
    })?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.uid() != me {
        return Err(bad(format!("belongs to uid {}, not {me}", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "has mode {:o}: group or others may read it",
            meta.mode() & 0o7777
        )));
    }
    let mut text = String::new();
    (&mut file)
        .take(1024)
        .read_to_string(&mut text)
        .map_err(|source| PushError::KeyIo {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
    let raw = B64
        .decode(text.trim())
        .map_err(|e| bad(format!("is not base64url: {e}")))?;
    ES256KeyPair::from_bytes(&raw).map_err(|e| bad(format!("is not a P-256 private key: {e}")))
}

/// Checks a subscription's endpoint: `https://`, or `http://` to a loopback address (a push
/// service on the same host, or a test's). Returns the push service's origin, which is all
/// the API ever shows of it.
pub fn check_endpoint(endpoint: &str) -> Result<String, PushError> {
    let refuse = |why| PushError::Endpoint {
        endpoint: endpoint.chars().take(80).collect(),
        why,
    };
    if endpoint.len() > 2048 {
        return Err(refuse("it is longer than 2048 bytes"));
    }
    let url = url::Url::parse(endpoint).map_err(|_| refuse("it is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries credentials"));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return Err(refuse("it names no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(refuse("plain http is allowed only to a loopback address")),
        _ => return Err(refuse("only https:// endpoints are pushed to")),
    }
    Ok(url.origin().ascii_serialization())
}

/// Checks a subscription's keys as RFC 8291 defines them: a P-256 point and 16 bytes.
pub fn check_keys(p256dh: &str, auth: &str) -> Result<(), PushError> {
    decode_keys(p256dh, auth).map(|_| ())
}

fn decode_keys(
    p256dh: &str,
    auth: &str,
) -> Result<(p256::PublicKey, web_push_native::Auth), PushError> {
    let point = B64
        .decode(p256dh.trim_end_matches('='))
        .map_err(|e| PushError::Keys {
            key: "p256dh",
            why: e.to_string(),
        })?;
    let public = p256::PublicKey::from_sec1_bytes(&point).map_err(|_| PushError::Keys {
        key: "p256dh",
        why: "not a point on P-256".into(),
    })?;
    let secret = B64
        .decode(auth.trim_end_matches('='))
        .map_err(|e| PushError::Keys {
            key: "auth",
            why: e.to_string(),
        })?;
    if secret.len() != 16 {
        return Err(PushError::Keys {
            key: "auth",
            why: format!("{} bytes, not 16", secret.len()),
        });
    }
    Ok((public, web_push_native::Auth::clone_from_slice(&secret)))
}

/// One browser to push to.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub endpoint: &'a str,
    pub p256dh: &'a str,
    pub auth: &'a str,
}

/// What the push service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted (201, or another 2xx).
    Accepted(u16),
    /// The subscription has expired or was unsubscribed (404 or 410): forget it.
    Gone(u16),
}

/// Sends push messages with the daemon's VAPID key.
pub struct Pusher {
    vapid: Vapid,
    contact: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Pusher {
    /// `contact` is the VAPID subject (`push.contact`); `tls` verifies https push services.
    pub fn new(vapid: Vapid, contact: String, tls: Arc<rustls::ClientConfig>) -> Self {
        Pusher {
            vapid,
            contact,
            tls,
        }
    }

    pub fn public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// Encrypts `payload` to the target's keys (aes128gcm, RFC 8291) and delivers it.
    pub async fn send(&self, to: Target<'_>, payload: &[u8]) -> Result<Delivered, PushError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(PushError::TooLong { len: payload.len() });
        }
        let service = check_endpoint(to.endpoint)?;
        let url = url::Url::parse(to.endpoint).map_err(|_| PushError::Endpoint {
            endpoint: service.clone(),
            why: "it is not a URL",
        })?;
        let (public, auth) = decode_keys(to.p256dh, to.auth)?;
        let body = web_push_native::encrypt(payload.to_vec(), &public, &auth)
            .map_err(|e| PushError::Crypto(e.to_string()))?;
        let authorization = self.vapid.authorization(&url, &self.contact)?;
        let fail = |why: String| PushError::Delivery {
            service: service.clone(),
            why,
        };
        // Origin-form (`/path?query`), as a server expects from a client that is no proxy.
        let request = http::Request::post(&url[url::Position::BeforePath..])
            .header(http::header::HOST, host_header(&url))
            .header("ttl", TTL.as_secs())
            .header("urgency", "high")
            .header(http::header::CONTENT_ENCODING, "aes128gcm")
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(e.to_string()))?;
        let status = tokio::time::timeout(DELIVERY_TIMEOUT, self.deliver(&url, request))
            .await
            .map_err(|_| fail(format!("no answer within {DELIVERY_TIMEOUT:?}")))?
            .map_err(fail)?;
        match status {
            200..=299 => Ok(Delivered::Accepted(status)),
            404 | 410 => Ok(Delivered::Gone(status)),
            other => Err(fail(format!("the push service answered {other}"))),
        }
    }

    async fn deliver(
        &self,
        url: &url::Url,
        request: http::Request<Full<Bytes>>,
    ) -> Result<u16, String> {
        let host = url.host_str().ok_or("no host")?;
        let port = url.port_or_known_default().ok_or("no port")?;
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if url.scheme() == "https" {
            let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("bad TLS name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

async fn exchange<IO>(io: IO, request: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "push connection ended");
        }
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status().as_u16();
    // Read (and drop) the answer so the connection ends cleanly.
    let _ = response.into_body().collect().await;
    driver.abort();
    Ok(status)
}

#[cfg(test)]
mod tests;
