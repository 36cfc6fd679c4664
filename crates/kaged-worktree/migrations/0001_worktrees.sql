-- Portable SQL only (design §8). Times are Unix seconds.

-- One row per worktree kaged created, kept after removal so a snapshot stays findable.
CREATE TABLE worktrees (
    run          TEXT PRIMARY KEY,
    repo         TEXT NOT NULL,
    path         TEXT NOT NULL,
    admin_dir    TEXT NOT NULL,
    common_dir   TEXT NOT NULL,
    branch       TEXT NOT NULL,
    base         TEXT NOT NULL,
    base_oid     TEXT NOT NULL,
    state        TEXT NOT NULL,
    snapshot     TEXT,
    snapshot_oid TEXT,
    created_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    removed_at   INTEGER
);

-- Operations in flight. A row lives from the first side effect until the result is recorded
-- in `worktrees` in the same transaction; whatever is here at start-up is recovered.
CREATE TABLE worktree_ops (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    run        TEXT NOT NULL,
    step       TEXT NOT NULL,
    plan       TEXT NOT NULL,
    started_at INTEGER NOT NULL
);
