-- Each operator's own settings for the UI, the same on every device they sign in from.
-- `keybar` is the JSON list of the key bar's keys.
CREATE TABLE operator_prefs (
    user_id    TEXT PRIMARY KEY,
    keybar     TEXT,
    updated_at TEXT NOT NULL
);
