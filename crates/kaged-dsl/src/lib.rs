//! `dsl` owns the project file format (design §9, ADR-0011). It parses and lints; it never
//! starts anything and never reads operator-local state beyond what it is handed.
//!
//! Entry points: [`load_project`] for a directory on disk, [`parse_project_str`] for text
//! (no overlay, no file checks), [`json_schema`] for the schema served at
//! `GET /api/v1/dsl/schema`, and [`LocalConfig`] for the operator's `local.toml`.
//!
//! # Why `saphyr-parser`
//! We need a line and column for every key and value, typed scalars that still tell `1`
//! from `"1"`, and hard bounds on depth and alias expansion. Of the maintained crates:
//! - `marked-yaml` keeps spans but turns every scalar into a string, refuses anchors
//!   outright, stops at the first error and still builds on an old `yaml-rust2` (0.10);
//! - `yaml-rust2` is in maintenance mode; its authors continue the work as `saphyr`, and its
//!   tree loader expands aliases by cloning with no budget (a billion-laughs file eats RAM);
//! - `saphyr` (0.3) has a marked tree, but it too expands aliases on its own terms.
//!
//! So we use `saphyr-parser` — the YAML 1.2 event parser under `saphyr`, fully spanned and
//! iterative (its own flow-nesting recursion limit included) — and build our small tree in
//! [`yaml`] where depth and alias budgets are enforced before anything is allocated.

mod decode;
mod diag;
mod local;
mod overlay;
mod portability;
mod yaml;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use diag::{Code, Diagnostic, Diagnostics};
pub use local::{
    ApiKey, LocalConfig, LocalConfigError, LocalEgress, LocalWorktrees, Provider, ProviderAuth,
    RegisteredProject, UnknownAlias, UnknownAliases,
};
// The file format's types are wire types: they live in `kaged-api`, once.
pub use kaged_api::cage::{
    Access, ByteSize, Cage, CagePolicy, DEFAULT_CAGE_ENV, ENV_NAME_PATTERN, FsGrant,
    LimitEnforcement, Limits, MAX_CPU, MAX_PIDS, Network, PathError, PathScheme, PortablePath,
    State, Walltime,
};
pub use kaged_api::egress::{EgressRules, HostPattern};
pub use kaged_api::project::{
    ALIAS_PATTERN, AgentSpec, MAX_DESCRIPTION_CHARS, NAME_PATTERN, Plugin, Project, SLUG_PATTERN,
    Task,
};

use diag::{Code as C, Pos, Sink, Src};

/// Largest project or overlay file accepted, in bytes. Real project files are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest nesting of mappings and lists accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that alias expansion may add in one file; beyond this it is an alias bomb.
pub const MAX_ALIAS_NODES: usize = 10_000;

/// Most diagnostics kept from one load; a file with more problems than this is far from a
/// project file, and listing them all would only bury the first ones.
pub const MAX_DIAGNOSTICS: usize = 200;

pub use kaged_api::project::{OVERLAY_FILE, PROJECT_DIR, PROJECT_FILE};
pub use kaged_api::worktree::Workspace;

/// Loads `<root>/.kaged/project.yaml` with its optional `project.local.yaml` overlay and
/// checks it completely: schema, portability, and files it refers to (the system prompt
/// exists; no path leaves the project through a symlink).
///
/// On failure every problem is returned at once. Diagnostic file names are
/// `root.join(".kaged/project.yaml")` (or the overlay) exactly as `root` was given.
pub fn load_project(root: &Path) -> Result<Project, Diagnostics> {
    let dir = root.join(PROJECT_DIR);
    let main_path = dir.join(PROJECT_FILE);
    let overlay_path = dir.join(OVERLAY_FILE);
    let mut sink = Sink::new(&main_path, &overlay_path);
    let at_main = Pos::start(Src::Main);

    let canonical_root = match std::fs::canonicalize(root) {
        Ok(r) if r.is_dir() => r,
        Ok(_) => {
            sink.push(
                at_main,
                C::MissingFile,
                "",
                format!(
                    "{} is not a directory; pass the project's root directory",
                    root.display()
                ),
            );
            return Err(sink.finish());
        }
        Err(e) => {
            sink.push(
                at_main,
                C::MissingFile,
                "",
                format!(
                    "cannot open project directory {}: {e}; check the path",
                    root.display()
                ),
            );
            return Err(sink.finish());
        }
    };

    let main_text = read_bounded(&main_path, Src::Main, &canonical_root, &mut sink);
    let overlay_exists = std::fs::symlink_metadata(&overlay_path).is_ok();
    let overlay_text = if overlay_exists {
        read_bounded(&overlay_path, Src::Overlay, &canonical_root, &mut sink)
    } else {
        None
    };
    let Some(main_text) = main_text else {
        return Err(sink.finish());
    };
    if overlay_exists && overlay_text.is_none() {
        return Err(sink.finish());
    }
    let project = check(
        &mut sink,
        &main_text,
        overlay_text.as_deref(),
        Some(&canonical_root),
    );
    finish(sink, project)
}

/// Checks one project file's text: schema and portability, without an overlay and without
/// looking at the filesystem (so a missing prompt file or a symlink is not detected).
/// `file` only names the source in diagnostics.
pub fn parse_project_str(file: &Path, yaml: &str) -> Result<Project, Diagnostics> {
    let mut sink = Sink::new(file, file);
    if yaml.len() as u64 > MAX_FILE_BYTES {
        push_too_large(&mut sink, Src::Main, yaml.len() as u64);
        return Err(sink.finish());
    }
    let project = check(&mut sink, yaml.trim_start_matches('\u{feff}'), None, None);
    finish(sink, project)
}

/// The JSON Schema (draft 2020-12) of a project file, generated from [`Project`] so the
/// schema and the parser cannot drift apart. The portability rules beyond patterns (`..`,
/// symlinks, credentials, concrete model ids) are only checked by the parser.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Project);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

/// The YAML document as plain JSON, before any schema or portability check — what an
/// editor validates against [`json_schema`]. The same size, depth and alias bounds apply.
pub fn document_json(file: &Path, yaml: &str) -> Result<serde_json::Value, Diagnostics> {
    let mut sink = Sink::new(file, file);
    if yaml.len() as u64 > MAX_FILE_BYTES {
        push_too_large(&mut sink, Src::Main, yaml.len() as u64);
        return Err(sink.finish());
    }
    match yaml::parse(yaml.trim_start_matches('\u{feff}'), Src::Main, &mut sink) {
        Some(node) if sink.out.is_empty() => Ok(node.to_json()),
        _ => Err(sink.finish()),
    }
}

fn finish(sink: Sink<'_>, project: Option<Project>) -> Result<Project, Diagnostics> {
    let diagnostics = sink.finish();
    match project {
        Some(p) if diagnostics.is_empty() => Ok(p),
        _ => Err(diagnostics),
    }
}

fn check(
    sink: &mut Sink<'_>,
    main: &str,
    overlay: Option<&str>,
    root: Option<&Path>,
) -> Option<Project> {
    let base = yaml::parse(main, Src::Main, sink);
    // Parse the overlay even if the main file failed, so its syntax errors show too.
    let over = overlay.and_then(|t| yaml::parse(t, Src::Overlay, sink));
    let base = base?;
    let merged = match over {
        Some(o) => overlay::merge(base, o, sink),
        None => base,
    };
    portability::scan_credentials(&merged, "", sink);
    let project = decode::Decoder { sink, root }.project(&merged);
    Some(project)
}

fn push_too_large(sink: &mut Sink<'_>, src: Src, len: u64) {
    sink.push(
        Pos::start(src),
        C::TooLarge,
        "",
        format!(
            "the file is {len} bytes; project files are limited to {MAX_FILE_BYTES} bytes. \
             Move large content (prompts, docs) into separate files referenced by project:/ \
             paths"
        ),
    );
}

/// Reads a project file without trusting it: refuses a symlink that leads out of the
/// project, never reads more than [`MAX_FILE_BYTES`] + 1 bytes, and requires UTF-8.
fn read_bounded(path: &Path, src: Src, root: &Path, sink: &mut Sink<'_>) -> Option<String> {
    let at = Pos::start(src);
    let relative = path
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(PROJECT_DIR).join(path.file_name().unwrap_or_default()));
    match std::fs::canonicalize(path) {
        Ok(real) if !real.starts_with(root) => {
            sink.push(
                at,
                C::SymlinkEscape,
                "",
                format!(
                    "{} is a symlink to {}, outside the project; project files must live in \
                     the project, so copy it in",
                    relative.display(),
                    real.display()
                ),
            );
            return None;
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            sink.push(
                at,
                C::MissingFile,
                "",
                format!(
                    "{} does not exist; create it (start from one of examples/projects/) or \
                     pass the project's root directory",
                    path.display()
                ),
            );
            return None;
        }
        Err(e) => {
            sink.push(
                at,
                C::IoError,
                "",
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    }
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        sink.push(
            at,
            C::IoError,
            "",
            format!("cannot read {}: {e}", path.display()),
        );
        return None;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let len = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        push_too_large(sink, src, len);
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some(text.trim_start_matches('\u{feff}').to_string()),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let valid = String::from_utf8_lossy(valid);
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            sink.push(
                Pos { src, line, column },
                C::YamlSyntax,
                "",
                "the file is not valid UTF-8 here; save it as UTF-8",
            );
            None
        }
    }
}
