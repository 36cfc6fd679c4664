//! The state-dir lock: one daemon per state directory.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;

use kaged_deploy::Layout;

use crate::error::StartError;

/// An exclusive `flock` on `<state>/kaged.lock` for the daemon's lifetime: a second daemon on
/// the same state dir is refused instead of corrupting it.
pub(crate) struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

impl StateLock {
    pub(crate) fn acquire(layout: &Layout) -> Result<StateLock, StartError> {
        let path = &layout.lock_file;
        let io = |what, source| StartError::Io {
            what,
            path: path.clone(),
            source,
        };
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io("open the lock file", e))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let mut f: &File = &lock;
                f.set_len(0)
                    .and_then(|()| f.rewind())
                    .and_then(|()| write!(f, "{}", std::process::id()))
                    .map_err(|e| io("write the pid into", e))?;
                Ok(StateLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Err(StartError::Lock(format!(
                    "another kaged (pid {}) already runs with state dir {} in {} mode; stop it first (`kaged status` shows it)",
                    pid.trim(),
                    layout.state_dir.display(),
                    layout.mode
                )))
            }
        }
    }
}
