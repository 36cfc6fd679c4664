//! Readiness for systemd's `Type=notify`, without a dependency: one datagram.

/// The systemd notify protocol: one datagram to `$NOTIFY_SOCKET` (a path, or `@name` for an
/// abstract socket). Failures are logged; readiness is best effort outside systemd.
pub(super) fn sd_notify(socket: Option<&std::ffi::OsStr>, msg: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(socket) = socket else { return };
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(std::path::Path::new(socket)),
    };
    let sent = addr.and_then(|addr| {
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(msg.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify to {} failed", socket.to_string_lossy());
    }
}
