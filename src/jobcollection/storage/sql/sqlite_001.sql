-- jobcollection schema version 1 (SQLite)
CREATE TABLE jobs (
    seq            INTEGER PRIMARY KEY,  -- insertion order, the last claim tie-break
    id             TEXT    NOT NULL UNIQUE,
    collection     TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    run_id         TEXT,
    priority       INTEGER NOT NULL,
    retry_until    INTEGER NOT NULL,
    after          INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    created        INTEGER NOT NULL,
    expires_after  INTEGER,
    work_timeout   INTEGER,
    retries        INTEGER NOT NULL,
    retried        INTEGER NOT NULL,
    repeat_retries INTEGER,
    retry_wait     INTEGER NOT NULL,
    retry_backoff  TEXT    NOT NULL,
    repeats        INTEGER NOT NULL,
    repeated       INTEGER NOT NULL,
    repeat_until   INTEGER NOT NULL,
    repeat_wait    TEXT    NOT NULL,
    progress       TEXT    NOT NULL,
    depends        TEXT    NOT NULL,
    resolved       TEXT    NOT NULL,
    data           TEXT    NOT NULL,
    result         TEXT,
    failures       TEXT,
    private        TEXT
);
-- Claim order: only ready jobs are indexed, so a backlog of waiting jobs costs a claim nothing.
CREATE INDEX jobs_ready ON jobs (collection, type, priority, retry_until, after, seq)
    WHERE status = 'ready';
CREATE INDEX jobs_due ON jobs (collection, after) WHERE status = 'waiting';
CREATE INDEX jobs_expiring ON jobs (collection, expires_after)
    WHERE status = 'running' AND expires_after IS NOT NULL;
CREATE INDEX jobs_status ON jobs (collection, status, type);

-- Unresolved dependencies, one row per (dependent, antecedent): finds dependents by index.
CREATE TABLE job_deps (
    antecedent TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    PRIMARY KEY (antecedent, job_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_job ON job_deps (job_id);

-- Log entries live apart from the job row, so appending one never rewrites the document.
-- Each row holds the entries one write appended (a JSON array, usually of one entry).
CREATE TABLE job_log (
    n       INTEGER PRIMARY KEY,
    job_id  TEXT    NOT NULL,
    entries TEXT    NOT NULL
);
CREATE INDEX job_log_job ON job_log (job_id, n);

-- The change feed: one row per job written, read by live queries and by other processes.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY,  -- never reused: pruning deletes only the oldest rows
    collection TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    op         TEXT NOT NULL,
    type       TEXT NOT NULL,
    status     TEXT,
    fields     TEXT NOT NULL
);
