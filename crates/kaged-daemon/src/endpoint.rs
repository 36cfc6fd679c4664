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
        let port = ep
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())?;
        // The CLI sends its nonce to this port: whoever listens there must be us.
        (pid_alive(ep.pid) && listened_by_us(port)).then_some(ep)
    }
}

/// Whether a TCP socket listening on `port` belongs to this UID, from the kernel's own table
/// (`/proc/net/tcp` and `tcp6`): a daemon that died and left its port to someone else's
/// server must not be sent our nonce.
fn listened_by_us(port: u16) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines()
                .skip(1)
                .any(|line| listening_socket(line).is_some_and(|(p, uid)| p == port && uid == me))
        })
    })
}

/// `(local port, uid)` of a LISTEN row of `/proc/net/tcp{,6}`.
fn listening_socket(line: &str) -> Option<(u16, u32)> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    let (local, state, uid) = (cols.get(1)?, cols.get(3)?, cols.get(7)?);
    if *state != "0A" {
        return None;
    }
    let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
    Some((port, uid.parse().ok()?))
}

/// Alive and ours: the daemon runs as the file's owner, so a pid we may not signal is some
/// other user's process that reused the number.
fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_rows_of_the_kernel_table_are_read() {
        let listen = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1";
        let open = "   1: 0100007F:1F90 0100007F:D2A0 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1";
        assert_eq!(listening_socket(listen), Some((8080, 1000)));
        assert_eq!(listening_socket(open), None);
        assert_eq!(listening_socket("garbage"), None);
    }

    #[test]
    fn a_port_we_listen_on_is_ours_and_a_free_one_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or_default();
        assert!(listened_by_us(port));
        // Not the port just dropped: other tests of this uid may be handed it at once.
        // Nothing listens on tcpmux.
        assert!(!listened_by_us(1));
    }
}
