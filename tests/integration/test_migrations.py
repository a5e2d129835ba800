"""Opening a database written by an older schema version migrates it in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _schema import make_version_1

from jobcollection import Job, JobCollection
from jobcollection.storage.sqlite import SCHEMA_VERSION

pytestmark = pytest.mark.sqlite_only(
    reason="migrates SQLite databases of schema version 1 (sqlite_00N.sql)"
)


def test_version_1_database_is_migrated_and_keeps_its_logs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    job_id = make_version_1(path)
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
