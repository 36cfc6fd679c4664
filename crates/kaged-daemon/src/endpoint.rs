//! `endpoint.json` in the runtime dir (0600): where a running daemon listens and how, so the
//! CLI on the same host can find it. Written at start, removed at shutdown.

use std::net::SocketAddr;

use kaged_api::{AuthMode, Mode};
use kaged_config::Settings;
use kaged_deploy::Layout;
use serde::{Deserialize, Serialize};

use crate::error::StartError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub pid: u32,
    pub mode: Mode,
    pub auth_mode: AuthMode,
    pub insecure: bool,
    pub no_sandbox: bool,
    pub version: String,
}

impl Endpoint {
    pub(crate) fn new(layout: &Layout, settings: &Settings, bound: SocketAddr) -> Endpoint {
        Endpoint {
            url: crate::daemon::base_url(bound),
            pid: std::process::id(),
            mode: layout.mode,
            auth_mode: settings.auth_mode.value,
            insecure: settings.auth_mode.value == AuthMode::Insecure,
            no_sandbox: !settings.sandbox_enabled.value,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    pub(crate) fn write(&self, layout: &Layout) -> Result<(), StartError> {
        let text = serde_json::to_string(self).map_err(|e| StartError::Io {
            what: "serialise",
            path: layout.endpoint_file(),
            source: e.into(),
        })?;
        kaged_auth::write_secret_file(&layout.endpoint_file(), &text)?;
        Ok(())
    }

    /// The running daemon of this layout, if there is one. The file must be ours (owner, mode
    /// 0600, no symlink), and a stale file from a crashed daemon must not send the CLI to
    /// whatever reused the port, so its pid must be alive.
    pub fn read(layout: &Layout) -> Option<Endpoint> {
        let text = kaged_auth::read_secret_file(&layout.endpoint_file(), false).ok()?;
        let ep: Endpoint = serde_json::from_str(&text).ok()?;
        pid_alive(ep.pid).then_some(ep)
    }
}

/// Alive and ours: the daemon runs as the file's owner, so a pid we may not signal is some
/// other user's process that reused the number.
fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}
