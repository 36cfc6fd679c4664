//! The state-dir lock: one daemon per state directory.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result, bail};
use kaged_deploy::Layout;

/// An exclusive `flock` on `<state>/kaged.lock` for the daemon's lifetime: a second daemon on
/// the same state dir is refused instead of corrupting it.
pub(super) struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

impl StateLock {
    pub(super) fn acquire(layout: &Layout) -> Result<StateLock> {
        let path = &layout.lock_file;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let mut f: &File = &lock;
                f.set_len(0)?;
                f.rewind()?;
                write!(f, "{}", std::process::id())?;
                Ok(StateLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                bail!(
                    "another kaged (pid {}) already runs with state dir {} in {} mode; stop it first (`kaged status` shows it)",
                    pid.trim(),
                    layout.state_dir.display(),
                    layout.mode
                );
            }
        }
    }
}
