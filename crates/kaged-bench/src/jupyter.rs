//! The peer: Jupyter Server with its terminals (terminado), from PyPI in a venv under
//! `target/`, started with a token on 127.0.0.1 in a temp HOME.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::ws::{Proto, Term};

/// A running Jupyter Server; stopped on drop.
pub struct Jupyter {
    child: Child,
    pub port: u16,
    pub pid: u32,
    http: JupyterHandle,
    root: tempfile::TempDir,
}

/// Installs Jupyter Server and terminado into `venv` unless they are already there.
pub fn ensure_venv(venv: &Path) -> Result<()> {
    if venv.join("bin/jupyter-server").is_file() {
        return Ok(());
    }
    // The distribution's interpreter, not a pyenv shim (which takes a lock per call).
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| !p.starts_with('/') || Path::new(p).is_file())
        .unwrap_or("python3");
    eprintln!(
        "kaged-bench: installing jupyter_server and terminado into {}",
        venv.display()
    );
    let status = Command::new(python)
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .with_context(|| format!("running {python} -m venv"))?;
    if !status.success() {
        bail!(
            "`{python} -m venv {}` failed ({status}); install python3-venv",
            venv.display()
        );
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "jupyter_server", "terminado"])
        .status()
        .context("running pip install")?;
    if !status.success() {
        bail!("pip install jupyter_server terminado failed ({status})");
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

impl Jupyter {
    /// Starts the server with terminals running `shell` in `cwd`; returns it with the time
    /// from spawn to the first successful `GET /api/status`.
    pub fn start(venv: &Path, cwd: &Path, shell: &[&str]) -> Result<(Jupyter, Duration)> {
        let root = tempfile::Builder::new()
            .prefix("kaged-bench-jupyter-")
            .tempdir()
            .context("creating a temp dir for Jupyter")?;
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).context("creating Jupyter's temp HOME")?;
        let token = crate::scan::new_mark() + &crate::scan::new_mark();
        let port = free_port()?;
        let config = root.path().join("jupyter_server_config.json");
        let settings = serde_json::json!({
            "ServerApp": {
                "ip": "127.0.0.1",
                "port": port,
                "port_retries": 0,
                "open_browser": false,
                "root_dir": cwd,
                "terminado_settings": {"shell_command": shell},
                // The bench may run as root (as on CI); Jupyter refuses that unless told.
                "allow_root": rustix::process::geteuid().is_root(),
            },
            "IdentityProvider": {"token": token},
        });
        std::fs::write(&config, settings.to_string())
            .with_context(|| format!("writing {}", config.display()))?;
        let log = std::fs::File::create(root.path().join("jupyter.log"))
            .context("creating Jupyter's log file")?;
        let t0 = Instant::now();
        let child = Command::new(venv.join("bin/jupyter-server"))
            .arg(format!("--config={}", config.display()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("JUPYTER_CONFIG_DIR", root.path().join("config"))
            .env("JUPYTER_DATA_DIR", root.path().join("data"))
            .env("JUPYTER_RUNTIME_DIR", root.path().join("runtime"))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}/bin/jupyter-server", venv.display()))?;
        let pid = child.id();
        let mut j = Jupyter {
            child,
            port,
            pid,
            http: JupyterHandle {
                port,
                token,
                agent: crate::kaged::agent(),
            },
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(200) = j.http.status() {
                return Ok((j, t0.elapsed()));
            }
            if let Ok(Some(status)) = j.child.try_wait() {
                bail!(
                    "jupyter-server exited ({status}); its log:\n{}",
                    j.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "jupyter-server not ready within 60 s; its log:\n{}",
                    j.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.root.path().join("jupyter.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A viewer on a terminal, speaking terminado's JSON frames.
    pub async fn attach(&self, name: &str) -> Result<Term> {
        let url = format!(
            "ws://127.0.0.1:{}/terminals/websocket/{name}?token={}",
            self.port, self.http.token
        );
        Term::connect(&url, &[], Proto::Terminado, None).await
    }

    /// A clone of the HTTP side, for blocking tasks.
    pub fn handle(&self) -> JupyterHandle {
        self.http.clone()
    }

    pub fn stop(mut self, grace: Duration) {
        self.terminate(grace);
    }

    fn terminate(&mut self, grace: Duration) {
        crate::procfs::terminate(&mut self.child, grace);
    }
}

impl Drop for Jupyter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(10));
        }
    }
}

/// The HTTP side of a running server, cheap to move into blocking tasks.
#[derive(Clone)]
pub struct JupyterHandle {
    port: u16,
    token: String,
    agent: ureq::Agent,
}

impl JupyterHandle {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn auth(&self) -> String {
        format!("token {}", self.token)
    }

    fn status(&self) -> Result<u16> {
        let res = self
            .agent
            .get(self.url("/api/status"))
            .header("Authorization", self.auth())
            .call()?;
        Ok(res.status().as_u16())
    }

    /// `POST /api/terminals`: a new terminal; returns its name.
    pub fn create_terminal(&self) -> Result<String> {
        let mut res = self
            .agent
            .post(self.url("/api/terminals"))
            .header("Authorization", self.auth())
            .send_empty()
            .context("POST /api/terminals")?;
        let status = res.status().as_u16();
        let v: Value = res.body_mut().read_json().unwrap_or(Value::Null);
        if status != 200 {
            bail!("POST /api/terminals answered {status}: {v}");
        }
        v.get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no terminal name in {v}"))
    }

    pub fn delete_terminal(&self, name: &str) -> Result<()> {
        let res = self
            .agent
            .delete(self.url(&format!("/api/terminals/{name}")))
            .header("Authorization", self.auth())
            .call()
            .context("DELETE /api/terminals")?;
        let status = res.status().as_u16();
        // 404: it already ended.
        if status != 204 && status != 200 && status != 404 {
            bail!("DELETE /api/terminals/{name} answered {status}");
        }
        Ok(())
    }
}
