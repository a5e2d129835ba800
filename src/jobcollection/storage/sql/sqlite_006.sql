-- jobcollection schema version 6 (SQLite): reads that stay cheap in large collections.
-- Due waiting jobs are looked up by the scheduler after every write that leaves a job waiting
-- and by the periodic sweep: its index now holds only the jobs that can become due, waiting
-- jobs without open dependencies, so a crowd of jobs waiting for others costs nothing there
-- (before, each lookup read every one of them). Forced promotions of all waiting jobs, rare,
-- use jobs_status.
DROP INDEX IF EXISTS jobs_due;
CREATE INDEX jobs_due ON jobs (collection, after) WHERE status = 'waiting' AND depends = '[]';
-- The ready index also carries the status it is partial on, so counting or listing ready jobs
-- reads the index alone, not each job's row (the claim uses it exactly as before).
DROP INDEX IF EXISTS jobs_ready;
CREATE INDEX jobs_ready ON jobs (collection, type, priority, retry_until, after, seq, status)
    WHERE status = 'ready';
