//! Makes sure the embedded web UI is current: `web/dist` is (re)built from the sources in
//! `web/` with the npm lock file when it is missing or older than them, so `cargo build` on a
//! fresh clone or after a UI edit just works.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let mut t = meta.modified().ok()?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).ok()?.flatten() {
            if let Some(child) = newest(&e.path()) {
                t = t.max(child);
            }
        }
    }
    Some(t)
}

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let sources: Vec<PathBuf> = [
        "src",
        "index.html",
        "package-lock.json",
        "vite.config.ts",
        "public",
    ]
    .iter()
    .map(|p| web.join(p))
    .collect();
    for p in sources.iter().chain([&web.join("dist")]) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let built = newest(&web.join("dist/index.html"));
    let source_time = sources.iter().filter_map(|p| newest(p)).max();
    if matches!((built, source_time), (Some(b), Some(s)) if b >= s) {
        return;
    }
    let run = |args: &[&str]| {
        let status = Command::new("npm")
            .args(args)
            .current_dir(&web)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "web/dist must be built and `npm` could not run ({e}); install Node.js and npm, or build the UI with `cd web && npm ci && npm run build`"
                )
            });
        if !status.success() {
            panic!(
                "`npm {}` failed in {}; see its output above",
                args.join(" "),
                web.display()
            );
        }
    };
    if !web.join("node_modules").is_dir() {
        run(&["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    }
    run(&["run", "build"]);
}
