//! `GET /api/v1/audit`: the log, newest first, a page at a time.

use kaged_api::{AuditPage, AuditParams};

use crate::Daemon;
use crate::error::{OpError, OpResult};

impl Daemon {
    pub async fn audit_page(&self, params: AuditParams) -> OpResult<AuditPage> {
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
        let events = i
            .store
            .audit_query(params)
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
