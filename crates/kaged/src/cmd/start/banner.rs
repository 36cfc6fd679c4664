//! What `kaged start` tells the operator: the mode and why, where it listens and how to get
//! in, what to do next when nobody can sign in yet, and the loud blocks of ADR-0007
//! (`--insecure`) and ADR-0009 (`--no-sandbox`), printed at every start.

use std::net::SocketAddr;

use kaged_auth::AuthMode;
use kaged_config::Settings;
use kaged_daemon::Daemon;
use kaged_deploy::{Layout, Mode, ModeReason};

pub(super) fn log_start(layout: &Layout, settings: &Settings) {
    tracing::info!(
        mode = %layout.mode,
        reason = %layout.reason,
        "mode={} (reason: {})",
        layout.mode,
        layout.reason
    );
    if let Some(note) = &layout.runtime_note {
        tracing::warn!("runtime dir {}: {note}", layout.runtime_dir.display());
    }
    match &settings.config_file {
        Some(path) => tracing::info!("config: {}", path.display()),
        None => tracing::info!(
            "config: {} (not present; using defaults)",
            layout.config_file.display()
        ),
    }
}

pub(super) fn print(daemon: &Daemon, service_manager: bool) {
    let (layout, settings) = (daemon.layout(), daemon.settings());
    let bound = daemon.bind();
    let auth = settings.auth_mode.value;
    if auth == AuthMode::Insecure {
        print_insecure_block(bound);
    }
    if !settings.sandbox_enabled.value {
        print_no_sandbox_block(bound);
    }
    eprintln!(
        "kaged {} listening on http://{bound}",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!("  mode:    {} (reason: {})", layout.mode, layout.reason);
    if matches!(layout.reason, ModeReason::Flag) {
        // Other commands detect the mode afresh (as root that means system-wide).
        eprintln!(
            "           other kaged commands find this daemon with `--mode {0}` or KAGED_MODE={0}",
            layout.mode
        );
    }
    eprintln!("  state:   {}", layout.state_dir.display());
    eprintln!("  auth:    {auth}");
    match auth {
        AuthMode::Loopback => {
            eprintln!(
                "  nonce:   {} (0600; `kaged auth open` prints a fresh launch URL)",
                layout.auth_cookie_file().display()
            );
            // A launch token is a credential until it is used: never into a log that keeps
            // it. On a terminal (or a plain pipe, as in tests) it is printed.
            let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            if service_manager && !on_terminal {
                eprintln!(
                    "  open:    run `kaged auth open` as {} for a one-time launch URL (not printed here: this output goes to the journal)",
                    kaged_daemon::local_user()
                );
            } else {
                match daemon.launch_url() {
                    Ok(launch) => eprintln!(
                        "  open:    {}  (one-time, valid {}s)",
                        launch.url, launch.expires_in_secs
                    ),
                    Err(e) => eprintln!("  open:    no launch URL: {e}; run `kaged auth open`"),
                }
            }
        }
        AuthMode::Sidecar => {
            eprintln!(
                "  sidecar: nonce in {} (0600; `kaged auth nonce` prints it)",
                layout.sidecar_nonce_file().display()
            );
            if settings.sidecar_nonce.is_none() {
                print_next_steps(layout.mode);
            }
        }
        AuthMode::Insecure => eprintln!("  open:    {}/", daemon.base_url()),
    }
}

/// Sidecar mode with no sidecar configured: nobody can sign in yet, so say how to fix that
/// (ADR-0007) or how to try kaged as oneself (ADR-0010's per-user mode).
fn print_next_steps(mode: Mode) {
    let why = match mode {
        Mode::System => "system-wide mode expects an auth sidecar in front of it (ADR-0007)",
        Mode::User => "auth.mode = \"sidecar\" expects an auth sidecar in front of it (ADR-0007)",
    };
    eprintln!();
    eprintln!("  next:    no sidecar is configured yet, so nobody can sign in: {why}.");
    eprintln!("           - put one in front: see docs/choose-your-deployment.md (oauth2-proxy,");
    eprintln!(
        "             Authelia, Tailscale, ...), set up with the nonce from `kaged auth nonce`;"
    );
    eprintln!("           - or try kaged locally as yourself, with a launch URL and no sidecar:");
    eprintln!("               kaged start --mode user");
    eprintln!();
}

pub(super) fn print_insecure_block(bind: SocketAddr) {
    let exposed = if bind.ip().is_loopback() {
        "Anyone who can reach this loopback address (any local user or process) is the operator."
    } else {
        "This is a NON-LOOPBACK address: anyone on the network who can reach it is the operator."
    };
    eprintln!(
        "\n\
         ################################################################################\n\
         ##  WARNING: kaged started with --insecure (auth.mode = insecure)\n\
         ##  AUTHENTICATION IS BYPASSED. Every request is accepted as `insecure-mode`.\n\
         ##  Bind address: {bind}\n\
         ##  {exposed}\n\
         ##  CSRF checks, the sandbox and the audit log stay on.\n\
         ##  See ADR-0007 (docs/auth.md): restrict network access yourself.\n\
         ################################################################################\n"
    );
}

pub(super) fn print_no_sandbox_block(bind: SocketAddr) {
    eprintln!(
        "\n\
         ################################################################################\n\
         ##  WARNING: kaged started with --no-sandbox\n\
         ##  Sessions run WITHOUT bubblewrap cages, with the daemon's full rights.\n\
         ##  Bind address: {bind}\n\
         ##  See ADR-0009: cages are the default; this is an explicit escape hatch.\n\
         ################################################################################\n"
    );
}
