//! The git metadata of a linked worktree, which lives outside the cage's project root (the
//! worktree): the repository's shared git dir and the worktree's own one. The daemon says
//! which parts the cage may write; this module binds them, by descriptors opened beneath the
//! shared git dir without following symlinks, so a symlink planted by an earlier cage (say
//! `.git/refs -> ~/.ssh`) cannot redirect a bind.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, ResolveFlag};

use crate::compile::{CageError, open_no_symlinks};

/// A linked worktree's git dirs, as the daemon wants them in the cage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedGit {
    /// The repository's shared git dir (`<repo>/.git`). Bound read-only as a whole.
    pub common_dir: PathBuf,
    /// Relative to `common_dir`, bound read-write over it: what a commit writes (objects,
    /// refs, the worktree's own gitdir with its HEAD and index). Missing ones are skipped.
    pub writable: Vec<PathBuf>,
    /// Relative to `common_dir` (with whether each is a directory), bound read-only over the
    /// writable ones: config, hooks, the worktree's `config.worktree`, ... A missing one under
    /// a writable part gets an empty read-only stand-in so the cage cannot create it.
    pub read_only: Vec<(PathBuf, bool)>,
}

/// One bind, in the order bwrap must apply it.
pub(crate) enum LinkedBind {
    Ro {
        path: PathBuf,
        fd: OwnedFd,
    },
    Rw {
        path: PathBuf,
        fd: OwnedFd,
    },
    /// A missing read-only path under a writable part: an empty stand-in.
    Missing {
        path: PathBuf,
        dir: bool,
    },
}

/// Opens everything `git` names, shared dir first, then writable parts, then read-only ones.
pub(crate) fn linked_git_binds(
    git: &LinkedGit,
    deny: &[PathBuf],
) -> Result<Vec<LinkedBind>, CageError> {
    let common = std::fs::canonicalize(&git.common_dir).map_err(|source| CageError::GitDir {
        path: git.common_dir.clone(),
        source,
    })?;
    for denied in deny.iter().filter_map(|d| std::fs::canonicalize(d).ok()) {
        if common.starts_with(&denied) {
            return Err(CageError::InsideDenied {
                what: "git dir",
                path: common,
                denied,
            });
        }
        if denied.starts_with(&common) {
            return Err(CageError::DeniedUnderWritable {
                denied,
                what: "git dir",
                path: common,
            });
        }
    }
    let protect = |path: &Path, source| CageError::Protect {
        path: path.to_owned(),
        source,
    };
    let common_fd = open_no_symlinks(AT_FDCWD, &common, OFlag::O_DIRECTORY, ResolveFlag::empty())
        .map_err(|e| protect(&common, e))?;
    let beneath = |rel: &Path| -> Result<Option<OwnedFd>, CageError> {
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(protect(&common.join(rel), Errno::EINVAL));
        }
        match open_no_symlinks(
            common_fd.as_fd(),
            rel,
            OFlag::O_NOFOLLOW,
            ResolveFlag::RESOLVE_BENEATH,
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(protect(&common.join(rel), e)),
        }
    };
    let mut binds = Vec::new();
    let mut writable: Vec<&PathBuf> = git.writable.iter().collect();
    writable.sort();
    for rel in &writable {
        if let Some(fd) = beneath(rel)? {
            binds.push(LinkedBind::Rw {
                path: common.join(rel),
                fd,
            });
        }
    }
    let mut read_only: Vec<&(PathBuf, bool)> = git.read_only.iter().collect();
    read_only.sort();
    for (rel, dir) in read_only {
        let path = common.join(rel);
        match beneath(rel)? {
            Some(fd) => binds.push(LinkedBind::Ro { path, fd }),
            None if writable.iter().any(|w| rel.starts_with(w) && rel != *w) => {
                binds.push(LinkedBind::Missing { path, dir: *dir });
            }
            // Under a read-only part the cage cannot create it either.
            None => {}
        }
    }
    binds.insert(
        0,
        LinkedBind::Ro {
            path: common,
            fd: common_fd,
        },
    );
    Ok(binds)
}
