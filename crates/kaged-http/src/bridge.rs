//! Forwards session events to `/api/v1/events` subscribers and the audit log, in one place so
//! every session (API, agent, task) is announced and audited the same way. Each event is
//! queued for the audit log before it is announced, so whoever sees an event and then reads
//! `GET /api/v1/audit` (which flushes the writer) finds its row.

use std::sync::Arc;

use kaged_session::{SessionEvent, SessionInfo};
use kaged_store::{AuditEvent, EventType};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

pub fn spawn_event_bridge(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let mut rx = st.sessions.events();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ev) => forward(&st, ev).await,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "session event bridge lagged; some events were not audited"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// Writes the counted authenticated reads once a second (see `gate`).
pub fn spawn_read_audit(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            st.flush_read_audit().await;
        }
    })
}

fn is_agent(info: &SessionInfo) -> bool {
    info.meta["kind"] == "agent"
}

async fn forward(st: &AppState, ev: SessionEvent) {
    match ev {
        SessionEvent::Started(info) => {
            st.audit(
                AuditEvent::new(
                    EventType::SessionStarted,
                    Some(&info.actor),
                    json!({"argv": info.argv, "kind": info.meta["kind"], "name": info.meta["name"], "cage": info.meta["cage"]}),
                )
                .project(&info.project_id)
                .session(&info.id),
            )
            .await;
            st.publish(json!({"type": "session.started", "session": info}));
            if is_agent(&info) {
                st.audit(
                    AuditEvent::new(
                        EventType::RunStarted,
                        Some(&info.actor),
                        json!({"agent": info.meta["name"]}),
                    )
                    .project(&info.project_id)
                    .session(&info.id),
                )
                .await;
                st.publish(
                    json!({"type": "run.started", "session": info, "agent": info.meta["name"]}),
                );
            }
        }
        SessionEvent::Exited(info) => {
            let data = json!({"exit_code": info.exit_code, "signal": info.signal, "end_reason": info.end_reason,
                              "bytes_total": info.bytes_total, "transcript_complete": info.transcript_complete});
            st.audit(
                AuditEvent::new(EventType::SessionExited, Some(&info.actor), data.clone())
                    .project(&info.project_id)
                    .session(&info.id),
            )
            .await;
            st.publish(json!({"type": "session.exited", "session": info}));
            if is_agent(&info) {
                st.audit(
                    AuditEvent::new(EventType::RunEnded, Some(&info.actor), data)
                        .project(&info.project_id)
                        .session(&info.id),
                )
                .await;
                st.publish(
                    json!({"type": "run.ended", "session": info, "agent": info.meta["name"]}),
                );
            }
        }
        SessionEvent::Attached {
            session_id,
            project_id,
            actor,
        } => {
            st.audit(
                AuditEvent::new(EventType::SessionAttached, Some(&actor), json!({}))
                    .project(&project_id)
                    .session(&session_id),
            )
            .await;
            st.publish(json!({"type": "session.attached", "session_id": session_id, "project_id": project_id, "actor": actor}));
        }
    }
}
