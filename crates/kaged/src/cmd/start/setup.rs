//! Start-up decisions that are pure functions of layout and settings: the bind self-check,
//! the auth policy and its nonce files, and the host facts sessions need.

use std::path::PathBuf;

use anyhow::{Result, bail};
use kaged_auth::{
    AuthMode, AuthPolicy, MIN_SIDECAR_NONCE_LEN, PolicyConfig, Secret, read_secret_file,
    write_secret_file,
};
use kaged_config::{NonceSource, Settings};
use kaged_deploy::Layout;
use kaged_http::HostFacts;

use crate::client::local_user;

/// What sessions need from the host, captured once: the login shell, the environment that
/// allowlisted names may draw from (never `KAGED_*`), and the paths no cage may see.
pub(super) fn host_facts(layout: &Layout, settings: &Settings) -> HostFacts {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten();
    let shell = user
        .as_ref()
        .map(|u| u.shell.display().to_string())
        .filter(|s| !s.is_empty() && !s.ends_with("nologin") && !s.ends_with("false"))
        .unwrap_or_else(|| "/bin/sh".to_owned());
    let home = user
        .map(|u| u.dir)
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"));
    let env = std::env::vars()
        .filter(|(k, _)| !k.starts_with("KAGED_") && k != "NOTIFY_SOCKET")
        .collect();
    let mut deny = vec![layout.runtime_dir.clone(), layout.state_dir.clone()];
    if let Some(dir) = layout.config_file.parent() {
        deny.push(dir.to_owned());
    }
    if let Some(kaged_config::NonceSource::File(p)) =
        settings.sidecar_nonce.as_ref().map(|s| &s.value)
    {
        deny.push(p.clone());
    }
    if let Some(db_dir) = settings.database_path().parent() {
        deny.push(db_dir.to_owned());
    }
    deny.retain(|p| p.exists());
    deny.sort();
    deny.dedup();
    HostFacts {
        sandbox_enabled: settings.sandbox_enabled.value,
        shell,
        home,
        env,
        deny,
        scratch_root: layout.state_dir.join("scratch"),
    }
}

/// ADR-0007's start-up self-check. Returns whether the KAGED_INSECURE_BIND override was used.
pub(super) fn bind_self_check(settings: &Settings) -> Result<bool> {
    let bind = settings.bind.value;
    if bind.ip().is_loopback() {
        return Ok(false);
    }
    if bind.ip().is_unspecified() {
        tracing::warn!(
            "binding {bind} exposes kaged on EVERY network interface; prefer 127.0.0.1 behind a sidecar (ADR-0007)"
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
    bail!(
        "refusing to bind non-loopback address {bind} (from {}) without an auth sidecar: set auth.mode = \"sidecar\" with KAGED_AUTH_SIDECAR_NONCE or auth.sidecar_nonce_file, bind 127.0.0.1, or set KAGED_INSECURE_BIND=1 if you really know what you are doing (ADR-0007)",
        settings.bind.source
    )
}

/// Creates the per-start nonce files. Returns the policy and the runtime files to remove at
/// shutdown.
pub(super) fn setup_auth(
    layout: &Layout,
    settings: &Settings,
    port: u16,
) -> Result<(AuthPolicy, Vec<PathBuf>)> {
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
        local_user: local_user(),
        loopback_nonce,
        sidecar_nonce,
        launch_ttl: settings.launch_token_ttl.value,
    })?;
    Ok((policy, files))
}
