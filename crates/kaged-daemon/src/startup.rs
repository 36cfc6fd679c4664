//! Start-up decisions that are pure functions of layout and settings: the bind self-check of
//! ADR-0007 and the auth policy with its per-start nonce files.

use std::path::PathBuf;

use kaged_auth::{
    AuthMode, AuthPolicy, MIN_SIDECAR_NONCE_LEN, PolicyConfig, Secret, read_secret_file,
    write_secret_file,
};
use kaged_config::{NonceSource, Settings};
use kaged_deploy::Layout;

use crate::error::StartError;

/// ADR-0007's start-up self-check. Returns whether the `KAGED_INSECURE_BIND` override was
/// used, which the daemon audits.
pub(crate) fn bind_self_check(settings: &Settings) -> Result<bool, StartError> {
    let bind = settings.bind.value;
    if bind.ip().is_loopback() {
        return Ok(false);
    }
    if bind.ip().is_unspecified() {
        tracing::warn!(
            "binding {bind} exposes kaged on EVERY network interface; prefer 127.0.0.1 behind a sidecar (ADR-0007)"
        );
    } else {
        tracing::warn!(
            "binding {bind} exposes kaged to every host that can reach {}; prefer 127.0.0.1 behind a sidecar (ADR-0007)",
            bind.ip()
        );
    }
    if settings.sidecar_nonce.is_some() && settings.auth_mode.value == AuthMode::Sidecar {
        return Ok(false);
    }
    if settings.insecure_bind.value {
        tracing::warn!(
            "!!! KAGED_INSECURE_BIND=1: serving on non-loopback {bind} WITHOUT a sidecar nonce. Anyone who can reach this address can try to talk to kaged. This override is audited. !!!"
        );
        return Ok(true);
    }
    Err(StartError::UnsafeBind {
        bind,
        source_of: settings.bind.source.to_string(),
    })
}

/// Creates the per-start nonce files. Returns the policy and the runtime files to remove at
/// shutdown.
pub(crate) fn setup_auth(
    layout: &Layout,
    settings: &Settings,
    port: u16,
    local_user: String,
) -> Result<(AuthPolicy, Vec<PathBuf>), StartError> {
    let mut files = Vec::new();
    let mut loopback_nonce = None;
    let mut sidecar_nonce = None;
    match settings.auth_mode.value {
        AuthMode::Loopback => {
            let nonce = Secret::generate()?;
            write_secret_file(&layout.auth_cookie_file(), nonce.expose())?;
            files.push(layout.auth_cookie_file());
            loopback_nonce = Some(nonce);
        }
        AuthMode::Sidecar => {
            let nonce = match &settings.sidecar_nonce {
                Some(s) => {
                    let value = match &s.value {
                        NonceSource::Inline(v) => v.clone(),
                        NonceSource::File(p) => read_secret_file(p, true)?,
                    };
                    if value.len() < MIN_SIDECAR_NONCE_LEN {
                        return Err(kaged_auth::AuthSetupError::WeakNonce {
                            origin: s.source.to_string(),
                            len: value.len(),
                        }
                        .into());
                    }
                    Secret::from_string(value)
                }
                None => Secret::generate()?,
            };
            // `kaged auth nonce` reads this copy; only the daemon's UID can.
            write_secret_file(&layout.sidecar_nonce_file(), nonce.expose())?;
            files.push(layout.sidecar_nonce_file());
            sidecar_nonce = Some(nonce);
        }
        AuthMode::Insecure => {}
    }
    let policy = AuthPolicy::new(PolicyConfig {
        mode: settings.auth_mode.value,
        port,
        local_user,
        loopback_nonce,
        sidecar_nonce,
        launch_ttl: settings.launch_token_ttl.value,
    })?;
    Ok((policy, files))
}

/// The daemon holds nonces and session cookies' keys in memory: no core dumps, and no
/// ptrace or `/proc/<pid>/mem` for other processes of the same user.
pub(crate) fn harden_process() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "could not mark the daemon non-dumpable");
    }
    let no_core = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    if let Err(e) = no_core {
        tracing::warn!(error = %e, "could not turn core dumps off");
    }
}

/// ADR-0010: the system-wide daemon runs as a dedicated `kaged` user, not as root.
pub(crate) fn warn_if_root(layout: &Layout) {
    if layout.mode == kaged_deploy::Mode::System && nix::unistd::geteuid().is_root() {
        tracing::warn!(
            "running system-wide as root: ADR-0010 wants a dedicated user. Create it (`useradd --system --home-dir /var/lib/kaged kaged`) and run the unit in examples/deployment/systemd/ (User=kaged), or try kaged as yourself with `kaged start --mode user`"
        );
    }
}

/// Descriptors kept free for sessions (PTYs, transcripts), the database and the runtime files
/// when comparing the open-file limit with `server.max_connections`.
const FILES_BESIDES_CONNECTIONS: u64 = 1024;

/// Connections past the open-file limit fail in `accept`, before the connection caps can
/// choose which slow connection to close; say so at start rather than under load.
pub(crate) fn warn_if_few_files(settings: &Settings) {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let max = &settings.server.max_connections;
    let wanted = (max.value as u64).saturating_add(FILES_BESIDES_CONNECTIONS);
    if soft < wanted {
        tracing::warn!(
            "the open-file limit is {soft}, below server.max_connections ({}, from {}) plus {FILES_BESIDES_CONNECTIONS} for sessions; raise it (LimitNOFILE= in the unit, `ulimit -n`) or lower server.max_connections",
            max.value,
            max.source
        );
    }
}
