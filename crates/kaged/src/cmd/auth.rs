//! `kaged auth nonce` and `kaged auth open`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kaged_api::{AuthMode, LaunchUrl};

use crate::cli::OpenArgs;
use crate::client::{Client, layout};

/// Prints the sidecar nonce. Reading it needs the daemon's UID: the file is 0600 in a 0700 dir.
pub fn nonce(mode: Option<&str>) -> Result<ExitCode> {
    let layout = layout(mode)?;
    let path = layout.sidecar_nonce_file();
    let value = kaged_auth::read_secret_file(&path, false).with_context(|| {
        format!(
            "no sidecar nonce at {}; is kaged running in sidecar auth mode (`kaged status`), and are you its user?",
            path.display()
        )
    })?;
    println!("{value}");
    Ok(ExitCode::SUCCESS)
}

/// Asks the running daemon for a fresh one-time launch URL, proving ourselves with the nonce
/// file, and opens a browser when one is available.
pub fn open(mode: Option<&str>, args: OpenArgs) -> Result<ExitCode> {
    let layout = layout(mode)?;
    let mut client = Client::for_layout(&layout)?;
    let endpoint = &client.endpoint;
    if endpoint.auth_mode != AuthMode::Loopback {
        bail!(
            "the daemon runs in {} auth mode; launch URLs exist only in loopback mode. Open {} through your sidecar instead",
            endpoint.auth_mode,
            endpoint.url
        );
    }
    let launch: LaunchUrl = client.post("/api/v1/auth/launch-token", &serde_json::json!({}))?;
    let url = launch.url.as_str();
    println!("{url}");
    eprintln!("(one-time URL, valid {}s)", launch.expires_in_secs);
    if !args.no_browser
        && std::env::var_os("DISPLAY")
            .or(std::env::var_os("WAYLAND_DISPLAY"))
            .is_some()
    {
        open_browser(&layout, url)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs every browser out: whatever cookie a browser (or anything that copied it) holds is
/// worthless from now on.
pub fn revoke(mode: Option<&str>) -> Result<ExitCode> {
    let mut client = Client::for_layout(&layout(mode)?)?;
    let _: kaged_api::Revoked = client.post("/api/v1/auth/revoke", &serde_json::json!({}))?;
    println!("every browser is signed out; `kaged auth open` prints a new launch URL");
    Ok(ExitCode::SUCCESS)
}

/// Opens a browser on a 0600 redirect file in the 0700 runtime dir, never on the URL itself:
/// a command line is readable by every local user in `/proc/*/cmdline`, and the token in the
/// URL is a credential until it is used (as Jupyter does it).
fn open_browser(layout: &kaged_deploy::Layout, url: &str) -> Result<()> {
    let dir = &layout.runtime_dir;
    // Earlier redirect files hold spent or expired tokens; nothing to keep.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("launch-") && name.ends_with(".html") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let path = dir.join(format!("launch-{}.html", std::process::id()));
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta name=referrer content=no-referrer>\
         <meta http-equiv=refresh content=\"0;url={url}\"><title>kaged</title>\
         <p><a href=\"{url}\">Open kaged</a></p>"
    );
    kaged_auth::write_secret_file(&path, &html)
        .with_context(|| format!("cannot write the launch page {}", path.display()))?;
    // Best effort: a missing xdg-open is not an error, the URL is printed above.
    let _ = std::process::Command::new("xdg-open")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    Ok(())
}
