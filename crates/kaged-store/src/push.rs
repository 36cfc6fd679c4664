//! Web Push subscriptions, one row per browser, owned by the operator who subscribed.

use kaged_api::Timestamp;
use rusqlite::{Connection, params};

use crate::{Store, StoreError};

/// A subscription as stored: the endpoint and keys are the browser's capabilities.
#[derive(Clone, PartialEq, Eq)]
pub struct PushRow {
    pub id: String,
    pub user_id: String,
    pub endpoint: String,
    /// base64url of the browser's P-256 public key.
    pub p256dh: String,
    /// base64url of the 16-byte authentication secret.
    pub auth: String,
    pub label: Option<String>,
    pub created_at: Timestamp,
}

/// Never shows the endpoint or the keys: whoever holds them can push to the browser.
impl std::fmt::Debug for PushRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, user_id, endpoint, p256dh, auth, label, created_at";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<PushRow> {
    let created_at: String = r.get(6)?;
    Ok(PushRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        endpoint: r.get(2)?,
        p256dh: r.get(3)?,
        auth: r.get(4)?,
        label: r.get(5)?,
        created_at: Timestamp::parse(&created_at).unwrap_or_else(|_| Timestamp::now()),
    })
}

fn select(c: &Connection, user: &str) -> Result<Vec<PushRow>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM push_subscriptions WHERE user_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt
        .query_map([user], read)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

impl Store {
    /// Stores a subscription. The same endpoint subscribed again (a browser renewing its
    /// keys) replaces the old row, and moves to whoever subscribed it now.
    pub async fn upsert_push(&self, row: PushRow) -> Result<PushRow, StoreError> {
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, label, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id,
                   p256dh = excluded.p256dh, auth = excluded.auth, label = excluded.label",
                params![
                    row.id,
                    row.user_id,
                    row.endpoint,
                    row.p256dh,
                    row.auth,
                    row.label,
                    row.created_at.to_string()
                ],
            )?;
            let stored = c.query_row(
                &format!("SELECT {COLUMNS} FROM push_subscriptions WHERE endpoint = ?1"),
                [&row.endpoint],
                read,
            )?;
            Ok(stored)
        })
        .await
    }

    /// The subscriptions of one operator, oldest first.
    pub async fn push_subscriptions(&self, user: &str) -> Result<Vec<PushRow>, StoreError> {
        let user = user.to_owned();
        self.with_conn(move |c| select(c, &user)).await
    }

    /// Removes one of `user`'s subscriptions; false when they have none with that id.
    pub async fn remove_push(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        let (user, id) = (user.to_owned(), id.to_owned());
        self.with_conn(move |c| {
            Ok(c.execute(
                "DELETE FROM push_subscriptions WHERE id = ?1 AND user_id = ?2",
                params![id, user],
            )? > 0)
        })
        .await
    }

    /// Removes a subscription the push service said is gone (404 or 410).
    pub async fn remove_push_endpoint(&self, endpoint: &str) -> Result<bool, StoreError> {
        let endpoint = endpoint.to_owned();
        self.with_conn(move |c| {
            Ok(c.execute(
                "DELETE FROM push_subscriptions WHERE endpoint = ?1",
                [endpoint],
            )? > 0)
        })
        .await
    }
}
