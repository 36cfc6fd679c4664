//! `GET /api/v1/audit`: the log, newest first, a page at a time.

use kaged_api::{AuditPage, AuditParams, Identity};
use kaged_store::AuditScope;

use crate::Daemon;
use crate::error::{OpError, OpResult};

impl Daemon {
    /// Admins read everything; other operators what they did and what happened to the
    /// sessions they may see.
    pub async fn audit_page(&self, who: &Identity, params: AuditParams) -> OpResult<AuditPage> {
        let limit = params.limit.unwrap_or(kaged_store::DEFAULT_PAGE);
        if !(1..=1000).contains(&limit) {
            return Err(OpError::Invalid(format!(
                "limit={limit} is out of range; use 1 to 1000"
            )));
        }
        let i = &self.inner;
        // Read your own writes: rows recorded before this request may still sit in the
        // writer's queue, and an operator who just deleted something expects to see it.
        i.audit
            .flush()
            .await
            .map_err(|e| OpError::internal("cannot flush the audit log", e))?;
        let scope = if i.owners.is_admin(who) {
            AuditScope::All
        } else {
            let visible = self.all_sessions(who).sessions;
            AuditScope::Own {
                actor: who.user_id.clone(),
                sessions: visible.into_iter().map(|s| s.id).collect(),
            }
        };
        let events = i
            .store
            .audit_query(params, scope)
            .await
            .map_err(|e| OpError::internal("cannot read the audit log", e))?;
        let next_before = (events.len() as u32 == limit)
            .then(|| events.last().map(|r| r.id))
            .flatten();
        Ok(AuditPage {
            events,
            next_before,
        })
    }
}
