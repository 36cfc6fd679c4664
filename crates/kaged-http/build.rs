//! Makes sure the web UI bundle exists before it is embedded: `web/dist` is built from the
//! sources in `web/` with the npm lock file, so `cargo build` on a fresh clone just works.

use std::path::Path;
use std::process::Command;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    for watched in ["dist", "src", "index.html", "package-lock.json"] {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }
    if web.join("dist/index.html").exists() {
        return;
    }
    let run = |args: &[&str]| {
        let status = Command::new("npm")
            .args(args)
            .current_dir(&web)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "web/dist is missing and `npm` could not run ({e}); install Node.js and npm, or build the UI with `cd web && npm ci && npm run build`"
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
    run(&["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    run(&["run", "build"]);
}
