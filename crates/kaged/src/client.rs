//! How CLI subcommands find and talk to the running daemon: the endpoint file in the runtime
//! dir says where it listens; the nonce files (readable only by the daemon's UID) prove who we
//! are, through the same auth gate as every browser. Requests and answers are the wire types
//! of `kaged-api`; nothing is read by key. No secret ever goes on a command line.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kaged_api::{AuthMode, ErrorEnvelope, Me};
use kaged_daemon::Endpoint;
use kaged_deploy::{Layout, Probe};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn layout(mode: Option<&str>) -> Result<Layout> {
    Ok(Layout::resolve(&Probe::from_env(mode.map(str::to_owned)))?)
}

/// ADR-0007: a one-line warning on every subcommand while the daemon it talks to is insecure.
/// It goes to stderr so `--json` output stays parseable.
pub fn warn_if_daemon_insecure(mode: Option<&str>) {
    let Ok(layout) = layout(mode) else { return };
    if let Some(ep) = Endpoint::read(&layout) {
        if ep.insecure {
            eprintln!(
                "WARNING: the kaged daemon at {} runs with --insecure: AUTH BYPASSED, anyone who can reach it is the operator (ADR-0007)",
                ep.url
            );
        }
        if ep.no_sandbox {
            eprintln!(
                "WARNING: the kaged daemon at {} runs with --no-sandbox: sessions are NOT caged (ADR-0009)",
                ep.url
            );
        }
    }
}

/// No daemon runs for this layout; `main` maps it to exit code 3.
#[derive(Debug, thiserror::Error)]
#[error(
    "kaged is not running (no endpoint file in {}); start it with `kaged start`",
    .runtime_dir.display()
)]
pub struct NotRunning {
    pub runtime_dir: std::path::PathBuf,
}

/// An error the daemon answered with, in its envelope.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {status}: {}", envelope.error.message)]
pub struct DaemonError {
    pub path: String,
    pub status: u16,
    pub envelope: ErrorEnvelope,
}

/// An authenticated client for the local daemon.
pub struct Client {
    agent: ureq::Agent,
    pub endpoint: Endpoint,
    headers: Vec<(String, String)>,
    csrf: Option<String>,
}

impl Client {
    /// Connects to the daemon of `layout`, or says how to start one.
    pub fn for_layout(layout: &Layout) -> Result<Client> {
        let Some(endpoint) = Endpoint::read(layout) else {
            return Err(NotRunning {
                runtime_dir: layout.runtime_dir.clone(),
            }
            .into());
        };
        Client::connect(layout, endpoint)
    }

    pub fn connect(layout: &Layout, endpoint: Endpoint) -> Result<Client> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut headers = vec![("origin".to_owned(), endpoint.url.clone())];
        match endpoint.auth_mode {
            AuthMode::Loopback => {
                let nonce = read_nonce(&layout.auth_cookie_file())?;
                headers.push(("authorization".into(), format!("Bearer {nonce}")));
            }
            AuthMode::Sidecar => {
                let nonce = read_nonce(&layout.sidecar_nonce_file())?;
                headers.push(("x-kaged-auth-nonce".into(), nonce));
                headers.push(("x-kaged-user-id".into(), kaged_daemon::local_user()));
            }
            AuthMode::Insecure => {}
        }
        Ok(Client {
            agent,
            endpoint,
            headers,
            csrf: None,
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let res = self.send(self.agent.get(self.url(path)), path)?;
        decode(path, res)
    }

    /// Raw bytes (a transcript), with the response's headers.
    pub fn get_bytes(&self, path: &str) -> Result<(Vec<u8>, ureq::http::HeaderMap)> {
        let mut res = self.send(self.agent.get(self.url(path)), path)?;
        if !res.status().is_success() {
            return Err(envelope_error(path, res));
        }
        let headers = res.headers().clone();
        let body = res
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .with_context(|| format!("reading {path}"))?;
        Ok((body, headers))
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(&mut self, path: &str, body: &B) -> Result<T> {
        let csrf = self.csrf()?;
        let req = self
            .with_headers(self.agent.post(self.url(path)))
            .header("x-kaged-csrf", &csrf);
        let res = req
            .send_json(body)
            .with_context(|| format!("POST {path}: is the daemon still running?"))?;
        decode(path, res)
    }

    pub fn delete<T: DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        let csrf = self.csrf()?;
        let req = self
            .with_headers(self.agent.delete(self.url(path)))
            .header("x-kaged-csrf", &csrf);
        let res = req
            .call()
            .with_context(|| format!("DELETE {path}: is the daemon still running?"))?;
        decode(path, res)
    }

    /// The headers a WebSocket upgrade to `path` needs, CSRF token included.
    pub fn upgrade_headers(&mut self) -> Result<Vec<(String, String)>> {
        let mut h = self.headers.clone();
        h.push(("x-kaged-csrf".into(), self.csrf()?));
        Ok(h)
    }

    /// `ws://…` for `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.url.replacen("http", "ws", 1))
    }

    fn csrf(&mut self) -> Result<String> {
        if let Some(t) = &self.csrf {
            return Ok(t.clone());
        }
        let me: Me = self.get("/api/v1/me")?;
        self.csrf = Some(me.csrf_token.clone());
        Ok(me.csrf_token)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.url)
    }

    fn with_headers<B>(&self, mut req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req
    }

    fn send(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
        path: &str,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        self.with_headers(req)
            .call()
            .with_context(|| format!("GET {path}: is the daemon still running?"))
    }
}

fn decode<T: DeserializeOwned>(path: &str, mut res: ureq::http::Response<ureq::Body>) -> Result<T> {
    if !res.status().is_success() {
        return Err(envelope_error(path, res));
    }
    let status = res.status();
    res.body_mut()
        .read_json()
        .with_context(|| format!("{path}: the daemon answered {status} with unexpected JSON"))
}

fn envelope_error(path: &str, mut res: ureq::http::Response<ureq::Body>) -> anyhow::Error {
    let status = res.status().as_u16();
    match res.body_mut().read_json::<ErrorEnvelope>() {
        Ok(envelope) => DaemonError {
            path: path.to_owned(),
            status,
            envelope,
        }
        .into(),
        Err(_) => anyhow!("{path}: the daemon answered {status} without an error envelope"),
    }
}

fn read_nonce(path: &Path) -> Result<String> {
    kaged_auth::read_secret_file(path, false).with_context(|| {
        format!(
            "cannot read {}; run this command as the user the daemon runs as",
            path.display()
        )
    })
}
