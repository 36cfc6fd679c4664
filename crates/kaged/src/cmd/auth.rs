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
        // Best effort: a missing xdg-open is not an error, the URL is printed above.
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    Ok(ExitCode::SUCCESS)
}
