//! Where a declared agent CLI's program lives, seen from its cage. The native installers put
//! `claude` (and `opencode`) under `~/.local`, which no cage sees: a declared `command:
//! [claude]` would fail in the cage with "not found" although the operator's shell runs it.
//! For a recognised CLI, kaged looks the program up on the host the way the cage would, and
//! when the file it finds is outside the cage's view, binds that one file read-only at
//! [`kaged_sandbox::AGENT_BIN_DIR`] and runs it from there. Never its directory, never the
//! operator's home.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kaged_api::{CagePolicy, PortablePath};

use crate::error::{OpError, OpResult};
use crate::host::HostFacts;

/// An agent CLI to bind into its cage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Where the program was found (a symlink, often).
    pub found: PathBuf,
    /// The executable it resolves to, which is what gets bound.
    pub host: PathBuf,
    /// The declared program's file name, its name in the cage.
    pub name: String,
}

impl Located {
    pub fn bind(&self) -> kaged_sandbox::ProgramBind<'_> {
        kaged_sandbox::ProgramBind {
            host: &self.host,
            name: &self.name,
        }
    }
}

/// What to do about `program` (the declared argv[0]) in a cage with `policy` over
/// `project_root`: `Ok(None)` when the cage finds it by itself (or nowhere, and says so when it
/// runs), `Ok(Some)` when it must be bound. A script outside the cage's view cannot be bound
/// alone (it needs its interpreter's files beside it) and is refused, saying where it is.
pub fn locate(
    program: &str,
    policy: &CagePolicy,
    project_root: &Path,
    facts: &HostFacts,
) -> OpResult<Option<Located>> {
    let Some(name) = Path::new(program).file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    let view = View {
        policy,
        root: std::fs::canonicalize(project_root).unwrap_or_default(),
        facts,
    };
    let found = if program.contains('/') {
        let path = PathBuf::from(program);
        // A relative path is relative to the cage's working directory, not the daemon's.
        if !path.is_absolute() || !is_executable(&path) {
            return Ok(None);
        }
        path
    } else {
        // The cage's own PATH first: what it finds there and can see, it runs as is.
        let host_path = facts.env_value("PATH");
        let cage_path = if policy.env.iter().any(|n| n == "PATH") {
            host_path.unwrap_or(kaged_sandbox::CAGE_PATH)
        } else {
            kaged_sandbox::CAGE_PATH
        };
        let in_cage_path = search(name, cage_path);
        match in_cage_path.or_else(|| host_path.and_then(|p| search(name, p))) {
            Some(found) => found,
            None => return Ok(None),
        }
    };
    let Ok(host) = std::fs::canonicalize(&found) else {
        return Ok(None);
    };
    if view.shows(&found) && view.shows(&host) {
        return Ok(None);
    }
    if let Some(denied) = facts
        .deny
        .iter()
        .find(|d| found.starts_with(d) || host.starts_with(d))
    {
        return Err(OpError::Invalid(format!(
            "the agent CLI `{name}` is {} ({}), under {}, which no cage may see (kaged's own \
             state, runtime or configuration); install the CLI elsewhere",
            found.display(),
            host.display(),
            denied.display()
        )));
    }
    if !is_elf(&host) {
        return Err(OpError::Invalid(format!(
            "the agent CLI `{name}` is {} ({}), outside what its cage sees, and it is a \
             script: bound alone it could not find the files it runs. Install the CLI \
             system-wide (under /usr/local or /opt, as `npm install -g` with the system's \
             prefix does), or use its native binary",
            found.display(),
            host.display()
        )));
    }
    Ok(Some(Located {
        found,
        host,
        name: name.to_owned(),
    }))
}

/// What a cage sees of the host, as far as a program's path goes.
struct View<'a> {
    policy: &'a CagePolicy,
    /// The project root, symlinks resolved.
    root: PathBuf,
    facts: &'a HostFacts,
}

impl View<'_> {
    /// `path` and every directory above it are the same in the cage: under a system bind, or
    /// under a granted project path, and under no denied path.
    fn shows(&self, path: &Path) -> bool {
        let Some(dir) = path.parent().and_then(|d| std::fs::canonicalize(d).ok()) else {
            return false;
        };
        let path = match path.file_name() {
            Some(f) => dir.join(f),
            None => return false,
        };
        if self.facts.deny.iter().any(|d| path.starts_with(d)) {
            return false;
        }
        if self.facts.cage_host.shows(&path) {
            return true;
        }
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        PortablePath::parse(&format!("project:/{}", rel.display()))
            .is_ok_and(|p| crate::adapters::visible_in_cage(self.policy, &p))
    }
}

/// The first executable `name` in the absolute directories of `path`, as `execvp` finds it.
fn search(name: &str, path: &str) -> Option<PathBuf> {
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::symlink;

    use kaged_api::{Access, FsGrant};
    use pretty_assertions::assert_eq;

    use super::*;

    struct Fx {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        root: PathBuf,
        facts: HostFacts,
    }

    fn exe(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A host whose system view is `<base>/usr`, a project at `<base>/proj`, an operator's
    /// home at `<base>/home` with `claude` the way the native installer leaves it, and
    /// `PATH` naming the home's bin before the system's.
    fn fx() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let root = base.join("proj");
        std::fs::create_dir_all(root.join("tools")).unwrap();
        let versions = base.join("home/.local/share/claude/versions/2.0.14");
        exe(&versions, b"\x7fELF\x02\x01");
        std::fs::create_dir_all(base.join("home/.local/bin")).unwrap();
        symlink(&versions, base.join("home/.local/bin/claude")).unwrap();
        exe(&base.join("usr/bin/codex"), b"\x7fELF\x02\x01");
        exe(
            &base.join("home/.npm/bin/opencode"),
            b"#!/usr/bin/env node\nrequire('../lib')\n",
        );
        let mut facts = crate::launcher::tests::facts(true);
        facts.cage_host.system = vec![kaged_sandbox::SystemMount::RoBind(base.join("usr"))];
        facts.deny = vec![base.join("state")];
        facts.env = vec![(
            "PATH".into(),
            format!(
                "{0}/home/.local/bin:{0}/home/.npm/bin:{0}/usr/bin:{0}/state/bin",
                base.display()
            ),
        )];
        Fx {
            _tmp: tmp,
            base,
            root,
            facts,
        }
    }

    fn policy(grants: &[&str], env: &[&str]) -> CagePolicy {
        CagePolicy {
            fs: grants
                .iter()
                .map(|g| FsGrant {
                    path: PortablePath::parse(g).unwrap(),
                    access: Access::Rw,
                })
                .collect(),
            env: env.iter().map(|e| (*e).to_owned()).collect(),
            ..CagePolicy::default()
        }
    }

    #[test]
    fn a_cli_in_the_operators_home_is_bound_as_the_file_it_resolves_to() {
        let f = fx();
        let got = locate("claude", &policy(&["project:/"], &[]), &f.root, &f.facts)
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            Located {
                found: f.base.join("home/.local/bin/claude"),
                host: f.base.join("home/.local/share/claude/versions/2.0.14"),
                name: "claude".into(),
            }
        );
        // Declared by its full path, the same.
        let path = f.base.join("home/.local/bin/claude");
        let got = locate(path.to_str().unwrap(), &policy(&[], &[]), &f.root, &f.facts)
            .unwrap()
            .unwrap();
        assert_eq!(got.name, "claude");
    }

    #[test]
    fn a_cli_the_cage_sees_runs_as_is() {
        let mut f = fx();
        // Under the system view.
        assert_eq!(
            locate("codex", &policy(&[], &[]), &f.root, &f.facts).unwrap(),
            None
        );
        // In the project, granted, on the PATH the cage gets.
        exe(&f.root.join("tools/claude"), b"\x7fELF");
        f.facts.env[0].1 = format!("{}/tools:/usr/bin", f.root.display());
        assert_eq!(
            locate(
                "claude",
                &policy(&["project:/tools"], &["PATH"]),
                &f.root,
                &f.facts
            )
            .unwrap(),
            None
        );
        // The same file without a grant that shows it: bound.
        let got = locate(
            "claude",
            &policy(&["project:/src"], &["PATH"]),
            &f.root,
            &f.facts,
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.host, f.root.join("tools/claude"));
        // Nowhere at all: left to the cage, which says so when it runs.
        assert_eq!(
            locate("aider", &policy(&[], &[]), &f.root, &f.facts).unwrap(),
            None
        );
        // A relative path means the cage's working directory.
        assert_eq!(
            locate("tools/claude", &policy(&[], &[]), &f.root, &f.facts).unwrap(),
            None
        );
    }

    #[test]
    fn a_symlink_the_cage_sees_to_a_file_it_does_not_is_bound() {
        let f = fx();
        symlink(
            f.base.join("home/.local/share/claude/versions/2.0.14"),
            f.base.join("usr/bin/claude"),
        )
        .unwrap();
        std::fs::remove_file(f.base.join("home/.local/bin/claude")).unwrap();
        let got = locate("claude", &policy(&[], &[]), &f.root, &f.facts)
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.found, got.host),
            (
                f.base.join("usr/bin/claude"),
                f.base.join("home/.local/share/claude/versions/2.0.14")
            )
        );
    }

    #[test]
    fn a_program_under_a_denied_path_or_a_script_outside_is_refused_naming_it() {
        let f = fx();
        exe(&f.base.join("state/bin/claude"), b"\x7fELF");
        std::fs::remove_file(f.base.join("home/.local/bin/claude")).unwrap();
        let err = locate("claude", &policy(&[], &[]), &f.root, &f.facts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&f.base.join("state/bin/claude").display().to_string())
                && err.contains("no cage may see"),
            "{err}"
        );
        let err = locate("opencode", &policy(&[], &[]), &f.root, &f.facts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&f.base.join("home/.npm/bin/opencode").display().to_string())
                && err.contains("script")
                && err.contains("/usr/local or /opt"),
            "{err}"
        );
    }
}
