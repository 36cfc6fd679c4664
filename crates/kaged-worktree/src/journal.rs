//! The SQLite side: the worktree registry and the journal of operations in flight.
//!
//! The tables live in the daemon's database next to the store's, with their own version table
//! so the store's `user_version` stays the store's.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_worktrees.sql"),
    include_str!("../migrations/0002_owners.sql"),
];

/// Creates or upgrades this crate's tables on the caller's connection.
pub fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS worktree_schema (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM worktree_schema",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(Error::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM worktree_schema", [])?;
        tx.execute(
            "INSERT INTO worktree_schema (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Records who owns `run` (replacing an earlier owner).
pub(crate) fn set_owner(conn: &Connection, run: &str, owner: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO worktree_owners (run, owner) VALUES (?1, ?2)
         ON CONFLICT(run) DO UPDATE SET owner = excluded.owner",
        [run, owner],
    )?;
    Ok(())
}

/// Every recorded owner, as `(run, owner)`.
pub(crate) fn owners(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT run, owner FROM worktree_owners ORDER BY run")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Removed,
}

/// A worktree as kaged remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub run: String,
    /// The main checkout's top level.
    pub repo: PathBuf,
    pub path: PathBuf,
    /// The gitdir the worktree's `.git` file points to (`<repo>/.git/worktrees/<name>`).
    pub admin_dir: PathBuf,
    /// The repository's shared gitdir (`<repo>/.git`): objects, refs, config, hooks.
    pub common_dir: PathBuf,
    pub branch: String,
    pub base: String,
    /// `base` when the worktree was created.
    pub base_oid: String,
    pub state: State,
    /// `refs/kaged/snapshots/<run>` once a snapshot was taken.
    pub snapshot: Option<String>,
    pub snapshot_oid: Option<String>,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub removed_at: Option<i64>,
}

impl Record {
    pub(crate) fn git(&self) -> crate::git::Git {
        crate::git::Git::worktree(&self.path, &self.admin_dir)
    }

    /// What a cage that gets this worktree read-write must still see read-only: the shared
    /// config and hooks, the worktree's own config, and its `.git` file. Paths that do not
    /// exist yet (`config.worktree`) must be bound so they cannot be created either.
    pub fn read_only_paths(&self) -> Vec<PathBuf> {
        vec![
            self.common_dir.join("config"),
            self.common_dir.join("hooks"),
            self.admin_dir.join("config.worktree"),
            self.path.join(".git"),
        ]
    }
}

const RECORD_COLUMNS: &str = "run, repo, path, admin_dir, common_dir, branch, base, base_oid, state, snapshot, snapshot_oid, created_at, ended_at, removed_at";

fn record(r: &Row<'_>) -> rusqlite::Result<Record> {
    let state: String = r.get(8)?;
    Ok(Record {
        run: r.get(0)?,
        repo: PathBuf::from(r.get::<_, String>(1)?),
        path: PathBuf::from(r.get::<_, String>(2)?),
        admin_dir: PathBuf::from(r.get::<_, String>(3)?),
        common_dir: PathBuf::from(r.get::<_, String>(4)?),
        branch: r.get(5)?,
        base: r.get(6)?,
        base_oid: r.get(7)?,
        state: if state == "active" {
            State::Active
        } else {
            State::Removed
        },
        snapshot: r.get(9)?,
        snapshot_oid: r.get(10)?,
        created_at: r.get(11)?,
        ended_at: r.get(12)?,
        removed_at: r.get(13)?,
    })
}

pub(crate) fn get(conn: &Connection, run: &str) -> Result<Option<Record>> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM worktrees WHERE run = ?1");
    Ok(conn.query_row(&sql, [run], record).optional()?)
}

pub(crate) fn all(conn: &Connection) -> Result<Vec<Record>> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM worktrees ORDER BY created_at, run");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], record)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(crate) fn insert(conn: &Connection, r: &Record) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO worktrees ({RECORD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ),
        params![
            r.run,
            text(&r.repo)?,
            text(&r.path)?,
            text(&r.admin_dir)?,
            text(&r.common_dir)?,
            r.branch,
            r.base,
            r.base_oid,
            match r.state {
                State::Active => "active",
                State::Removed => "removed",
            },
            r.snapshot,
            r.snapshot_oid,
            r.created_at,
            r.ended_at,
            r.removed_at
        ],
    )?;
    Ok(())
}

pub(crate) fn set_snapshot(conn: &Connection, run: &str, snap: Option<(&str, &str)>) -> Result<()> {
    conn.execute(
        "UPDATE worktrees SET snapshot = ?2, snapshot_oid = ?3 WHERE run = ?1",
        params![run, snap.map(|s| s.0), snap.map(|s| s.1)],
    )?;
    Ok(())
}

pub(crate) fn mark_removed(conn: &Connection, run: &str, at: i64) -> Result<()> {
    conn.execute(
        "UPDATE worktrees SET state = 'removed', removed_at = ?2 WHERE run = ?1",
        params![run, at],
    )?;
    Ok(())
}

pub(crate) fn mark_ended(conn: &Connection, run: &str, at: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE worktrees SET ended_at = ?2 WHERE run = ?1 AND (ended_at IS NULL OR ended_at < ?2)",
        params![run, at],
    )? > 0)
}

/// Paths are stored as text; the entry points refuse paths that are not UTF-8.
pub(crate) fn text(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::UnsupportedPath {
        path: p.to_owned(),
        why: "is not valid UTF-8, which the worktree registry cannot store; rename it",
    })
}

/// What an operation set out to do, written before its first side effect so recovery never
/// has to guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Plan {
    Create(crate::create::CreatePlan),
    Remove(crate::remove::RemovePlan),
    Merge(crate::merge::MergePlan),
}

impl Plan {
    fn kind(&self) -> &'static str {
        match self {
            Plan::Create(_) => "create",
            Plan::Remove(_) => "remove",
            Plan::Merge(_) => "merge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub id: i64,
    pub run: String,
    pub step: String,
    pub plan: Plan,
}

pub(crate) fn begin(conn: &Connection, run: &str, plan: &Plan, now: i64) -> Result<i64> {
    let json = serde_json::to_string(plan).map_err(|e| Error::Journal {
        id: 0,
        detail: e.to_string(),
    })?;
    conn.execute(
        "INSERT INTO worktree_ops (kind, run, step, plan, started_at) VALUES (?1, ?2, 'planned', ?3, ?4)",
        params![plan.kind(), run, json, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Records that a step is done (or, for steps that are not idempotent, about to start).
pub(crate) fn advance(conn: &Connection, id: i64, step: &str, plan: &Plan) -> Result<()> {
    let json = serde_json::to_string(plan).map_err(|e| Error::Journal {
        id,
        detail: e.to_string(),
    })?;
    conn.execute(
        "UPDATE worktree_ops SET step = ?2, plan = ?3 WHERE id = ?1",
        params![id, step, json],
    )?;
    Ok(())
}

pub(crate) fn finish(conn: &Connection, id: i64) -> Result<()> {
    conn.execute("DELETE FROM worktree_ops WHERE id = ?1", [id])?;
    Ok(())
}

pub(crate) fn pending(conn: &Connection) -> Result<Vec<Op>> {
    let mut stmt = conn.prepare("SELECT id, run, step, plan FROM worktree_ops ORDER BY id")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, run, step, json)| {
            let plan = serde_json::from_str(&json).map_err(|e| Error::Journal {
                id,
                detail: e.to_string(),
            })?;
            Ok(Op {
                id,
                run,
                step,
                plan,
            })
        })
        .collect()
}

/// Whether an operation on this run is in flight (recovery has not run, or could not finish it).
pub(crate) fn busy(conn: &Connection, run: &str) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM worktree_ops WHERE run = ?1", [run], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

pub(crate) fn op_step(conn: &Connection, id: i64) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT step FROM worktree_ops WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn migrate_is_idempotent_and_leaves_the_stores_user_version_alone() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        let user_version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(user_version, 7);
        assert_eq!(all(&conn).unwrap(), vec![]);
        assert_eq!(pending(&conn).unwrap(), vec![]);
    }

    #[test]
    fn an_owner_is_recorded_and_replaced() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        set_owner(&conn, "r1", "alice").unwrap();
        set_owner(&conn, "r2", "bob").unwrap();
        set_owner(&conn, "r1", "carol").unwrap();
        assert_eq!(
            owners(&conn).unwrap(),
            vec![
                ("r1".to_owned(), "carol".to_owned()),
                ("r2".to_owned(), "bob".to_owned())
            ]
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute("UPDATE worktree_schema SET version = 99", [])
            .unwrap();
        assert!(matches!(
            migrate(&conn),
            Err(Error::SchemaTooNew {
                found: 99,
                known: 2
            })
        ));
    }
}
