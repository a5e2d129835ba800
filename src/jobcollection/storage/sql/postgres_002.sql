-- jobcollection schema version 2 (PostgreSQL): `has_dependents` marks a job that a dependent
-- was ever saved against. The writer that stores a dependency sets it on the antecedent, in
-- the same transaction (so a concurrent completion's UPDATE, which waits for that row, sees
-- it); the worker loop's one-statement completion leaves such jobs (and jobs that repeat) to
-- the full completion, which resolves their dependents. A stale `true` only costs that path.
-- (No backfill: that statement also checks job_deps for dependencies committed before it.)
ALTER TABLE jobs ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
