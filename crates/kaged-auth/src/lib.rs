//! `auth` owns who a request is (ADR-0007 and its amendments, design §4): the per-start
//! loopback nonce and its one-time launch tokens and session cookies, the sidecar header
//! contract, insecure mode, CSRF tokens, and the single [`Identity`] handlers see.
//! It never trusts a header it was not told to trust, never logs a secret, and compares every
//! secret in constant time.

mod secret_file;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use kaged_config::AuthMode;
pub use secret_file::{read_secret_file, remove_quietly, write_secret_file};

pub const HEADER_USER_ID: &str = "x-kaged-user-id";
pub const HEADER_USER_EMAIL: &str = "x-kaged-user-email";
pub const HEADER_USER_GROUPS: &str = "x-kaged-user-groups";
pub const HEADER_NONCE: &str = "x-kaged-auth-nonce";
pub const HEADER_CSRF: &str = "x-kaged-csrf";

const MAX_USER_ID: usize = 256;
const MAX_EMAIL: usize = 320;
const MAX_GROUPS: usize = 4096;
const MAX_LIVE_LAUNCH_TOKENS: usize = 64;
/// A sidecar nonce an operator supplies must be at least this long; shorter ones are guessable.
pub const MIN_SIDECAR_NONCE_LEN: usize = 32;
/// Header carrying a browser session's page key ([`AuthPolicy::page_key`]); WebSocket
/// upgrades, which cannot set headers, carry it as the `page` query parameter.
pub const HEADER_PAGE_KEY: &str = "x-kaged-page";
/// A browser session lasts this long after its last renewal.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A cookie in use is renewed once it is this old, so an active session never expires.
pub const COOKIE_RENEW_AFTER: Duration = Duration::from_secs(3600);

/// A new browser session: the cookie to set and the page key to hand the page.
#[derive(Clone)]
pub struct Launched {
    pub set_cookie: String,
    pub page_key: String,
}

/// Never shows the secrets it carries.
impl fmt::Debug for Launched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Launched([redacted])")
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub use kaged_api::Identity;

/// What authenticated a request; CSRF tokens are bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session cookie: its session id and when it was (re)issued, in Unix seconds.
    Cookie {
        sid: String,
        issued: u64,
    },
    /// `Authorization: Bearer <nonce>` from the local CLI, which read the nonce file.
    LocalNonce,
    Sidecar,
    Insecure,
}

#[derive(Debug, Clone)]
pub struct Authenticated {
    pub identity: Identity,
    pub credential: Credential,
}

/// Why a request was refused. The variants name what was wrong, never the values presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials; open a fresh launch URL from `kaged auth open`")]
    Missing,
    #[error(
        "the session cookie is invalid or from an earlier daemon start; run `kaged auth open` for a new launch URL"
    )]
    BadCookie,
    #[error("more than one {0} header")]
    Duplicate(&'static str),
    #[error("the sidecar nonce is missing or wrong")]
    BadNonce,
    #[error("X-Kaged-User-Id is missing")]
    MissingUserId,
    #[error("{0} is malformed (too long, empty, or has control characters)")]
    Malformed(&'static str),
    #[error(
        "the launch token is unknown, expired or already used; run `kaged auth open` for a new one"
    )]
    BadLaunchToken,
    #[error("launch URLs are only used in loopback auth mode")]
    NotLoopback,
    #[error(
        "this browser session's page key is missing or wrong; the cookie alone is not enough. Open kaged from its own page, or a fresh launch URL from `kaged auth open`"
    )]
    PageKey,
}

impl AuthError {
    /// Stable machine-readable reason for audit rows.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credentials",
            AuthError::BadCookie => "bad_cookie",
            AuthError::Duplicate(_) => "duplicate_header",
            AuthError::BadNonce => "bad_nonce",
            AuthError::MissingUserId => "missing_user_id",
            AuthError::Malformed(_) => "malformed_header",
            AuthError::BadLaunchToken => "bad_launch_token",
            AuthError::NotLoopback => "not_loopback",
            AuthError::PageKey => "bad_page_key",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot {what} at {path}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{path} is a symlink; kaged refuses to follow symlinks for secrets. Remove it")]
    Symlink { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error(
        "{path} is owned by UID {owner}, not by the daemon's UID {me}; `chown` it to the daemon user"
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "{path} has mode {mode:04o}; secrets must not be accessible to group or others. Run `chmod 600 {path}` (or `chmod 700` for a directory)"
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error(
        "the sidecar nonce from {origin} is only {len} characters; use at least {MIN_SIDECAR_NONCE_LEN} random characters (e.g. `openssl rand -hex 32`)"
    )]
    WeakNonce { origin: String, len: usize },
    #[error("the OS random generator failed: {0}")]
    Random(String),
}

/// 256 random bits from the OS, URL-safe base64. `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret {
    value: String,
    /// SHA-256 of `value`, computed once: comparisons hash only the presented side.
    digest: [u8; 32],
}

impl Secret {
    pub fn generate() -> Result<Secret, AuthSetupError> {
        Ok(Secret::from_string(B64.encode(random_bytes::<32>()?)))
    }

    pub fn from_string(value: String) -> Secret {
        let digest = Sha256::digest(value.as_bytes()).into();
        Secret { value, digest }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Constant-time equality; hashing first makes the time independent of length too.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthSetupError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| AuthSetupError::Random(e.to_string()))?;
    Ok(buf)
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    Keyed::new(key).tag(parts)
}

/// An HMAC key with its inner and outer pads already hashed: the gate tags or checks a
/// cookie and a page key on every request, and cloning this state saves two of the four
/// SHA-256 compressions each costs.
#[derive(Clone)]
struct Keyed(HmacSha256);

impl Keyed {
    fn new(key: &[u8]) -> Keyed {
        // HMAC accepts keys of any length, so this never falls back.
        Keyed(
            HmacSha256::new_from_slice(key)
                .unwrap_or_else(|_| HmacSha256::new(&Default::default())),
        )
    }

    /// The tag of `parts`, each prefixed with its length so no two splits collide.
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.0.clone();
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

/// Everything `AuthPolicy::new` needs, built once at start-up.
pub struct PolicyConfig {
    pub mode: AuthMode,
    /// The bound port; it names the session cookie so two instances on one host coexist.
    pub port: u16,
    /// The operator's UNIX user name (loopback identity).
    pub local_user: String,
    /// Loopback: the per-start nonce written to the auth-cookie file.
    pub loopback_nonce: Option<Secret>,
    /// Sidecar: the shared nonce.
    pub sidecar_nonce: Option<Secret>,
    pub launch_ttl: Duration,
}

/// The request-time auth decision, built once per daemon start.
pub struct AuthPolicy {
    mode: AuthMode,
    cookie_name: String,
    local_user: String,
    loopback_nonce: Option<Secret>,
    sidecar_nonce: Option<Secret>,
    /// Keys CSRF tokens; random per start so a restart invalidates them.
    key: [u8; 32],
    /// Keys session cookies and their page keys; derived from `key` and the nonce, so a
    /// restart (new nonce) invalidates every cookie, and replaced by [`AuthPolicy::revoke_all`].
    cookie_key: std::sync::RwLock<Keyed>,
    /// Sessions signed out one by one (`POST /api/v1/auth/logout`) until the next restart.
    signed_out: Mutex<std::collections::HashSet<String>>,
    launch_ttl: Duration,
    launch_tokens: Mutex<HashMap<[u8; 32], Instant>>,
}

impl AuthPolicy {
    pub fn new(cfg: PolicyConfig) -> Result<AuthPolicy, AuthSetupError> {
        let key = random_bytes::<32>()?;
        let nonce = cfg
            .loopback_nonce
            .as_ref()
            .map(|n| n.expose().as_bytes())
            .unwrap_or_default();
        let cookie_key = mac(&key, &[b"cookie-key", nonce]);
        Ok(AuthPolicy {
            mode: cfg.mode,
            cookie_name: format!("kaged_session_{}", cfg.port),
            local_user: cfg.local_user,
            loopback_nonce: cfg.loopback_nonce,
            sidecar_nonce: cfg.sidecar_nonce,
            key,
            cookie_key: std::sync::RwLock::new(Keyed::new(&cookie_key)),
            signed_out: Mutex::new(std::collections::HashSet::new()),
            launch_ttl: cfg.launch_ttl,
            launch_tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    fn local_identity(&self) -> Identity {
        Identity {
            user_id: self.local_user.clone(),
            email: Some(format!("{}@localhost", self.local_user)),
            groups: Vec::new(),
            mode: AuthMode::Loopback,
        }
    }

    /// Decides who sent `headers`, per the configured mode only: loopback never looks at
    /// `X-Kaged-*`, sidecar never looks at cookies.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, AuthError> {
        match self.mode {
            AuthMode::Insecure => Ok(Authenticated {
                identity: Identity {
                    user_id: "insecure-mode".to_owned(),
                    email: None,
                    groups: Vec::new(),
                    mode: AuthMode::Insecure,
                },
                credential: Credential::Insecure,
            }),
            AuthMode::Loopback => self.authenticate_loopback(headers),
            AuthMode::Sidecar => self.authenticate_sidecar(headers),
        }
    }

    fn authenticate_loopback(&self, headers: &HeaderMap) -> Result<Authenticated, AuthError> {
        if let Some(bearer) = single(headers, "authorization", "Authorization")? {
            let token = bearer
                .strip_prefix(b"Bearer ")
                .ok_or(AuthError::Malformed("Authorization"))?;
            let ok = self
                .loopback_nonce
                .as_ref()
                .is_some_and(|n| n.matches(token));
            if !ok {
                return Err(AuthError::BadNonce);
            }
            return Ok(Authenticated {
                identity: self.local_identity(),
                credential: Credential::LocalNonce,
            });
        }
        let mut found = None;
        for value in headers.get_all(http::header::COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            for pair in text.split(';') {
                let Some((name, val)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name == self.cookie_name {
                    if found.is_some() {
                        return Err(AuthError::Duplicate("session cookie"));
                    }
                    found = Some(val.to_owned());
                }
            }
        }
        let cookie = found.ok_or(AuthError::Missing)?;
        let (sid, issued) = self
            .verify_cookie(&cookie, unix_now())
            .ok_or(AuthError::BadCookie)?;
        Ok(Authenticated {
            identity: self.local_identity(),
            credential: Credential::Cookie { sid, issued },
        })
    }

    fn authenticate_sidecar(&self, headers: &HeaderMap) -> Result<Authenticated, AuthError> {
        let nonce =
            single(headers, HEADER_NONCE, "X-Kaged-Auth-Nonce")?.ok_or(AuthError::BadNonce)?;
        let ok = self
            .sidecar_nonce
            .as_ref()
            .is_some_and(|n| n.matches(nonce));
        if !ok {
            // Identity headers are ignored entirely when the nonce fails.
            return Err(AuthError::BadNonce);
        }
        let user_id =
            single(headers, HEADER_USER_ID, "X-Kaged-User-Id")?.ok_or(AuthError::MissingUserId)?;
        let user_id = well_formed(user_id, MAX_USER_ID, "X-Kaged-User-Id")?;
        let email = single(headers, HEADER_USER_EMAIL, "X-Kaged-User-Email")?
            .map(|v| well_formed(v, MAX_EMAIL, "X-Kaged-User-Email"))
            .transpose()?;
        let groups = match single(headers, HEADER_USER_GROUPS, "X-Kaged-User-Groups")? {
            None | Some(b"") => Vec::new(),
            Some(v) => well_formed(v, MAX_GROUPS, "X-Kaged-User-Groups")?
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        Ok(Authenticated {
            identity: Identity {
                user_id,
                email,
                groups,
                mode: AuthMode::Sidecar,
            },
            credential: Credential::Sidecar,
        })
    }

    fn cookie_key(&self) -> Keyed {
        self.cookie_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn cookie_tag(&self, sid: &str, issued: u64) -> [u8; 32] {
        let issued = issued.to_string();
        self.cookie_key()
            .tag(&[b"session", sid.as_bytes(), b".", issued.as_bytes()])
    }

    /// `<sid>.<issued>.<tag>`: the issue time is under the tag, so a cookie older than
    /// [`COOKIE_LIFETIME`] is refused here, whatever the browser kept.
    fn set_cookie(&self, sid: &str, issued: u64) -> String {
        let tag = B64.encode(self.cookie_tag(sid, issued));
        format!(
            "{}={sid}.{issued}.{tag}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
            self.cookie_name,
            COOKIE_LIFETIME.as_secs()
        )
    }

    fn verify_cookie(&self, value: &str, now: u64) -> Option<(String, u64)> {
        let (sid, rest) = value.split_once('.')?;
        let (issued, tag) = rest.split_once('.')?;
        if sid.len() != 22
            || !sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let issued: u64 = issued.parse().ok()?;
        // A minute of clock skew at most; older than the lifetime is expired.
        if issued > now + 60 || now.saturating_sub(issued) >= COOKIE_LIFETIME.as_secs() {
            return None;
        }
        // Room for base64's length estimate; a valid tag decodes to exactly 32 bytes.
        let mut presented = [0u8; 48];
        match B64.decode_slice(tag, &mut presented) {
            Ok(32) => {}
            _ => return None,
        }
        let ok: bool = self.cookie_tag(sid, issued).ct_eq(&presented[..32]).into();
        let signed_out = self
            .signed_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sid);
        (ok && !signed_out).then(|| (sid.to_owned(), issued))
    }

    /// The page key of a browser session: a second secret the daemon hands only to its own
    /// page (in the launch redirect's fragment, kept in that origin's storage). Browsers send
    /// a host's cookies to every port on it, so the cookie alone must not be a credential;
    /// another port can read neither this origin's storage nor the key.
    pub fn page_key(&self, auth: &Authenticated) -> Option<String> {
        self.page_tag(auth).map(|t| B64.encode(t))
    }

    fn page_tag(&self, auth: &Authenticated) -> Option<[u8; 32]> {
        match &auth.credential {
            Credential::Cookie { sid, .. } => {
                Some(self.cookie_key().tag(&[b"page", sid.as_bytes()]))
            }
            Credential::LocalNonce | Credential::Sidecar | Credential::Insecure => None,
        }
    }

    /// Whether `presented` is the page key of this cookie session. Credentials that are not
    /// a browser cookie need none and always pass.
    pub fn verify_page_key(&self, auth: &Authenticated, presented: Option<&[u8]>) -> bool {
        let Some(expected) = self.page_tag(auth) else {
            return true;
        };
        // Room for base64's length estimate; a page key decodes to exactly 32 bytes.
        let mut got = [0u8; 48];
        match presented.map(|p| B64.decode_slice(p, &mut got)) {
            Some(Ok(32)) => expected.ct_eq(&got[..32]).into(),
            _ => false,
        }
    }

    /// A fresh `Set-Cookie` when a cookie in use is older than [`COOKIE_RENEW_AFTER`]: the
    /// session slides while used and ends [`COOKIE_LIFETIME`] after its last renewal.
    pub fn renewal(&self, auth: &Authenticated) -> Option<String> {
        match &auth.credential {
            Credential::Cookie { sid, issued }
                if unix_now().saturating_sub(*issued) >= COOKIE_RENEW_AFTER.as_secs() =>
            {
                Some(self.set_cookie(sid, unix_now()))
            }
            _ => None,
        }
    }

    /// Signs this browser session out for good; returns the `Set-Cookie` that deletes the
    /// cookie. Other credentials have nothing to sign out.
    pub fn sign_out(&self, auth: &Authenticated) -> Option<String> {
        let Credential::Cookie { sid, .. } = &auth.credential else {
            return None;
        };
        self.signed_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sid.clone());
        Some(format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
            self.cookie_name
        ))
    }

    /// Signs every browser out: a new cookie key makes every cookie and page key worthless.
    pub fn revoke_all(&self) -> Result<(), AuthSetupError> {
        let fresh = random_bytes::<32>()?;
        *self.cookie_key.write().unwrap_or_else(|p| p.into_inner()) = Keyed::new(&fresh);
        self.signed_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }

    /// Issues a one-time launch token, valid for the configured TTL.
    pub fn issue_launch_token(&self) -> Result<String, AuthSetupError> {
        let token = B64.encode(random_bytes::<32>()?);
        let now = Instant::now();
        let mut live = self.launch_tokens.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, exp| *exp > now);
        if live.len() >= MAX_LIVE_LAUNCH_TOKENS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(
            Sha256::digest(token.as_bytes()).into(),
            now + self.launch_ttl,
        );
        Ok(token)
    }

    /// Redeems a launch token (or the nonce itself, for an operator reading the file by hand)
    /// and returns the new browser session. A token works once; concurrent redeems race on
    /// one lock and only one wins.
    pub fn redeem_launch(&self, presented: &str) -> Result<Launched, AuthError> {
        if self.mode != AuthMode::Loopback {
            return Err(AuthError::NotLoopback);
        }
        let key: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let used = {
            let mut live = self.launch_tokens.lock().unwrap_or_else(|p| p.into_inner());
            // HashMap lookup by digest: the presented value is never compared byte by byte.
            live.remove(&key).is_some_and(|exp| exp > Instant::now())
        };
        let is_nonce = self
            .loopback_nonce
            .as_ref()
            .is_some_and(|n| n.matches(presented.as_bytes()));
        if !(used || is_nonce) {
            return Err(AuthError::BadLaunchToken);
        }
        let sid = B64.encode(random_bytes::<16>().map_err(|_| AuthError::BadLaunchToken)?);
        let issued = unix_now();
        let session = Authenticated {
            identity: self.local_identity(),
            credential: Credential::Cookie {
                sid: sid.clone(),
                issued,
            },
        };
        Ok(Launched {
            set_cookie: self.set_cookie(&sid, issued),
            page_key: self.page_key(&session).unwrap_or_default(),
        })
    }

    /// The CSRF token for an authenticated caller, bound to its session or identity.
    pub fn csrf_token(&self, auth: &Authenticated) -> String {
        let binding: (&[u8], &[u8]) = match &auth.credential {
            Credential::Cookie { sid, .. } => (b"cookie", sid.as_bytes()),
            Credential::LocalNonce => (b"local", auth.identity.user_id.as_bytes()),
            Credential::Sidecar => (b"sidecar", auth.identity.user_id.as_bytes()),
            Credential::Insecure => (b"insecure", auth.identity.user_id.as_bytes()),
        };
        B64.encode(mac(&self.key, &[b"csrf", binding.0, binding.1]))
    }

    pub fn verify_csrf(&self, auth: &Authenticated, presented: &[u8]) -> bool {
        let expected = self.csrf_token(auth);
        Sha256::digest(expected.as_bytes())
            .ct_eq(&Sha256::digest(presented))
            .into()
    }
}

/// At most one header of `name`; two is an error (ambiguity is how spoofing hides).
fn single<'a>(
    headers: &'a HeaderMap,
    name: &str,
    display: &'static str,
) -> Result<Option<&'a [u8]>, AuthError> {
    let mut it = headers.get_all(name).iter();
    let first = it.next();
    if it.next().is_some() {
        return Err(AuthError::Duplicate(display));
    }
    Ok(first.map(|v| v.as_bytes()))
}

fn well_formed(raw: &[u8], max: usize, name: &'static str) -> Result<String, AuthError> {
    let text = std::str::from_utf8(raw).map_err(|_| AuthError::Malformed(name))?;
    let text = text.trim();
    if text.is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(AuthError::Malformed(name));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests;
