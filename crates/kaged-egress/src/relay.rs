//! The relay inside a filtered-network cage: kaged's own binary, run as
//! `kaged __egress-relay <port> <socket> -- <argv>...` by the cage's argv. It binds
//! `127.0.0.1:<port>` on the cage's loopback, forks a child that copies every connection to
//! the gateway's Unix socket (bind-mounted into the cage), and execs the argv in its own place,
//! so the session's process is still the cage's first one and keeps the terminal.
//!
//! It is plain threads and blocking I/O: it runs before anything else in the cage, must not
//! need a runtime, and carries one agent's traffic.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// Runs the relay; returns only on failure, with a message for the terminal.
pub fn run(args: &[OsString]) -> String {
    let (port, socket, argv) = match parse(args) {
        Some(p) => p,
        None => {
            return "usage: kaged __egress-relay <port> <socket> -- <argv>... (started by kaged \
                    inside a cage, never by hand)"
                .to_owned();
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => return format!("kaged egress relay: cannot listen on 127.0.0.1:{port}: {e}"),
    };
    // SAFETY: the process is single-threaded here (kaged's main dispatches to the relay
    // before starting a runtime), so the child may allocate and start threads.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            detach();
            serve(&listener, &socket);
            std::process::exit(0)
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(listener);
            let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
            format!(
                "kaged: cannot run {}: {err}",
                PathBuf::from(&argv[0]).display()
            )
        }
        Err(e) => format!("kaged egress relay: fork failed: {e}"),
    }
}

fn parse(args: &[OsString]) -> Option<(u16, PathBuf, Vec<OsString>)> {
    let [port, socket, dashdash, argv @ ..] = args else {
        return None;
    };
    if dashdash != "--" || argv.is_empty() {
        return None;
    }
    let port = port.to_str()?.parse().ok()?;
    Some((port, PathBuf::from(socket), argv.to_vec()))
}

/// Leaves the session's terminal and process group, so Ctrl-C and a hang-up reach the agent,
/// not the relay; it ends with the cage (its PID namespace).
fn detach() {
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 of a descriptor this process holds onto a standard descriptor.
            let _ = unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn serve(listener: &TcpListener, socket: &std::path::Path) {
    for conn in listener.incoming() {
        let Ok(tcp) = conn else { continue };
        let socket = socket.to_owned();
        std::thread::spawn(move || {
            let Ok(unix) = UnixStream::connect(&socket) else {
                let _ = (&tcp).write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
                      kaged egress relay: the gateway is gone (the session is ending)\n",
                );
                return;
            };
            pipe(tcp, unix);
        });
    }
}

/// Copies both ways until each side has closed, passing each half-close on.
fn pipe(tcp: TcpStream, unix: UnixStream) {
    let (Ok(tcp2), Ok(unix2)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        copy(&tcp, &unix);
        let _ = unix.shutdown(Shutdown::Write);
    });
    copy(&unix2, &tcp2);
    let _ = tcp2.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// `splice(2)` through a pipe, so the bytes stay in the kernel; where the kernel refuses
/// (`EINVAL`), a plain read/write loop. Blocking, to the end of `from`; public for the
/// benchmark's splice floor, which must move bytes exactly as the relay does.
pub fn copy<F, T>(from: F, to: T)
where
    F: Read + AsFd,
    T: Write + AsFd,
{
    use nix::fcntl::{SpliceFFlags, splice};
    const CHUNK: usize = 1 << 20;
    // Not SPLICE_F_MORE: into a TCP socket it is MSG_MORE, which holds a small reply back.
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    if let Ok((r, w)) = nix::unistd::pipe() {
        // Best effort: a bigger pipe moves more per system call (64 KiB by default).
        let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
        let mut spliced = false;
        loop {
            let n = match splice(&from, None, &w, None, CHUNK, flags) {
                Ok(0) => return,
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EINVAL) if !spliced => break,
                Err(_) => return,
            };
            spliced = true;
            let mut left = n;
            while left > 0 {
                match splice(&r, None, &to, None, left, flags) {
                    Ok(0) => return,
                    Ok(m) => left -= m,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return,
                }
            }
        }
    }
    read_write(from, to);
}

fn read_write(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_relay_argv_is_port_socket_and_the_command() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (port, socket, argv) = parse(&a(&["3128", "/run/s", "--", "sh", "-c", "x"])).unwrap();
        assert_eq!((port, socket), (3128, PathBuf::from("/run/s")));
        assert_eq!(argv, a(&["sh", "-c", "x"]));
        assert!(parse(&a(&["3128", "/run/s", "--"])).is_none());
        assert!(parse(&a(&["x", "/run/s", "--", "sh"])).is_none());
        assert!(parse(&a(&["3128", "/run/s", "sh"])).is_none());
    }
}
