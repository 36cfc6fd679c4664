//! The one way kaged runs git.
//!
//! kaged drives the git CLI rather than libgit2: worktrees, `core.hooksPath`, porcelain v2 and
//! the safety checks of `git worktree remove` are git's own semantics, a library would only
//! approximate them, and the daemon needs git on the host anyway.
//!
//! Every invocation runs with hooks pointed at `/dev/null` and fsmonitor off, so nothing an
//! agent planted in a repository runs outside its cage; with the caller's `GIT_*` variables
//! removed, so an inherited `GIT_DIR` or `GIT_INDEX_FILE` cannot redirect it; with `LC_ALL=C`
//! so messages are stable; and with no prompts and no stdin.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// `merge-tree --write-tree` (2.38) is the newest feature kaged relies on.
pub(crate) const MIN_VERSION: (u32, u32) = (2, 38);
const MIN_VERSION_TEXT: &str = "2.38";

/// On every invocation: no hook and no fsmonitor runs, so nothing planted in a repository
/// executes outside its cage; no background gc or maintenance holds locks while kaged works.
const SAFE: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
];

/// Settings that make a snapshot or restore byte- and mode-exact whatever the repo's config says.
const EXACT: &[&str] = &[
    "core.fileMode=true",
    "core.symlinks=true",
    "core.autocrlf=false",
    "core.safecrlf=false",
];

#[derive(Debug, Clone)]
pub(crate) struct Git {
    /// Where git runs (`-C`); also what errors name.
    dir: PathBuf,
    git_dir: Option<PathBuf>,
    work_tree: Option<PathBuf>,
    index: Option<PathBuf>,
    exact: bool,
    env: Vec<(&'static str, OsString)>,
}

impl Git {
    /// git in a directory, finding the repository the usual way: for the operator's own checkout.
    pub(crate) fn at(dir: &Path) -> Git {
        Git {
            dir: dir.to_owned(),
            git_dir: None,
            work_tree: None,
            index: None,
            exact: false,
            env: Vec::new(),
        }
    }

    /// git in a kaged worktree with its recorded gitdir. The worktree's `.git` file is inside
    /// the cage and writable there, so it is never what tells git where the repository is.
    pub(crate) fn worktree(path: &Path, admin_dir: &Path) -> Git {
        Git {
            git_dir: Some(admin_dir.to_owned()),
            work_tree: Some(path.to_owned()),
            ..Git::at(path)
        }
    }

    /// git on a worktree's gitdir alone, for when its directory is gone.
    pub(crate) fn gitdir(repo: &Path, admin_dir: &Path) -> Git {
        Git {
            git_dir: Some(admin_dir.to_owned()),
            ..Git::at(repo)
        }
    }

    /// The same git with a private index file, for building trees without touching the real one.
    pub(crate) fn with_index(&self, index: &Path) -> Git {
        Git {
            index: Some(index.to_owned()),
            ..self.clone()
        }
    }

    pub(crate) fn exact(&self) -> Git {
        Git {
            exact: true,
            ..self.clone()
        }
    }

    pub(crate) fn with_env(&self, key: &'static str, value: impl Into<OsString>) -> Git {
        let mut g = self.clone();
        g.env.push((key, value.into()));
        g
    }

    fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("git");
        for (key, _) in std::env::vars_os() {
            if key.as_encoded_bytes().starts_with(b"GIT_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(Stdio::null())
            .arg("-C")
            .arg(&self.dir)
            .args(SAFE);
        if self.exact {
            for kv in EXACT {
                cmd.args(["-c", kv]);
            }
        }
        if let Some(d) = &self.git_dir {
            cmd.arg("--git-dir").arg(d);
        }
        if let Some(w) = &self.work_tree {
            cmd.arg("--work-tree").arg(w);
        }
        if let Some(i) = &self.index {
            cmd.env("GIT_INDEX_FILE", i);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    }

    /// Runs git and returns its output whatever the exit status, for callers that read it.
    pub(crate) fn output<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output> {
        let out = self
            .command(args)
            .output()
            .map_err(|source| Error::GitMissing {
                need: MIN_VERSION_TEXT,
                source,
            })?;
        tracing::trace!(dir = ?self.dir, args = %join(args), code = ?out.status.code(), "git");
        Ok(out)
    }

    /// Runs git and returns stdout; a non-zero exit is an error naming the command.
    pub(crate) fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Vec<u8>> {
        let out = self.output(args)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(self.failure(args, &out))
        }
    }

    /// stdout as text without the trailing newline.
    pub(crate) fn text<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let out = self.run(args)?;
        Ok(String::from_utf8_lossy(&out).trim_end().to_owned())
    }

    /// Runs a command whose exit status is the answer (`rev-parse --verify`, `merge-base
    /// --is-ancestor`): 0 is yes, 1 is no, anything else is an error.
    pub(crate) fn test<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<bool> {
        let out = self.output(args)?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failure(args, &out)),
        }
    }

    /// The commit a ref or revision names, or `None` when it does not exist.
    pub(crate) fn resolve(&self, rev: &str) -> Result<Option<String>> {
        let out = self.output(&["rev-parse", "-q", "--verify", &format!("{rev}^{{commit}}")])?;
        if out.status.success() {
            Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
        } else {
            Ok(None)
        }
    }

    pub(crate) fn failure<S: AsRef<OsStr>>(&self, args: &[S], out: &Output) -> Error {
        Error::Git {
            dir: self.dir.clone(),
            args: join(args),
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }
    }
}

fn join<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the host's git is new enough; the daemon calls this once at start-up.
pub fn check_version() -> Result<String> {
    let text = Git::at(Path::new("/")).text(&["version"])?;
    let found = text.trim_start_matches("git version ").to_owned();
    let mut parts = found.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < MIN_VERSION {
        return Err(Error::GitTooOld {
            found,
            need: MIN_VERSION_TEXT,
        });
    }
    Ok(found)
}

/// Splits NUL-terminated output into its records, as bytes.
pub(crate) fn nul_fields(out: &[u8]) -> impl Iterator<Item = &[u8]> {
    out.split(|b| *b == 0).filter(|f| !f.is_empty())
}

pub(crate) fn bytes_path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(OsStr::from_bytes(b))
}

/// A path printed by git on its own line: only the one trailing newline is git's.
pub(crate) fn line_path(out: &[u8]) -> PathBuf {
    bytes_path(out.strip_suffix(b"\n").unwrap_or(out))
}
