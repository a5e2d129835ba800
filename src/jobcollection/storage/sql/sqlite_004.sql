-- jobcollection schema version 4 (SQLite).
-- Ready jobs, the ones inserted and claimed all the time, are indexed once: by jobs_ready (its
-- WHERE status = 'ready'). The status index keeps every other status; queries on ready jobs
-- say status = 'ready', the others status != 'ready', so each finds its partial index.
DROP INDEX IF EXISTS jobs_status;
CREATE INDEX jobs_status ON jobs (collection, status, type) WHERE status != 'ready';
-- Jobs inserted by one statement share one row of the change feed per (type, status): op
-- 'inserts', job_id their ids comma-separated. A reader before version 4 would not know that
-- op, which is one more reason for the new version number.
