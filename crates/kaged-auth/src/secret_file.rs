//! Nonce files: written `O_NOFOLLOW` 0600 inside a 0700 directory we own, and read back only
//! when the owner and mode prove nobody else could have planted or read them (design §4).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::AuthSetupError;

fn io_err<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> AuthSetupError + 'a {
    move |source| {
        if source.raw_os_error() == Some(nix::libc::ELOOP) {
            AuthSetupError::Symlink {
                path: path.to_owned(),
            }
        } else {
            AuthSetupError::Io {
                path: path.to_owned(),
                what,
                source,
            }
        }
    }
}

/// Writes `contents` to `path` with mode 0600, refusing to follow a symlink planted there.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), AuthSetupError> {
    check_private_dir(path.parent().unwrap_or(Path::new("/")))?;
    // Remove first so a file with another owner or looser mode is never reused; unlinking a
    // symlink removes the link itself, not its target.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, "remove the old nonce file")(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(path, "create the nonce file"))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(path, "chmod the nonce file"))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io_err(path, "write the nonce file"))?;
    Ok(())
}

/// Reads a secret file, refusing symlinks, files owned by another user, and files readable by
/// group or others. `root_ok` admits root-owned files (a system config under `/etc/kaged`).
pub fn read_secret_file(path: &Path, root_ok: bool) -> Result<String, AuthSetupError> {
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(path, "open the secret file"))?;
    let meta = file
        .metadata()
        .map_err(io_err(path, "stat the secret file"))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(AuthSetupError::NotRegular {
            path: path.to_owned(),
        });
    }
    if meta.uid() != me && !(root_ok && meta.uid() == 0) {
        return Err(AuthSetupError::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AuthSetupError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(io_err(path, "read the secret file"))?;
    Ok(text.trim().to_owned())
}

fn check_private_dir(dir: &Path) -> Result<(), AuthSetupError> {
    let meta = std::fs::symlink_metadata(dir).map_err(io_err(dir, "stat the runtime dir"))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        return Err(AuthSetupError::Symlink {
            path: dir.to_owned(),
        });
    }
    if meta.uid() != me {
        return Err(AuthSetupError::Owner {
            path: dir.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AuthSetupError::Mode {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Removes runtime secret files at shutdown; missing files are fine.
pub fn remove_quietly(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
