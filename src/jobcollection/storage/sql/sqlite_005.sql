-- jobcollection schema version 5 (SQLite): the worker registry.
-- The worker whose claim made a job running (NULL: claimed without one, e.g. by get_work()
-- called directly). Only read together with status = 'running'; a job that stops running
-- keeps its last value, which nothing reads.
ALTER TABLE jobs ADD COLUMN worker_id TEXT;
-- One row per worker of a collection: a local queue or a remote DDP connection. Its host
-- renews last_seen every third of lost_after; once `expires` (last_seen + lost_after) passes,
-- any process whose job server runs fails the worker's running jobs ("Worker lost").
CREATE TABLE IF NOT EXISTS workers (
    collection  TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,  -- 'local' or 'remote'
    status      TEXT    NOT NULL,  -- 'active', 'disconnected' or 'lost'
    types       TEXT    NOT NULL,  -- JSON array of job types
    started     INTEGER NOT NULL,  -- ms since the epoch
    last_seen   INTEGER NOT NULL,
    lost_after  INTEGER NOT NULL,  -- ms
    expires     INTEGER NOT NULL,  -- last_seen + lost_after
    host        TEXT,
    pid         INTEGER,
    concurrency INTEGER,
    address     TEXT,              -- a remote worker's peer address
    user_id     TEXT,
    username    TEXT,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS workers_expires ON workers (collection, expires);
