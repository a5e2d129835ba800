"""The hot-path mechanisms: completing a batch and claiming the next in one transaction, and
WAL checkpoints run in the background instead of inside a writer's commit."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobcollection import Job, JobCollection
from jobcollection.engine.events import CallEvent
from jobcollection.storage.sqlite import SqliteStorage


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("hot", db)
    collection.start_job_server()
    yield collection
    collection.close()


def test_complete_and_claim_does_both_and_announces_both(jc: JobCollection) -> None:
    jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(5)])
    seen: list[CallEvent] = []
    jc.events("call", seen.append)
    first = jc.get_work("t", max_jobs=2)
    seen.clear()
    claimed = jc.complete_and_claim(first, {"ok": True}, "t", max_jobs=2)
    announced = list(seen)
    assert len(claimed) == 2
    assert {j.id for j in claimed}.isdisjoint(j.id for j in first)
    for job in first:
        stored = jc.get_job(str(job.id))
        assert stored is not None
        assert (stored.status, stored.doc["result"]) == ("completed", {"ok": True})
    assert [e.method for e in announced] == ["jobDone", "jobDone", "getWork"]
    assert all(e.return_value is True for e in announced[:2])
    assert [d["_id"] for d in announced[2].return_value] == [j.id for j in claimed]


def test_complete_and_claim_while_stopped_completes_but_claims_nothing(jc: JobCollection) -> None:
    jc.save_jobs([Job(jc, "t", {}) for _ in range(3)])
    (job,) = jc.get_work("t")
    jc.shutdown_job_server(timeout=60000)
    assert jc.complete_and_claim([job], None, "t") == []
    stored = jc.get_job(str(job.id))
    assert stored is not None
    assert stored.status == "completed"


def test_complete_and_claim_rejects_bad_input_before_writing(jc: JobCollection) -> None:
    jc.save_jobs([Job(jc, "t", {}) for _ in range(2)])
    (job,) = jc.get_work("t")
    with pytest.raises(Exception, match="maxJobs"):
        jc.complete_and_claim([job], None, "t", max_jobs=0)
    stored = jc.get_job(str(job.id))
    assert stored is not None
    assert stored.status == "running"  # the completion was not written either


@pytest.mark.sqlite_only(reason="SQLite's WAL checkpoints")
def test_checkpoints_happen_in_the_background(db: str) -> None:
    """Commits do not checkpoint small WALs any more; the watcher thread moves the pages
    into the database file shortly after writes."""
    path = db
    jc = JobCollection("hot", str(path))
    try:
        before = os.path.getsize(path)
        jc.save_jobs([Job(jc, "t", {"pad": "x" * 200}) for _ in range(2000)])
        deadline = time.monotonic() + 5
        while os.path.getsize(path) < before + 400_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(path) >= before + 400_000
    finally:
        jc.close()


@pytest.mark.sqlite_only(
    reason="the SQLite adapter's change-feed pruning (its CHANGES_KEPT, PRUNE_INTERVAL_S)"
)
def test_the_change_feed_is_pruned_in_the_background(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobcollection.storage import sqlite as sqlite_storage

    monkeypatch.setattr(sqlite_storage, "CHANGES_KEPT", 10)
    monkeypatch.setattr(sqlite_storage, "PRUNE_INTERVAL_S", 0.05)
    jc = JobCollection("hot", db)
    try:
        jc.save_jobs([Job(jc, "t", {}) for _ in range(30)])  # one feed row
        for _ in range(15):
            Job(jc, "t", {}).save()
        storage = jc.manager.storage

        def rows_kept() -> set[int]:
            return {change.seq for change in storage.changes_since(0)}

        deadline = time.monotonic() + 5
        while len(rows_kept()) > 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        kept = storage.changes_since(0)
        assert len({change.seq for change in kept}) <= 10
        assert kept[-1].seq == storage.last_seq()  # the newest entries are the ones kept
        assert all(change.seq > 1 for change in kept)  # the batch's row went first
    finally:
        jc.close()


@pytest.mark.sqlite_only(reason="counts the SQL statements SQLite ran (its trace callback)")
@pytest.mark.parametrize("how", ["complete_jobs", "complete_and_claim", "queue"])
def test_a_batch_completed_with_one_result_is_one_statement(jc: JobCollection, how: str) -> None:
    """A worker's payload of ten jobs finished together costs one completing UPDATE, not ten
    (also when the worker returns nothing: every job then gets the same empty result)."""
    jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(10)])
    storage = jc.manager.storage
    assert isinstance(storage, SqliteStorage)
    statements: list[str] = []
    if how == "queue":
        storage._conn.set_trace_callback(statements.append)
        done = threading.Event()
        queue = jc.process_jobs("t", lambda jobs: done.set(), payload=10)
        assert done.wait(10)
        queue.shutdown("soft")
    else:
        jobs = jc.get_work("t", max_jobs=10)
        assert len(jobs) == 10
        storage._conn.set_trace_callback(statements.append)
        if how == "complete_jobs":
            assert jc.complete_jobs(jobs) == [True] * 10
        else:
            assert jc.complete_and_claim(jobs, None, "t", 10) == []
    storage._conn.set_trace_callback(None)
    completing = [s for s in statements if s.startswith("UPDATE jobs SET status = 'completed'")]
    assert len(completing) == 1
    assert {job.status for job in jc.find()} == {"completed"}
    assert {str(job.doc.get("result")) for job in jc.find()} == {"{}"}


@pytest.mark.postgres_only(reason="counts the statements sent to PostgreSQL")
def test_a_worker_loop_step_is_one_statement_on_postgres(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Completing a payload and claiming the next is ONE statement (its own transaction, with
    its log entries and feed rows): one round trip and one commit."""
    import psycopg

    jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(20)])
    jobs = jc.get_work("t", max_jobs=10)
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    caller = threading.get_ident()

    def counted(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == caller:  # (not the feed watcher's reads)
            sent.append(str(query)[:40])
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    claimed = jc.complete_and_claim(jobs, {"ok": 1}, "t", 10)
    monkeypatch.undo()
    assert len(sent) == 1, sent
    assert len(claimed) == 10
    assert {job.status for job in jc.find()} == {"completed", "running"}


def test_a_run_listed_twice_completes_once_and_both_say_so(jc: JobCollection) -> None:
    jc.save_jobs([Job(jc, "t", {}) for _ in range(2)])
    (job,) = jc.get_work("t")
    assert job.id is not None
    assert job.run_id is not None
    run = (job.id, job.run_id, {"ok": True})
    assert jc.manager.complete_many([run, run]) == [True, True]
    assert jc.get_job(job.id).status == "completed"  # type: ignore[union-attr]
