-- jobcollection schema version 6 (SQLite): reads that stay cheap in large collections.
-- The ready index also carries the status it is partial on, so counting or listing ready jobs
-- reads the index alone, not each job's row (the claim uses it exactly as before).
DROP INDEX IF EXISTS jobs_ready;
CREATE INDEX jobs_ready ON jobs (collection, type, priority, retry_until, after, seq, status)
    WHERE status = 'ready';
