//! Each operator's own UI settings, kept by the daemon so that every device they sign in from
//! gets them.

use kaged_api::Timestamp;
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

impl Store {
    /// `user`'s key bar as stored (a JSON list), or `None` when they never chose one.
    pub async fn keybar(&self, user: &str) -> Result<Option<String>, StoreError> {
        let user = user.to_owned();
        self.with_conn(move |c| {
            Ok(c.query_row(
                "SELECT keybar FROM operator_prefs WHERE user_id = ?1",
                [&user],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
        })
        .await
    }

    /// Stores `user`'s key bar (a JSON list).
    pub async fn set_keybar(&self, user: &str, keys: String) -> Result<(), StoreError> {
        let user = user.to_owned();
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO operator_prefs (user_id, keybar, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO UPDATE SET keybar = excluded.keybar,
                   updated_at = excluded.updated_at",
                params![user, keys, Timestamp::now().to_string()],
            )?;
            Ok(())
        })
        .await
    }
}
