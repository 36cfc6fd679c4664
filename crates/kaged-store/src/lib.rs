//! `store` owns kaged's durable state: one SQLite file (WAL) in the state dir with migrations
//! embedded in the binary (design §8), the project registry, and the append-only audit log.
//! It never decides what is audited or who may read it; `http` does.

pub mod audit;
mod migrate;
mod prefs;
mod push;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;

pub use audit::{AuditEvent, AuditScope, AuditWriter, DEFAULT_PAGE, EventType};
use kaged_api::{AuditParams, AuditRow, Timestamp};
pub use push::PushRow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open database {path}: {source}; check the state dir's permissions or move a corrupt file away"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this kaged knows ({known}); upgrade kaged"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the audit writer has stopped; the daemon is shutting down")]
    WriterGone,
    #[error("database task failed: {0}")]
    Join(String),
}

/// A loaded project as the registry remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectRow {
    pub id: String,
    pub root: String,
    pub name: String,
    pub loaded_at: Timestamp,
    pub loaded_by: String,
}

/// Shared handle; cheap to clone. Reads and registry writes share one connection behind a
/// mutex (they are rare); audit appends go through the [`AuditWriter`]'s own connection.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = connect(path)?;
        migrate::run(&conn, path)?;
        Ok(Store {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Starts the batching audit writer on its own thread with its own connection.
    pub fn audit_writer(&self) -> Result<AuditWriter, StoreError> {
        AuditWriter::start(connect(&self.path)?)
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    pub async fn audit_query(
        &self,
        q: AuditParams,
        scope: AuditScope,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.with_conn(move |c| audit::query(c, &q, &scope)).await
    }

    pub async fn upsert_project(&self, row: ProjectRow) -> Result<(), StoreError> {
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO projects (id, root, name, loaded_at, loaded_by) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET root = excluded.root, name = excluded.name,
                   loaded_at = excluded.loaded_at, loaded_by = excluded.loaded_by",
                params![
                    row.id,
                    row.root,
                    row.name,
                    row.loaded_at.to_string(),
                    row.loaded_by
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn remove_project(&self, id: String) -> Result<bool, StoreError> {
        self.with_conn(move |c| Ok(c.execute("DELETE FROM projects WHERE id = ?1", [id])? > 0))
            .await
    }

    pub async fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT id, root, name, loaded_at, loaded_by FROM projects ORDER BY name, id",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    let loaded_at: String = r.get(3)?;
                    // A row from before timestamps were normalised still loads.
                    let loaded_at =
                        Timestamp::parse(&loaded_at).unwrap_or_else(|_| Timestamp::now());
                    Ok(ProjectRow {
                        id: r.get(0)?,
                        root: r.get(1)?,
                        name: r.get(2)?,
                        loaded_at,
                        loaded_by: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
