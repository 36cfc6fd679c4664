//! One-time launch URLs (loopback mode, ADR-0007's per-user amendment and design §4).

use kaged_api::{Identity, LaunchUrl};
use kaged_auth::AuthMode;
use kaged_store::{AuditEvent, EventType};
use serde_json::json;

use crate::Daemon;
use crate::error::{OpError, OpResult};

impl Daemon {
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
    /// session. Both outcomes are audited; the token never is.
    pub async fn redeem_launch(&self, token: &str) -> OpResult<String> {
        match self.inner.auth.redeem_launch(token) {
            Ok(cookie) => {
                self.inner
                    .audit
                    .record(AuditEvent::new(
                        EventType::AuthLaunchTokenUsed,
                        Some(&self.inner.user),
                        json!({}),
                    ))
                    .await;
                Ok(cookie)
            }
            Err(e) => {
                self.inner
                    .audit
                    .record(AuditEvent::new(
                        EventType::AuthRejected,
                        None,
                        json!({"reason": e.reason(), "path": "/launch"}),
                    ))
                    .await;
                Err(OpError::Unauthenticated(e))
            }
        }
    }
}
