//! Embeds the web UI when it has been built (`web/dist`), so `kaged` stays one file. Building
//! it is the README's job (`./dev start`, `./dev test`, or `cd web && npm ci && npm run build`),
//! never cargo's: a fresh `cargo check` needs neither Node nor the network. Without it, the
//! UI route serves a page that says how to build it.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kaged_web_dist)");
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let dist = web.join("dist");
    if dist.join("index.html").is_file() {
        println!("cargo::rustc-cfg=kaged_web_dist");
        println!("cargo::rerun-if-changed={}", dist.display());
    } else {
        // Notice when the UI gets built.
        println!("cargo::rerun-if-changed={}", web.display());
    }
}
