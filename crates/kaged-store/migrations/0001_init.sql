-- Portable SQL only (design §8): a Postgres backend must be able to run the same shapes.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    actor      TEXT,
    project_id TEXT,
    session_id TEXT,
    data       TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_type ON audit_events (type, id);
CREATE INDEX audit_events_actor ON audit_events (actor, id);
CREATE INDEX audit_events_session ON audit_events (session_id, id);

-- The audit log is append-only: not even kaged itself may rewrite history.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

CREATE TABLE projects (
    id        TEXT PRIMARY KEY,
    root      TEXT NOT NULL UNIQUE,
    name      TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    loaded_by TEXT NOT NULL
);
