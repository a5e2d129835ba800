-- jobcollection schema version 2 (SQLite): the log entries written together with a job's
-- insert live in its row (one statement less per save); later entries still go to job_log.
ALTER TABLE jobs ADD COLUMN log TEXT;
