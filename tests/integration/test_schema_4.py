"""Schema version 4: ready jobs are indexed once (by `jobs_ready`), and a batch insert writes one
change-feed row per (type, status)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _schema import drop_worker_registry

from jobcollection import Job, JobCollection
from jobcollection.storage.sqlite import SCHEMA_VERSION, SqliteStorage

pytestmark = pytest.mark.sqlite_only(
    reason="SQLite schema version 4: its indexes (query plans), its migration, raw rows"
)


def _plan(conn: sqlite3.Connection, sql: str, args: list[object]) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def _filled(path: Path) -> JobCollection:
    jc = JobCollection("q", str(path))
    jc.save_jobs([Job(jc, "a" if n % 2 else "b", {"n": n}) for n in range(20)])
    for n in range(5):
        Job(jc, "a", {"n": n}).delay(60_000).save()
    Job(jc, "b", {}).save()
    jc.pause_jobs([job.id for job in jc.find({"status": "waiting"})[:2] if job.id])
    return jc


@pytest.mark.parametrize(
    "statuses",
    [["ready"], ["waiting"], ["waiting", "paused"], ["ready", "waiting", "paused"], []],
)
def test_find_by_status_uses_an_index_and_keeps_insertion_order(
    tmp_path: Path, statuses: list[str]
) -> None:
    with _filled(tmp_path / "find.db") as jc:
        storage = jc.manager.storage
        assert isinstance(storage, SqliteStorage)
        statements: list[str] = []
        storage._read_conn.set_trace_callback(statements.append)  # (reads: their connection)
        found = jc.manager.find({"status": {"$in": statuses}})
        storage._read_conn.set_trace_callback(None)
        every = jc.manager.find()
        expected = [doc for doc in every if doc["status"] in statuses]
        assert [doc["_id"] for doc in found] == [doc["_id"] for doc in expected]
        selects = [sql for sql in statements if sql.startswith("SELECT")]
        assert bool(selects) == bool(statuses)  # nothing can match no status: no read at all
        for sql in selects:
            plan = _plan(storage._conn, sql, [])  # the traced text has its values inlined
            assert "SCAN jobs" not in plan, plan
        limited = jc.manager.find({"status": {"$in": statuses}}, limit=3)
        assert [doc["_id"] for doc in limited] == [doc["_id"] for doc in expected[:3]]


def test_stats_count_both_index_parts(tmp_path: Path) -> None:
    with _filled(tmp_path / "stats.db") as jc:
        counts = {(status, job_type): n for status, job_type, n in jc.manager.stats()}
        assert counts == {
            ("ready", "a"): 10,
            ("ready", "b"): 11,
            ("waiting", "a"): 3,
            ("paused", "a"): 2,
        }
        storage = jc.manager.storage
        assert isinstance(storage, SqliteStorage)
        statements: list[str] = []
        storage._read_conn.set_trace_callback(statements.append)  # (reads: their connection)
        assert jc.manager.stats() == sorted(jc.manager.stats())
        storage._read_conn.set_trace_callback(None)
        plans = [_plan(storage._conn, sql, []) for sql in statements if sql.startswith("SELECT")]
        assert plans
        assert not [plan for plan in plans if "SCAN jobs" in plan]
        assert any("COVERING INDEX jobs_ready" in plan for plan in plans)
        assert any("COVERING INDEX jobs_status" in plan for plan in plans)


def test_a_batch_writes_one_feed_row_per_type_and_status(tmp_path: Path) -> None:
    with JobCollection("q", str(tmp_path / "feed.db")) as jc:
        jobs = [Job(jc, "a" if n % 3 else "b", {"n": n}) for n in range(9)]
        jobs.append(Job(jc, "a", {}).delay(60_000))
        ids = jc.save_jobs(jobs)
        storage = jc.manager.storage
        assert isinstance(storage, SqliteStorage)
        rows = storage._conn.execute("SELECT job_id, op, type, status FROM changes").fetchall()
        assert sorted((op, t, s, len(i.split(","))) for i, op, t, s in rows) == [
            ("insert", "a", "waiting", 1),
            ("inserts", "a", "ready", 6),
            ("inserts", "b", "ready", 3),
        ]
        changes = storage.changes_since(0)
        assert sorted(c.job_id for c in changes) == sorted(i for i in ids if i)
        ready_a = {c.seq for c in changes if c.type == "a" and c.status == "ready"}
        assert len(ready_a) == 1  # the changes of one row share its sequence number


def test_a_version_3_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with JobCollection("q", str(path)) as jc:
        job_id = Job(jc, "t", {}).save()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP INDEX jobs_status")
    conn.execute("CREATE INDEX jobs_status ON jobs (collection, status, type)")
    drop_worker_registry(conn)
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    with JobCollection("q", str(path)) as jc:
        storage = jc.manager.storage
        assert isinstance(storage, SqliteStorage)
        (index_sql,) = storage._conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'jobs_status'"
        ).fetchone()
        assert "WHERE status != 'ready'" in index_sql
        assert storage._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [c.job_id for c in storage.changes_since(0)] == [job_id]  # an old one-job row
        assert [job.id for job in jc.find({"status": "ready"})] == [job_id]


def test_ids_with_commas_get_one_feed_row_each(tmp_path: Path) -> None:
    """Only an injected id factory makes such ids; their changes must still name each job."""
    from itertools import count

    from jobcollection.api._job_core import new_document
    from jobcollection.engine.manager import JobManager

    storage = SqliteStorage(str(tmp_path / "commas.db"))
    numbers = count()
    manager = JobManager(storage, "q", id_factory=lambda: f"a,{next(numbers)}")
    try:
        docs = [new_document("t", {}, manager.clock.now_ms()) for _ in range(3)]
        ids = manager.save_many(docs)
        assert [c.job_id for c in storage.changes_since(0)] == ids == ["a,0", "a,1", "a,2"]
        assert {c.op for c in storage.changes_since(0)} == {"insert"}
    finally:
        manager.close()
        storage.close()
