-- Portable SQL only (design §8).

-- Who owns a run that no session made (a restore): the caller's user id, so the daemon can
-- apply the same ownership rules to it as to runs its sessions made.
CREATE TABLE worktree_owners (
    run   TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);
