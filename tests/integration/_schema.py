"""Turning a database back into an older schema version, for the migration tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jobcollection import Job, JobCollection


def drop_worker_registry(conn: sqlite3.Connection) -> None:
    """Undo schema version 5 (the worker registry): what a version 4 database lacks."""
    conn.execute("DROP TABLE workers")
    conn.execute("ALTER TABLE jobs DROP COLUMN worker_id")


def make_version_1(path: Path) -> str:
    """A database as schema version 1 left it: no `jobs.log`, every entry in job_log."""
    with JobCollection("m", str(path)) as jc:
        job_id = Job(jc, "t", {"n": 1}).save()
        assert job_id is not None
        jc.start_job_server()
        (work,) = jc.get_work("t")
        assert work.log("during the run")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        (first,) = conn.execute("SELECT log FROM jobs WHERE id = ?", (job_id,)).fetchone()
        conn.execute("INSERT INTO job_log (n, job_id, entries) VALUES (0, ?, ?)", (job_id, first))
        conn.execute("ALTER TABLE jobs DROP COLUMN log")
        drop_worker_registry(conn)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return job_id
