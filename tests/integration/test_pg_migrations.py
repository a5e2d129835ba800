"""PostgreSQL schema upgrades: a database made by an older version is brought up to date
(`db upgrade`, or by the first process that opens it) and keeps its jobs."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from jobcollection import Job, JobCollection
from jobcollection.cli.main import main
from jobcollection.storage import migrations
from jobcollection.storage.postgres import storage as pg

pytestmark = pytest.mark.postgres_only(reason="PostgreSQL's own migrations")


def make_version_1(url: str) -> None:
    """The schema as version 1 left it, with a job and a dependency in it."""
    (first, *_) = migrations.migrations("postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(first.script.encode())
        conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")


def columns(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'jobs' AND table_schema = current_schema()"
        ).fetchall()
    return {name for (name,) in rows}


def test_the_code_writes_the_newest_postgres_schema() -> None:
    assert migrations.latest("postgres") == pg.SCHEMA_VERSION >= 2


def test_dry_run_lists_the_upgrade_and_changes_nothing(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_version_1(db)
    assert main(["db", "upgrade", "--dry-run", "--db", db]) == 0
    out = capsys.readouterr().out
    assert f"schema version 1 -> {pg.SCHEMA_VERSION}" in out
    assert "has_dependents" in out
    assert pg.schema_version(db) == 1
    assert "has_dependents" not in columns(db)


def test_opening_an_old_database_upgrades_it_and_its_jobs_work_on(db: str) -> None:
    make_version_1(db)
    jc = JobCollection("old", db)
    try:
        assert pg.schema_version(db) == pg.SCHEMA_VERSION
        assert "has_dependents" in columns(db)
        first = Job(jc, "t", {"n": 1})
        first.save()
        then = Job(jc, "t", {"n": 2}).depends([first])
        then.save()
        repeating = Job(jc, "t", {"n": 3}).repeat(repeats=1, wait=0)
        repeating.save()
        done = threading.Semaphore(0)

        def work(jobs: list[Any]) -> None:
            done.release(len(jobs))

        jc.start_job_server()
        queue = jc.process_jobs("t", work, concurrency=2, payload=2)
        try:
            assert all(done.acquire(timeout=10) for _ in range(4))  # the repeat runs twice
        finally:
            queue.shutdown("soft", quiet=True)
        statuses = {jc.get_job(j.id).status for j in (first, then, repeating)}
        assert statuses == {"completed"}
    finally:
        jc.close()
