//! Builds throwaway project directories.

use std::path::Path;

use tempfile::TempDir;

/// A project root with `.kaged/project.yaml`, an optional overlay, and extra files
/// (`(relative path, contents)`).
pub fn project(main: &str, overlay: Option<&str>, files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let kaged = dir.path().join(".kaged");
    std::fs::create_dir_all(&kaged).unwrap();
    std::fs::write(kaged.join("project.yaml"), main).unwrap();
    if let Some(o) = overlay {
        std::fs::write(kaged.join("project.local.yaml"), o).unwrap();
    }
    for (rel, contents) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    dir
}

/// `(code, line, column, pointer)` of each diagnostic, for whole-value comparisons.
pub fn summary(d: &kaged_dsl::Diagnostics) -> Vec<(String, usize, usize, String)> {
    d.iter()
        .map(|d| (d.code.to_string(), d.line, d.column, d.pointer.clone()))
        .collect()
}

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
