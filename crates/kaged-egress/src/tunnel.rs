//! A `CONNECT` tunnel's bytes, once the gateway has checked where it goes: moved by
//! `splice(2)` through a pipe per direction, so they never enter user space and the gateway
//! only waits for readiness. The relay in the cage does the same on its side (`relay.rs`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{Shutdown, shutdown};
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// Each direction's pipe; the kernel caps it at `/proc/sys/fs/pipe-max-size` (1 MiB by
/// default) and keeps its 64 KiB default when asked for more than a user may have.
const PIPE_SIZE: usize = 1 << 20;

/// A socket the tunnel can wait on and splice to or from.
trait Socket: AsFd {
    async fn ready_for(&self, interest: Interest) -> io::Result<()>;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

impl Socket for TcpStream {
    async fn ready_for(&self, interest: Interest) -> io::Result<()> {
        self.ready(interest).await.map(|_| ())
    }
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        TcpStream::try_io(self, interest, f)
    }
}

impl Socket for UnixStream {
    async fn ready_for(&self, interest: Interest) -> io::Result<()> {
        self.ready(interest).await.map(|_| ())
    }
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        UnixStream::try_io(self, interest, f)
    }
}

/// Moves bytes both ways until both sides have ended (each end passed on as a half-close) or
/// either fails, adding what reached the other side to `up` (cage → upstream) and `down`.
pub(crate) async fn splice_both(
    cage: &UnixStream,
    upstream: &TcpStream,
    up: &AtomicU64,
    down: &AtomicU64,
) -> io::Result<()> {
    let to_upstream = one_way(cage, upstream, up);
    let to_cage = one_way(upstream, cage, down);
    tokio::pin!(to_upstream, to_cage);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut to_upstream, if !up_done => { r?; up_done = true; }
            r = &mut to_cage, if !down_done => { r?; down_done = true; }
        }
    }
    Ok(())
}

/// One direction, to its end of stream; then the far side's write half is shut.
async fn one_way(from: &impl Socket, to: &impl Socket, count: &AtomicU64) -> io::Result<()> {
    let (r, w) = pipe()?;
    let result = pump(from, to, &r, &w, count).await;
    let _ = shutdown(to.as_fd().as_raw_fd(), Shutdown::Write);
    result
}

async fn pump(
    from: &impl Socket,
    to: &impl Socket,
    r: &OwnedFd,
    w: &OwnedFd,
    count: &AtomicU64,
) -> io::Result<()> {
    // Nonblocking for the pipe; the sockets are nonblocking already. Not SPLICE_F_MORE: into
    // a TCP socket it is MSG_MORE, which would hold a small reply back.
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let moved = |src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: usize| {
        splice(src, None, dst, None, len, flags).map_err(io::Error::from)
    };
    loop {
        // The pipe is empty here, so a would-block can only be the socket's.
        let n = loop {
            from.ready_for(Interest::READABLE).await?;
            match from.try_io(Interest::READABLE, || {
                moved(from.as_fd(), w.as_fd(), PIPE_SIZE)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(());
        }
        // The pipe holds `left` bytes, so a would-block is the socket's again.
        let mut left = n;
        while left > 0 {
            to.ready_for(Interest::WRITABLE).await?;
            match to.try_io(Interest::WRITABLE, || moved(r.as_fd(), to.as_fd(), left)) {
                Ok(m) => {
                    left -= m;
                    count.fetch_add(m as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    // Best effort: a bigger pipe moves more per system call.
    let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
    Ok((r, w))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Every byte both ways, in order, each end passed on, and the counts right.
    #[tokio::test]
    async fn a_tunnel_moves_every_byte_both_ways_and_passes_each_end_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cage, mut client) = UnixStream::pair().unwrap();
        let upstream = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let request = b"GET /big HTTP/1.1\r\n\r\n".to_vec();
        let far = async {
            let mut got = vec![0u8; request.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, request);
            // The client's end reached the upstream as a half-close.
            assert_eq!(server.read(&mut [0u8; 1]).await.unwrap(), 0);
            server.write_all(&big).await.unwrap();
            server.shutdown().await.unwrap();
        };
        let near = async {
            client.write_all(&request).await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert!(got == big, "{} bytes came back", got.len());
        };
        let (r, (), ()) = tokio::join!(splice_both(&cage, &upstream, &up, &down), far, near);
        r.unwrap();
        assert_eq!(
            (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed)),
            (request.len() as u64, big.len() as u64)
        );
    }
}
