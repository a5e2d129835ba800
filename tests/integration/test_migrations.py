"""Opening a database written by an older schema version migrates it in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _schema import drop_worker_registry

from jobcollection import Job, JobCollection
from jobcollection.storage.sqlite import SCHEMA_VERSION

pytestmark = pytest.mark.sqlite_only(
    reason="migrates SQLite databases of schema version 1 (sqlite_00N.sql)"
)


def _make_version_1(path: Path) -> str:
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


def test_version_1_database_is_migrated_and_keeps_its_logs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    job_id = _make_version_1(path)
    with JobCollection("m", str(path)) as jc:
        job = jc.get_job(job_id, get_log=True)
        assert job is not None
        messages = [entry["message"] for entry in job.doc["log"]]
        assert messages == [
            "Constructed",
            "Job Submitted",
            "Promoted to ready",
            "Job Running",
            "during the run",
        ]
        new_id = Job(jc, "t", {}).save()  # new jobs use the new column
        assert new_id is not None
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT log FROM jobs WHERE id = ?", (new_id,)).fetchone()[0]
    finally:
        conn.close()
