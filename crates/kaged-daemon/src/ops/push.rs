//! Web Push subscriptions: each operator lists, adds and revokes their own devices; and their
//! key bar, the same on each of them. And an agent run's own event stream, for the
//! agent-output WebSocket.

use kaged_api::{
    AgentStatus, DaemonEvent, Identity, KeyBarChoice, PushInfo, PushRevoked, PushSubscribe,
    PushSubscriptionView, Timestamp,
};
use kaged_store::{AuditEvent, EventType, PushRow};
use serde_json::json;
use tokio::sync::broadcast;

use crate::Daemon;
use crate::error::{OpError, OpResult};

/// A label longer than this is refused: it names a device, nothing more.
const LABEL_MAX: usize = 80;

fn view(row: &PushRow) -> PushSubscriptionView {
    PushSubscriptionView {
        id: row.id.clone(),
        label: row.label.clone(),
        service: kaged_push::check_endpoint(&row.endpoint).unwrap_or_default(),
        created_at: row.created_at,
    }
}

/// An agent run's stream: its state now, then its events as they come.
pub struct AgentRun {
    pub session_id: String,
    /// `agent.state` with the state now (and `run.ended` when it has ended).
    pub now: Vec<DaemonEvent>,
    pub events: broadcast::Receiver<DaemonEvent>,
}

impl AgentRun {
    /// Whether `event` belongs on this run's stream.
    pub fn carries(&self, event: &DaemonEvent) -> bool {
        match event {
            DaemonEvent::RunStarted { session, .. } | DaemonEvent::RunEnded { session, .. } => {
                session.id == self.session_id
            }
            DaemonEvent::AgentState { session_id, .. }
            | DaemonEvent::ApprovalRequested {
                approval: kaged_api::Approval { session_id, .. },
            }
            | DaemonEvent::ApprovalAnswered {
                outcome: kaged_api::ApprovalOutcome { session_id, .. },
            } => *session_id == self.session_id,
            DaemonEvent::Gap { .. } | DaemonEvent::Pong => true,
            DaemonEvent::SessionStarted { .. }
            | DaemonEvent::SessionExited { .. }
            | DaemonEvent::SessionAttached { .. }
            | DaemonEvent::Egress { .. } => false,
        }
    }
}

impl Daemon {
    /// The caller's key bar: what they chose, or every key.
    pub async fn keybar(&self, who: &Identity) -> OpResult<KeyBarChoice> {
        let stored = self
            .inner
            .store
            .keybar(&who.user_id)
            .await
            .map_err(|e| OpError::internal("cannot read the key bar", e))?;
        // A stored list that no longer parses (a key this version dropped) falls back to all.
        Ok(stored
            .and_then(|json| serde_json::from_str::<KeyBarChoice>(&json).ok())
            .map(KeyBarChoice::normalised)
            .unwrap_or_default())
    }

    /// Stores the caller's key bar, for every device they sign in from.
    pub async fn set_keybar(&self, who: &Identity, choice: KeyBarChoice) -> OpResult<KeyBarChoice> {
        let choice = choice.normalised();
        let json = serde_json::to_string(&choice)
            .map_err(|e| OpError::internal("cannot store the key bar", e))?;
        self.inner
            .store
            .set_keybar(&who.user_id, json)
            .await
            .map_err(|e| OpError::internal("cannot store the key bar", e))?;
        Ok(choice)
    }

    pub async fn push_info(&self, who: &Identity) -> OpResult<PushInfo> {
        let rows = self
            .inner
            .store
            .push_subscriptions(&who.user_id)
            .await
            .map_err(|e| OpError::internal("cannot read push subscriptions", e))?;
        Ok(PushInfo {
            vapid_public_key: self.inner.pusher.public_key().to_owned(),
            subscriptions: rows.iter().map(view).collect(),
        })
    }

    /// Stores a browser's subscription for the caller (audited with the push service, never
    /// the endpoint or keys).
    pub async fn subscribe_push(
        &self,
        who: &Identity,
        req: PushSubscribe,
    ) -> OpResult<PushSubscriptionView> {
        let service = kaged_push::check_endpoint(&req.endpoint)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        kaged_push::check_keys(&req.keys.p256dh, &req.keys.auth)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        let label = req
            .label
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty());
        if let Some(l) = &label
            && (l.chars().count() > LABEL_MAX || l.chars().any(char::is_control))
        {
            return Err(OpError::Invalid(format!(
                "label {l:?} is too long or has control characters; use at most {LABEL_MAX} plain characters"
            )));
        }
        let id = kaged_session::new_session_id()?;
        let row = PushRow {
            id,
            user_id: who.user_id.clone(),
            endpoint: req.endpoint,
            p256dh: req.keys.p256dh,
            auth: req.keys.auth,
            label,
            created_at: Timestamp::now(),
        };
        let stored = self
            .inner
            .store
            .upsert_push(row)
            .await
            .map_err(|e| OpError::internal("cannot store a push subscription", e))?;
        let data = json!({"subscription": stored.id, "service": service, "label": stored.label});
        self.inner
            .audit
            .record(AuditEvent::new(
                EventType::PushSubscribed,
                Some(&who.user_id),
                data,
            ))
            .await;
        Ok(view(&stored))
    }

    /// Revokes one of the caller's subscriptions.
    pub async fn revoke_push(&self, who: &Identity, id: &str) -> OpResult<PushRevoked> {
        let removed = self
            .inner
            .store
            .remove_push(&who.user_id, id)
            .await
            .map_err(|e| OpError::internal("cannot revoke a push subscription", e))?;
        if !removed {
            return Err(OpError::not_found("push subscription", id));
        }
        let data = json!({"subscription": id, "by": "operator"});
        self.inner
            .audit
            .record(AuditEvent::new(
                EventType::PushRevoked,
                Some(&who.user_id),
                data,
            ))
            .await;
        Ok(PushRevoked { id: id.to_owned() })
    }

    /// The agent-output stream of session `id` (an agent run the caller may see).
    pub fn agent_run(&self, who: &Identity, id: &str) -> OpResult<AgentRun> {
        // Subscribed before the state is read, so no change falls between the two.
        let events = self.events();
        let info = self.session(who, id)?;
        let Some(agent) = super::agent_name(&info) else {
            return Err(OpError::Invalid(format!(
                "session {id} was not started from a declared agent; only agent runs have an agent stream"
            )));
        };
        let mut now = Vec::new();
        if let Some(state) = info.agent.clone() {
            let ended = matches!(state.status, AgentStatus::Done | AgentStatus::Error)
                && info.state == kaged_api::SessionState::Exited;
            now.push(DaemonEvent::AgentState {
                session_id: info.id.clone(),
                project_id: info.project_id.clone(),
                agent: agent.clone(),
                state,
            });
            if ended {
                now.push(DaemonEvent::RunEnded {
                    session: info.clone(),
                    agent,
                });
            }
        }
        Ok(AgentRun {
            session_id: info.id,
            now,
            events,
        })
    }
}
