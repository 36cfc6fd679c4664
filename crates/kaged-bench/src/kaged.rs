//! The kaged target: the real binary in per-user mode in a temp HOME, logged in as a browser
//! would (launch URL → cookie → CSRF token from `/api/v1/me`). The daemon's answers are read
//! as the `kaged-api` wire types.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kaged_api::{ErrorEnvelope, LoadProject, Me, SessionInfo, StartSession};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ws::{Proto, Term};

/// The project every bench session runs in (`.kaged/project.yaml` says `project: bench`).
pub const PROJECT: &str = "bench";

pub struct KagedOpts<'a> {
    pub bin: &'a Path,
    /// The subcommand that serves: `start` for `kaged`, `serve-ungated` for this binary.
    pub command: &'a str,
    /// Extra arguments to the subcommand (`kaged start`'s flags).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `config.toml` contents.
    pub config: Option<String>,
    /// Log in through the printed launch URL (loopback auth).
    pub login: bool,
}

/// A running daemon; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Kaged {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    pub home: PathBuf,
    pub api: Api,
    log: Arc<Mutex<Vec<String>>>,
    _root: tempfile::TempDir,
}

/// What HTTP needs to look like a logged-in browser tab. Cheap to clone into blocking tasks.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    agent: ureq::Agent,
    pub headers: Vec<(String, String)>,
    pub cookie: Option<String>,
    /// The browser session's page key, sent with the cookie as kaged's own page does.
    pub page: Option<String>,
    pub csrf: Option<String>,
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Api {
    /// One request; the status and the body as text.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let mut res = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                for (k, v) in &self.headers {
                    r = r.header(k, v);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                for (k, v) in &self.headers {
                    r = r.header(k, v);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.agent.post(&url);
                for (k, v) in &self.headers {
                    r = r.header(k, v);
                }
                match body {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
        }
        .with_context(|| format!("{method} {path}"))?;
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        Ok((status, text))
    }

    /// A 2xx answer read as `T`; anything else is an error that says what the daemon said.
    fn ok<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<&Value>) -> Result<T> {
        let (status, text) = self.call(method, path, body)?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} answered {status}: {}", refusal(&text));
        }
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{method} {path}: the answer is not a {}: {text}",
                std::any::type_name::<T>()
            )
        })
    }

    /// Loads the bench project; a project that is already loaded (409) is fine.
    pub fn load_project(&self, dir: &Path) -> Result<()> {
        let body = serde_json::to_value(LoadProject {
            path: dir.to_owned(),
        })?;
        let (status, text) = self.call("POST", "/api/v1/projects", Some(&body))?;
        if !(200..300).contains(&status) && status != 409 {
            bail!(
                "loading the project {} answered {status}: {}",
                dir.display(),
                refusal(&text)
            );
        }
        Ok(())
    }

    /// Starts a session in the bench project and returns its id.
    pub fn create_session(&self, argv: &[&str]) -> Result<String> {
        let body = serde_json::to_value(StartSession {
            argv: Some(argv.iter().map(|a| a.to_string()).collect()),
            cols: Some(crate::raw::COLS),
            rows: Some(crate::raw::ROWS),
            ..StartSession::default()
        })?;
        let path = format!("/api/v1/projects/{PROJECT}/sessions");
        let info: SessionInfo = self.ok("POST", &path, Some(&body))?;
        Ok(info.id)
    }

    pub fn sessions(&self) -> Result<kaged_api::SessionList> {
        self.ok("GET", "/api/v1/sessions", None)
    }

    pub fn session(&self, id: &str) -> Result<SessionInfo> {
        self.ok("GET", &format!("/api/v1/sessions/{id}"), None)
    }

    pub fn end_session(&self, id: &str) -> Result<()> {
        let (status, text) = self.call("DELETE", &format!("/api/v1/sessions/{id}"), None)?;
        // 409: it already ended.
        if !(200..300).contains(&status) && status != 409 {
            bail!("DELETE session {id} answered {status}: {}", refusal(&text));
        }
        Ok(())
    }
}

/// A refusal's error envelope as `code: message`, or the body as it came.
fn refusal(text: &str) -> String {
    serde_json::from_str::<ErrorEnvelope>(text)
        .map(|e| e.to_string())
        .unwrap_or_else(|_| text.to_owned())
}

/// Runs a blocking API call off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("blocking task failed: {e}"))?
}

impl Kaged {
    /// Starts the daemon and returns it with the time from spawn to the first `readyz` 200.
    /// Long on purpose: the steps (layout, config, sidecar token, spawn, wait for readyz)
    /// read in order and share the temp root that cleanup needs.
    pub fn start(opts: &KagedOpts<'_>) -> Result<(Kaged, Duration)> {
        let root = tempfile::Builder::new()
            .prefix("kaged-bench-")
            .tempdir()
            .context("creating a temp dir for the daemon")?;
        Kaged::start_in(opts, root)
    }

    /// `kill -9` of the daemon, then a new one on the same state dir (it adopts the
    /// sessions the killed one left to their holders). Returns when the kill happened, and
    /// the new daemon's time from its start to `readyz` 200.
    pub fn kill9_and_restart(mut self, opts: &KagedOpts<'_>) -> Result<(Kaged, Instant, Duration)> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let killed = Instant::now();
        let root = tempfile::Builder::new()
            .prefix("kaged-bench-")
            .tempdir()
            .context("creating a temp dir")?;
        let root = std::mem::replace(&mut self._root, root);
        let (k, ready) = Kaged::start_in(opts, root)?;
        Ok((k, killed, ready))
    }

    fn start_in(opts: &KagedOpts<'_>, root: tempfile::TempDir) -> Result<(Kaged, Duration)> {
        let home = root.path().join("home");
        let rt = root.path().join("rt");
        std::fs::create_dir_all(&home).context("creating the temp HOME")?;
        std::fs::create_dir_all(&rt).context("creating the temp runtime dir")?;
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700))
            .context("chmod 0700 on the runtime dir")?;
        if let Some(text) = &opts.config {
            let dir = home.join(".config/kaged");
            std::fs::create_dir_all(&dir).context("creating the config dir")?;
            let path = dir.join("config.toml");
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .context("chmod 0600 on config.toml")?;
        }
        let mut cmd = Command::new(opts.bin);
        cmd.arg(opts.command)
            .args(["--bind", "127.0.0.1:0"])
            .args(&opts.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &rt)
            .env("KAGED_MODE", "user")
            // The bench's sessions end with its daemons (the adoption section says `keep`).
            .env("KAGED_SESSIONS_ON_STOP", "end")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", opts.bin.display()))?;
        let pid = child.id();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                // Drains stderr for the daemon's whole life, so that logging never blocks it.
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line.clone());
                    if let Ok(mut l) = log.lock() {
                        if l.len() > 200 {
                            l.remove(0);
                        }
                        l.push(line);
                    }
                }
            });
        }
        let tail = |log: &Arc<Mutex<Vec<String>>>| {
            log.lock()
                .map(|l| l.join("\n"))
                .unwrap_or_else(|_| String::new())
        };
        let mut launch = None;
        let addr: SocketAddr = loop {
            let line = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
                anyhow!(
                    "kaged did not print its address within 30 s; its stderr:\n{}",
                    tail(&log)
                )
            })?;
            if let Some(url) = line.trim().strip_prefix("open:") {
                launch = url.split_whitespace().next().map(str::to_owned);
            }
            if let Some((_, rest)) = line.split_once("listening on http://") {
                let a = rest.split_whitespace().next().unwrap_or("");
                break a
                    .parse()
                    .with_context(|| format!("unexpected address {a:?} in {line:?}"))?;
            }
        };
        let agent = agent();
        let base = format!("http://{addr}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready_after = loop {
            let ready = agent
                .get(format!("{base}/api/v1/readyz"))
                .call()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false);
            if ready {
                break t0.elapsed();
            }
            if Instant::now() > deadline {
                bail!(
                    "kaged never answered readyz 200; its stderr:\n{}",
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let mut api = Api {
            base: base.clone(),
            agent: agent.clone(),
            headers: Vec::new(),
            cookie: None,
            page: None,
            csrf: None,
        };
        if opts.login {
            while launch.is_none() {
                let line = rx.recv_timeout(Duration::from_secs(5)).map_err(|_| {
                    anyhow!("kaged printed no launch URL; its stderr:\n{}", tail(&log))
                })?;
                if let Some(url) = line.trim().strip_prefix("open:") {
                    launch = url.split_whitespace().next().map(str::to_owned);
                }
            }
            let url = launch.unwrap_or_default();
            let res = agent.get(&url).call().context("opening the launch URL")?;
            if res.status().as_u16() != 303 {
                bail!("the launch URL answered {} instead of 303", res.status());
            }
            let cookie = res
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with("kaged_session_"))
                .and_then(|v| v.split(';').next())
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("the launch URL set no kaged_session_ cookie"))?;
            let page = res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.strip_prefix("/#kaged-page="))
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("the launch URL handed over no page key"))?;
            api.headers.push(("Cookie".into(), cookie.clone()));
            api.headers.push(("X-Kaged-Page".into(), page.clone()));
            api.cookie = Some(cookie);
            api.page = Some(page);
            let me: Me = api.ok("GET", "/api/v1/me", None)?;
            let csrf = me.csrf_token;
            api.headers.push(("Origin".into(), base.clone()));
            api.headers.push(("X-Kaged-CSRF".into(), csrf.clone()));
            api.csrf = Some(csrf);
        }
        Ok((
            Kaged {
                child,
                addr,
                pid,
                home,
                api,
                log,
                _root: root,
            },
            ready_after,
        ))
    }

    /// The last lines the daemon logged, for error messages.
    pub fn log_tail(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn transcript_path(&self, id: &str) -> PathBuf {
        self.home
            .join(".local/share/kaged/sessions")
            .join(id)
            .join("transcript")
    }

    /// A viewer on a session's PTY, attached as the web UI does.
    pub async fn attach(&self, id: &str, hello: Option<u64>) -> Result<Term> {
        let csrf = self.api.csrf.clone().unwrap_or_default();
        let page = self.api.page.clone().unwrap_or_default();
        let url = format!(
            "ws://{}/api/v1/sessions/{id}/pty?csrf={csrf}&page={page}",
            self.addr
        );
        let mut headers = vec![("Origin".to_owned(), self.api.base.clone())];
        if let Some(c) = &self.api.cookie {
            headers.push(("Cookie".to_owned(), c.clone()));
        }
        Term::connect(&url, &headers, Proto::Kaged, hello).await
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.terminate(grace);
    }

    fn terminate(&mut self, grace: Duration) {
        crate::procfs::terminate(&mut self.child, grace);
    }
}

impl Drop for Kaged {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(10));
        }
    }
}
