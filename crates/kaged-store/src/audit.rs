//! The audit log: typed events, appended by one writer thread in batches, read back page by
//! page. Rows are never updated or deleted (a trigger enforces it). Callers must never put a
//! secret into `data`: the writer cannot tell a nonce from any other string.

use std::fmt;

use kaged_api::{AuditParams, AuditRow, Timestamp};
use rusqlite::{Connection, params_from_iter};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// Every audit event kaged writes. Dotted names are the stable, public form (design §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventType {
    DaemonStarted,
    DaemonStopped,
    AuthInsecureMode,
    AuthInsecureBind,
    AuthLaunchTokenIssued,
    AuthLaunchTokenUsed,
    AuthRejected,
    AuthSignedOut,
    AuthRevoked,
    HttpRequest,
    HttpReads,
    SandboxDisabled,
    CageDisabled,
    CageProtectionLifted,
    CageLimitsNotEnforced,
    CageNetworkHost,
    EgressAllowed,
    EgressDenied,
    EgressFailed,
    ProjectLoaded,
    ProjectUnloaded,
    SessionStarted,
    SessionAttached,
    SessionSignalled,
    SessionShared,
    SessionTerminated,
    SessionExited,
    SessionAdopted,
    SessionEnded,
    RunStarted,
    RunEnded,
    AgentState,
    ApprovalRequested,
    ApprovalAnswered,
    HookRefused,
    PushSubscribed,
    PushRevoked,
    PushSent,
    PushFailed,
    WorktreeCreated,
    WorktreeRecovered,
    WorktreeEnded,
    WorktreeRemoved,
    WorktreeRestored,
    WorktreeMerged,
    WorktreeBranchDeleted,
    WorktreeSnapshotsPruned,
    WorktreeRefused,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DaemonStarted => "daemon.started",
            EventType::DaemonStopped => "daemon.stopped",
            EventType::AuthInsecureMode => "auth.insecure_mode",
            EventType::AuthInsecureBind => "auth.insecure_bind",
            EventType::AuthLaunchTokenIssued => "auth.launch_token_issued",
            EventType::AuthLaunchTokenUsed => "auth.launch_token_used",
            EventType::AuthRejected => "auth.rejected",
            EventType::AuthSignedOut => "auth.signed_out",
            EventType::AuthRevoked => "auth.revoked",
            EventType::HttpRequest => "http.request",
            EventType::HttpReads => "http.reads",
            EventType::SandboxDisabled => "sandbox.disabled",
            EventType::CageDisabled => "cage.disabled",
            EventType::CageProtectionLifted => "cage.protection_lifted",
            EventType::CageLimitsNotEnforced => "cage.limits_not_enforced",
            EventType::CageNetworkHost => "cage.network_host",
            EventType::EgressAllowed => "egress.allowed",
            EventType::EgressDenied => "egress.denied",
            EventType::EgressFailed => "egress.failed",
            EventType::ProjectLoaded => "project.loaded",
            EventType::ProjectUnloaded => "project.unloaded",
            EventType::SessionStarted => "session.started",
            EventType::SessionAttached => "session.attached",
            EventType::SessionSignalled => "session.signalled",
            EventType::SessionShared => "session.shared",
            EventType::SessionTerminated => "session.terminated",
            EventType::SessionExited => "session.exited",
            EventType::SessionAdopted => "session.adopted",
            EventType::SessionEnded => "session.ended",
            EventType::RunStarted => "run.started",
            EventType::RunEnded => "run.ended",
            EventType::AgentState => "agent.state",
            EventType::ApprovalRequested => "approval.requested",
            EventType::ApprovalAnswered => "approval.answered",
            EventType::HookRefused => "hook.refused",
            EventType::PushSubscribed => "push.subscribed",
            EventType::PushRevoked => "push.revoked",
            EventType::PushSent => "push.sent",
            EventType::PushFailed => "push.failed",
            EventType::WorktreeCreated => "worktree.created",
            EventType::WorktreeRecovered => "worktree.recovered",
            EventType::WorktreeEnded => "worktree.ended",
            EventType::WorktreeRemoved => "worktree.removed",
            EventType::WorktreeRestored => "worktree.restored",
            EventType::WorktreeMerged => "worktree.merged",
            EventType::WorktreeBranchDeleted => "worktree.branch_deleted",
            EventType::WorktreeSnapshotsPruned => "worktree.snapshots_pruned",
            EventType::WorktreeRefused => "worktree.refused",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub kind: EventType,
    pub actor: Option<String>,
    pub project_id: Option<String>,
    pub session_id: Option<String>,
    pub data: serde_json::Value,
}

impl AuditEvent {
    pub fn new(kind: EventType, actor: Option<&str>, data: serde_json::Value) -> Self {
        AuditEvent {
            kind,
            actor: actor.map(str::to_owned),
            project_id: None,
            session_id: None,
            data,
        }
    }

    pub fn project(mut self, id: &str) -> Self {
        self.project_id = Some(id.to_owned());
        self
    }

    pub fn session(mut self, id: &str) -> Self {
        self.session_id = Some(id.to_owned());
        self
    }
}

/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE: u32 = 100;

/// Which rows a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditScope {
    All,
    /// Rows this actor caused, and rows about these sessions.
    Own {
        actor: String,
        sessions: Vec<String>,
    },
}

pub(crate) fn query(
    conn: &Connection,
    q: &AuditParams,
    scope: &AuditScope,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut sql = String::from(
        "SELECT id, ts, type, actor, project_id, session_id, data FROM audit_events WHERE 1 = 1",
    );
    let mut args: Vec<String> = Vec::new();
    if let Some(before) = q.before {
        sql.push_str(" AND id < ?");
        args.push(before.to_string());
    }
    if let Some(kind) = &q.kind {
        if let Some(prefix) = kind.strip_suffix('.') {
            // Prefix match without LIKE so `_` and `%` in input mean nothing special.
            sql.push_str(" AND substr(type, 1, ?) = ?");
            args.push((prefix.len() + 1).to_string());
            args.push(format!("{prefix}."));
        } else {
            sql.push_str(" AND type = ?");
            args.push(kind.clone());
        }
    }
    for (col, val) in [
        ("actor", &q.actor),
        ("project_id", &q.project_id),
        ("session_id", &q.session_id),
    ] {
        if let Some(v) = val {
            sql.push_str(&format!(" AND {col} = ?"));
            args.push(v.clone());
        }
    }
    if let AuditScope::Own { actor, sessions } = scope {
        sql.push_str(" AND (actor = ?");
        args.push(actor.clone());
        for s in sessions {
            sql.push_str(" OR session_id = ?");
            args.push(s.clone());
        }
        sql.push(')');
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, 1000).to_string());
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            let data: String = r.get(6)?;
            let ts: String = r.get(1)?;
            let ts = Timestamp::parse(&ts).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
            })?;
            Ok(AuditRow {
                id: r.get(0)?,
                ts,
                kind: r.get(2)?,
                actor: r.get(3)?,
                project_id: r.get(4)?,
                session_id: r.get(5)?,
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

enum Msg {
    Event(AuditEvent, String),
    Flush(oneshot::Sender<()>),
}

/// Appends audit events in batches on a dedicated thread so request handlers never wait on
/// disk. The channel is bounded: under overload callers wait rather than lose audit rows.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Msg>,
}

impl AuditWriter {
    pub(crate) fn start(conn: Connection) -> Result<AuditWriter, StoreError> {
        let (tx, rx) = mpsc::channel(8192);
        // Detached: the thread ends once every sender is dropped; shutdown calls `flush` first.
        std::thread::Builder::new()
            .name("kaged-audit".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok(AuditWriter { tx })
    }

    pub async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Event(event, Timestamp::now().to_string()))
            .await
            .map_err(|_| StoreError::WriterGone)
    }

    /// Resolves once everything recorded before it is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(256);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if let Err(e) = write_batch(&conn, &batch) {
            tracing::error!(error = %e, "audit batch failed to commit");
        }
        for msg in batch.drain(..) {
            if let Msg::Flush(done) = msg {
                let _ = done.send(());
            }
        }
    }
}

fn write_batch(conn: &Connection, batch: &[Msg]) -> Result<(), rusqlite::Error> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit_events (ts, type, actor, project_id, session_id, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for msg in batch {
            if let Msg::Event(ev, ts) = msg {
                stmt.execute(rusqlite::params![
                    ts,
                    ev.kind.as_str(),
                    ev.actor,
                    ev.project_id,
                    ev.session_id,
                    ev.data.to_string(),
                ])?;
            }
        }
    }
    tx.commit()
}
