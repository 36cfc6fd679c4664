//! How CLI subcommands find and talk to the running daemon: the endpoint file in the runtime
//! dir says where it listens; the nonce files (readable only by the daemon's UID) prove who we
//! are, through the same auth gate as every browser.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kaged_deploy::{Layout, Probe};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Written by `kaged start` into the runtime dir (0600) and removed at shutdown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub pid: u32,
    pub mode: String,
    pub auth_mode: String,
    pub insecure: bool,
    pub no_sandbox: bool,
    pub version: String,
}

impl Endpoint {
    pub fn read(layout: &Layout) -> Option<Endpoint> {
        let text = std::fs::read_to_string(layout.endpoint_file()).ok()?;
        let ep: Endpoint = serde_json::from_str(&text).ok()?;
        // A stale file from a crashed daemon must not send us to whatever reused the port.
        pid_alive(ep.pid).then_some(ep)
    }
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

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

/// An authenticated client for the local daemon.
pub struct Client {
    agent: ureq::Agent,
    pub endpoint: Endpoint,
    headers: Vec<(String, String)>,
    csrf: Option<String>,
}

impl Client {
    pub fn connect(layout: &Layout, endpoint: Endpoint) -> Result<Client> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        let mut headers = vec![("origin".to_owned(), endpoint.url.clone())];
        match endpoint.auth_mode.as_str() {
            "loopback" => {
                let nonce = read_nonce(&layout.auth_cookie_file())?;
                headers.push(("authorization".into(), format!("Bearer {nonce}")));
            }
            "sidecar" => {
                let nonce = read_nonce(&layout.sidecar_nonce_file())?;
                headers.push(("x-kaged-auth-nonce".into(), nonce));
                headers.push(("x-kaged-user-id".into(), local_user()));
            }
            _ => {}
        }
        Ok(Client {
            agent,
            endpoint,
            headers,
            csrf: None,
        })
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        let mut req = self.agent.get(format!("{}{path}", self.endpoint.url));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let res = req.call().with_context(|| format!("GET {path}"))?;
        decode(path, res)
    }

    pub fn post(&mut self, path: &str, body: &Value) -> Result<Value> {
        if self.csrf.is_none() {
            let me = self.get("/api/v1/me")?;
            self.csrf = me["csrf_token"].as_str().map(str::to_owned);
        }
        let mut req = self.agent.post(format!("{}{path}", self.endpoint.url));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(t) = &self.csrf {
            req = req.header("x-kaged-csrf", t);
        }
        let res = req
            .send_json(body)
            .with_context(|| format!("POST {path}"))?;
        decode(path, res)
    }
}

fn decode(path: &str, mut res: ureq::http::Response<ureq::Body>) -> Result<Value> {
    let status = res.status();
    let body: Value = res
        .body_mut()
        .read_json()
        .with_context(|| format!("{path}: the daemon answered {status} without JSON"))?;
    if !status.is_success() {
        let msg = body["error"]["message"].as_str().unwrap_or("no message");
        bail!("{path}: {status}: {msg}");
    }
    Ok(body)
}

fn read_nonce(path: &Path) -> Result<String> {
    kaged_auth::read_secret_file(path, false).with_context(|| {
        format!(
            "cannot read {}; run this command as the user the daemon runs as",
            path.display()
        )
    })
}

pub fn local_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid-{}", nix::unistd::geteuid()))
}
