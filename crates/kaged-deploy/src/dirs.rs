//! Private directories: created 0700, never followed through a symlink, never someone else's.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot create directory {path}: {source}; check the parent's owner and permissions")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot inspect {path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a symlink; kaged refuses to follow it for private state. Replace it with a real directory"
    )]
    Symlink { path: PathBuf },
    #[error("{path} is not a directory; move it away so kaged can create its directory there")]
    NotDir { path: PathBuf },
    #[error(
        "{path} is owned by UID {owner}, not by this daemon (UID {me}); run kaged as its owner or `chown` it"
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("cannot tighten {path} to mode 0700: {source}")]
    Chmod {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Makes `path` an existing directory owned by us with mode 0700. A directory we own with a
/// looser mode is tightened (systemd's `StateDirectory=` creates 0755 by default).
pub fn ensure_private_dir(path: &Path) -> Result<(), DirError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|source| DirError::Create {
                    path: path.to_owned(),
                    source,
                })?;
        }
        Err(source) => {
            return Err(DirError::Stat {
                path: path.to_owned(),
                source,
            });
        }
        Ok(_) => {}
    }
    let meta = fs::symlink_metadata(path).map_err(|source| DirError::Stat {
        path: path.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(DirError::Symlink {
            path: path.to_owned(),
        });
    }
    if !meta.is_dir() {
        return Err(DirError::NotDir {
            path: path.to_owned(),
        });
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(DirError::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|source| {
            DirError::Chmod {
                path: path.to_owned(),
                source,
            }
        })?;
    }
    Ok(())
}
