//! One-time launch URLs (loopback mode, ADR-0007's per-user amendment and design §4).

use kaged_api::{Identity, LaunchUrl};
use kaged_auth::{AuthMode, Authenticated};
use kaged_store::{AuditEvent, EventType};
use serde_json::json;

use crate::Daemon;
use crate::audit::Refusal;
use crate::error::{OpError, OpResult};

/// Who tried a launch URL, for the audit row.
pub struct LaunchAttempt {
    pub peer: std::net::SocketAddr,
    pub user_agent: Option<String>,
}

impl Daemon {
    /// A refused request: one capped audit row; and a peer that keeps presenting wrong
    /// credentials waits longer for each refusal, so guessing is slow. Peers that present
    /// good credentials are never slowed.
    pub async fn refused(&self, refusal: Refusal<'_>) {
        let delay = refusal.peer.filter(|_| refusal.wrong_credential).map(|p| {
            self.inner
                .backoff
                .failed(p.ip(), self.inner.started.elapsed())
        });
        self.inner.audit.rejected(refusal).await;
        if let Some(delay) = delay.filter(|d| !d.is_zero()) {
            tokio::time::sleep(delay).await;
        }
    }

    /// A fresh one-time launch URL, for `kaged auth open` (which proved itself with the
    /// nonce). Only loopback mode has them.
    pub async fn issue_launch_url(&self, actor: &Identity) -> OpResult<LaunchUrl> {
        let url = self.launch_url()?;
        self.inner
            .audit
            .record(AuditEvent::new(
                EventType::AuthLaunchTokenIssued,
                Some(&actor.user_id),
                json!({"ttl_secs": url.expires_in_secs}),
            ))
            .await;
        Ok(url)
    }

    /// The launch URL printed at start; the token in it works once.
    pub fn launch_url(&self) -> OpResult<LaunchUrl> {
        let mode = self.inner.auth.mode();
        if mode != AuthMode::Loopback {
            return Err(OpError::Conflict(format!(
                "launch URLs exist only in loopback auth mode; this daemon runs in {mode} mode"
            )));
        }
        let token = self
            .inner
            .auth
            .issue_launch_token()
            .map_err(|e| OpError::internal("cannot issue a launch token", e))?;
        Ok(LaunchUrl {
            url: format!("{}/launch?token={token}", self.base_url()),
            expires_in_secs: self.inner.settings.launch_token_ttl.value.as_secs(),
        })
    }

    /// Trades a launch token (or the nonce itself) for the `Set-Cookie` value of a browser
    /// session. Both outcomes are audited with who tried (peer and user agent); the token
    /// never is.
    pub async fn redeem_launch(
        &self,
        token: &str,
        attempt: LaunchAttempt,
    ) -> OpResult<kaged_auth::Launched> {
        let who = json!({"peer": attempt.peer.to_string(), "user_agent": attempt.user_agent});
        match self.inner.auth.redeem_launch(token) {
            Ok(launched) => {
                self.inner
                    .audit
                    .record(AuditEvent::new(
                        EventType::AuthLaunchTokenUsed,
                        Some(&self.inner.user),
                        who,
                    ))
                    .await;
                Ok(launched)
            }
            Err(e) => {
                self.refused(Refusal {
                    reason: e.reason(),
                    method: "GET",
                    path: "/launch",
                    peer: Some(attempt.peer),
                    user_agent: attempt.user_agent.as_deref(),
                    wrong_credential: true,
                })
                .await;
                Err(OpError::Unauthenticated(e))
            }
        }
    }

    /// Signs this browser session out; returns the `Set-Cookie` that clears the cookie.
    pub async fn sign_out(&self, auth: &Authenticated) -> Option<String> {
        let cleared = self.inner.auth.sign_out(auth);
        self.inner
            .audit
            .record(AuditEvent::new(
                EventType::AuthSignedOut,
                Some(&auth.identity.user_id),
                json!({"browser_session": cleared.is_some()}),
            ))
            .await;
        cleared
    }

    /// Signs every browser out by replacing the cookie key (`kaged auth revoke`).
    pub async fn revoke_browser_sessions(&self, actor: &Identity) -> OpResult<()> {
        self.inner
            .auth
            .revoke_all()
            .map_err(|e| OpError::internal("cannot make a new cookie key", e))?;
        self.inner
            .audit
            .record(AuditEvent::new(
                EventType::AuthRevoked,
                Some(&actor.user_id),
                json!({}),
            ))
            .await;
        Ok(())
    }
}
