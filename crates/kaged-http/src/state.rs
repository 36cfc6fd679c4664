//! What handlers share: the daemon's facts, the auth policy, storage and the audit writer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kaged_auth::{AuthMode, AuthPolicy};
use kaged_config::Settings;
use kaged_deploy::Layout;
use kaged_store::{AuditEvent, AuditWriter, Store};
use serde::Serialize;

use crate::access::Access;

/// A danger state announced on every response as `X-Kaged-Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Warning {
    InsecureMode,
    NoSandbox,
}

impl Warning {
    pub fn as_str(self) -> &'static str {
        match self {
            Warning::InsecureMode => "insecure-mode",
            Warning::NoSandbox => "no-sandbox",
        }
    }
}

/// Facts fixed at start-up, reported by `/api/v1/status`.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    pub layout: Layout,
    pub settings: Settings,
    pub bind: SocketAddr,
    pub pid: u32,
    /// The UNIX user the daemon runs as.
    pub user: String,
    pub started_at: String,
    pub started: Instant,
    /// Sandbox self-test result and cgroup support, as reported by the sandbox crate.
    pub sandbox: serde_json::Value,
}

impl DaemonInfo {
    pub fn warnings(&self) -> Vec<Warning> {
        let mut w = Vec::new();
        if self.settings.auth_mode.value == AuthMode::Insecure {
            w.push(Warning::InsecureMode);
        }
        if !self.settings.sandbox_enabled.value {
            w.push(Warning::NoSandbox);
        }
        w
    }

    /// The URL local clients use: a wildcard bind is reached through loopback, because
    /// `0.0.0.0` is not a Host the allowlist accepts.
    pub fn base_url(&self) -> String {
        match self.bind.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                format!("http://127.0.0.1:{}", self.bind.port())
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                format!("http://localhost:{}", self.bind.port())
            }
            _ => format!("http://{}", self.bind),
        }
    }
}

/// What the daemon hands over to build the shared state.
pub struct Parts {
    pub info: DaemonInfo,
    pub auth: AuthPolicy,
    pub access: Access,
    pub store: Store,
    pub audit: AuditWriter,
    pub sessions: kaged_session::SessionManager,
    pub host: crate::launcher::HostFacts,
    pub local: kaged_dsl::LocalConfig,
}

pub struct AppState {
    pub info: DaemonInfo,
    pub auth: AuthPolicy,
    pub access: Access,
    pub store: Store,
    pub audit: AuditWriter,
    pub sessions: kaged_session::SessionManager,
    pub projects: crate::projects::Projects,
    pub host: crate::launcher::HostFacts,
    /// The operator's `local.toml`: model aliases, providers, registered projects.
    pub local: kaged_dsl::LocalConfig,
    /// Daemon events for `/api/v1/events`; bounded, slow subscribers lag instead of growing it.
    pub events: tokio::sync::broadcast::Sender<serde_json::Value>,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) routes: crate::routes::RouteIndex,
    pub(crate) rejections: crate::gate::RejectLimiter,
    pub(crate) reads: crate::gate::ReadCounter,
    ready: AtomicBool,
}

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        let Parts {
            info,
            auth,
            access,
            store,
            audit,
            sessions,
            host,
            local,
        } = parts;
        AppState {
            warnings: info.warnings(),
            info,
            auth,
            access,
            store,
            audit,
            sessions,
            projects: crate::projects::Projects::default(),
            host,
            local,
            events: tokio::sync::broadcast::channel(1024).0,
            routes: crate::routes::RouteIndex::new(),
            rejections: crate::gate::RejectLimiter::default(),
            reads: crate::gate::ReadCounter::default(),
            ready: AtomicBool::new(false),
        }
    }

    /// Publishes a daemon event to `/api/v1/events` subscribers (none listening is fine).
    pub fn publish(&self, event: serde_json::Value) {
        let _ = self.events.send(event);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Records an audit event; a failure is logged, never surfaced to the caller, because the
    /// only way the writer fails is a daemon already shutting down.
    pub async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.audit.record(event).await {
            tracing::warn!(error = %e, "audit event dropped during shutdown");
        }
    }
}
