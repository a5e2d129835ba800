"""The worker registry: queues register with a heartbeat; a lost worker's running jobs come back.

Time is a `ManualClock` here (the scheduler follows its jumps), so lapses are exact; the
SIGKILL tests in `test_worker_rescue.py` use real processes and real time.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from _schema import drop_worker_registry

from jobcollection import JobCollection, JobValidationError, ManualClock
from jobcollection.core.workers import WorkerRecord
from jobcollection.storage.sqlite import SCHEMA_VERSION

WAIT_S = 10.0
LAPSE = 5000


def wait_until(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def stays(predicate: Callable[[], object], seconds: float = 0.3) -> bool:
    """`predicate` holds all along (the scheduler had time to do what it would do)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def jc(db: str, clock: ManualClock) -> Iterator[JobCollection]:
    collection = JobCollection("queue", db, clock=clock)
    collection.start_job_server()
    yield collection
    collection.close()


def ghost(clock: ManualClock, worker_id: str = "ghost", **fields: Any) -> WorkerRecord:
    """A worker of another process (that will stop heartbeating)."""
    now = clock.now_ms()
    values: dict[str, Any] = {
        "id": worker_id,
        "kind": "local",
        "status": "active",
        "types": ("t",),
        "started": now,
        "last_seen": now,
        "lost_after": LAPSE,
        "host": "elsewhere",
        "pid": 4242,
        "concurrency": 2,
    }
    values.update(fields)
    return WorkerRecord(**values)


def put(jc: JobCollection, record: WorkerRecord) -> None:
    """Store a record as its own process would, without this process keeping it alive."""
    jc.manager.run(lambda op, _: op.tx.put_worker(record), None)


def status(jc: JobCollection, job_id: str) -> str:
    job = jc.get_job(job_id)
    assert job is not None
    return job.status


def worker(jc: JobCollection, worker_id: str) -> WorkerRecord | None:
    return next((w for w in jc.workers() if w.id == worker_id), None)


def claim(jc: JobCollection, count: int, worker_id: str | None, job_type: str = "t") -> list[str]:
    jc.save_jobs([jc.job(job_type, {"n": n}).retry(3, wait=0) for n in range(count)])
    jobs = jc.get_work(job_type, max_jobs=count, worker_id=worker_id)
    assert len(jobs) == count
    return [str(job.id) for job in jobs]


class Gate:
    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()

    def __call__(self, job: Any) -> dict[str, bool]:
        self.entered.set()
        assert self.open.wait(WAIT_S)
        return {"ok": True}


# -- registration --------------------------------------------------------------------------


def test_a_queue_registers_renews_and_unregisters(jc: JobCollection, clock: ManualClock) -> None:
    gate = Gate()
    started = clock.now_ms()
    queue = jc.process_jobs(["t", "u"], gate, concurrency=3, lost_after=LAPSE)
    [record] = jc.workers()
    assert record == WorkerRecord(
        id=queue.worker_id,
        kind="local",
        status="active",
        types=("t", "u"),
        started=started,
        last_seen=started,
        lost_after=LAPSE,
        host=socket.gethostname(),
        pid=os.getpid(),
        concurrency=3,
    )
    assert record.running == 0
    jc.job("t", {}).save()
    assert gate.entered.wait(WAIT_S)
    assert jc.workers()[0].running == 1  # its claim is recorded
    clock.advance(LAPSE // 3 + 1)
    wait_until(lambda: jc.workers()[0].last_seen == clock.now_ms(), "a heartbeat")
    gate.open.set()
    queue.shutdown("soft", quiet=True)
    assert jc.workers() == []  # a graceful stop unregisters


def test_workers_default_to_the_collections_lapse(db: str, clock: ManualClock) -> None:
    with JobCollection("queue", db, clock=clock, lost_after=7000) as jc:
        assert jc.lost_after == 7000
        queue = jc.process_jobs("t", lambda job: None)
        assert [w.lost_after for w in jc.workers()] == [7000]
        queue.shutdown(quiet=True)
    with JobCollection("queue", db, lost_after=timedelta(minutes=1)) as jc:
        assert jc.lost_after == 60_000


@pytest.mark.parametrize("bad", [0, 999, -5, 1.5, "30s", True, 86_400_001])
def test_a_bad_lapse_is_refused_naming_it(db: str, bad: object) -> None:
    with pytest.raises(JobValidationError, match=r"^lost_after: "):
        JobCollection("queue", db, lost_after=bad)  # type: ignore[arg-type]
    with JobCollection("queue", db) as jc:
        with pytest.raises(JobValidationError, match=r"^lost_after: "):
            jc.process_jobs("t", lambda job: None, lost_after=bad)
        assert jc.workers() == []  # nothing registered


def test_a_closed_collection_unregisters_its_queues(db: str) -> None:
    jc = JobCollection("queue", db)
    jc.process_jobs("t", lambda job: None)
    jc.process_jobs("u", lambda job: None)
    assert len(jc.workers()) == 2
    jc.close()
    with JobCollection("queue", db) as again:
        assert again.workers() == []


# -- rescue ----------------------------------------------------------------------------------


def test_a_lost_workers_running_jobs_fail_and_are_retried(
    jc: JobCollection, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    put(jc, ghost(clock))
    lost = claim(jc, 2, "ghost")
    put(jc, ghost(clock, "alive"))
    kept = claim(jc, 1, "alive")
    unowned = claim(jc, 1, None)  # get_work() without a worker: only workTimeout rescues it
    assert worker(jc, "ghost").running == 2  # type: ignore[union-attr]
    clock.advance(LAPSE - 1)
    assert stays(lambda: status(jc, lost[0]) == "running")
    put(jc, ghost(clock, "alive"))  # its process renews it
    with caplog.at_level(logging.WARNING, logger="jobcollection.engine._liveness"):
        clock.advance(2)
        wait_until(lambda: status(jc, lost[1]) != "running", "the rescue")
    for job_id in lost:
        job = jc.get_job(job_id, get_log=True, get_failures=True)
        assert job is not None
        assert job.status == "ready"  # retried at once (retry wait 0)
        [failure] = job.doc["failures"]
        assert failure["value"] == "Worker lost"
        assert failure["worker"] == "ghost"
        assert (
            "worker ghost (local, host elsewhere, pid 4242) was last seen 5.0 s ago"
            in (failure["message"])
        )
        [entry] = [e for e in job.doc["log"] if e["message"].startswith("Job Failed")]
        assert (entry["message"], entry["level"]) == (
            "Job Failed with Error: Worker lost.",
            "warning",
        )
        assert job.doc["log"][-1]["message"] == "Promoted to ready"
    assert [status(jc, job_id) for job_id in kept + unowned] == ["running", "running"]
    lost_record = worker(jc, "ghost")
    assert lost_record is not None
    assert (lost_record.status, lost_record.running) == ("lost", 0)
    assert "worker ghost (local, host elsewhere, pid 4242) lost" in caplog.text
    assert "2 running jobs failed" in caplog.text
    clock.advance(3600 * 1000)  # the unowned job stays running: no workTimeout, no worker
    wait_until(lambda: worker(jc, "ghost") is None, "the lost record forgotten after an hour")
    assert status(jc, unowned[0]) == "running"
    assert status(jc, kept[0]) == "ready"  # nobody renewed "alive" meanwhile


def test_a_lost_worker_that_claims_again_is_rescued_again(
    jc: JobCollection, clock: ManualClock
) -> None:
    put(jc, ghost(clock))
    first = claim(jc, 1, "ghost")
    clock.advance(LAPSE + 1)
    wait_until(lambda: status(jc, first[0]) != "running", "the rescue")
    late = claim(jc, 1, "ghost", "late")  # a worker taken for lost claims again, then dies
    clock.advance(1000)
    wait_until(lambda: status(jc, late[0]) != "running", "the second rescue")
    job = jc.get_job(late[0], get_failures=True)
    assert job is not None
    assert [f["value"] for f in job.doc["failures"]] == ["Worker lost"]


def test_a_stopped_job_server_does_not_rescue(jc: JobCollection, clock: ManualClock) -> None:
    put(jc, ghost(clock))
    lost = claim(jc, 1, "ghost")
    jc.shutdown_job_server(timeout=60 * 60 * 1000)
    clock.advance(LAPSE + 1)
    assert stays(lambda: status(jc, lost[0]) == "running")
    jc.start_job_server()
    wait_until(lambda: status(jc, lost[0]) != "running", "the rescue once started")


def test_several_processes_rescue_a_job_once(
    db: str, jc: JobCollection, clock: ManualClock
) -> None:
    others = [JobCollection("queue", db, clock=clock) for _ in range(3)]
    try:
        for other in others:
            other.start_job_server()
        put(jc, ghost(clock))
        lost = claim(jc, 5, "ghost")
        clock.advance(LAPSE + 1)
        wait_until(lambda: all(status(jc, i) != "running" for i in lost), "the rescue")
        assert stays(lambda: True)
        for job_id in lost:
            job = jc.get_job(job_id, get_failures=True)
            assert job is not None
            assert len(job.doc["failures"]) == 1  # compare-and-set: failed once
    finally:
        for other in others:
            other.close()


def test_a_living_queue_keeps_its_jobs_however_long_they_run(
    db: str, jc: JobCollection, clock: ManualClock
) -> None:
    """A slow job whose worker keeps heartbeating is never rescued, by another process
    either: here time runs ten lapses while the job runs."""
    sweeper = JobCollection("queue", db, clock=clock)
    sweeper.start_job_server()
    try:
        gate = Gate()
        queue = jc.process_jobs("slow", gate, lost_after=LAPSE)
        [job_id] = jc.save_jobs([jc.job("slow", {})])
        assert gate.entered.wait(WAIT_S)
        for _ in range(40):  # a quarter lapse at a time, each heartbeat seen before the next
            clock.advance(LAPSE // 4)
            wait_until(lambda: jc.workers()[0].expires > clock.now_ms() + LAPSE // 4, "a heartbeat")
        assert status(jc, str(job_id)) == "running"
        gate.open.set()
        wait_until(lambda: status(jc, str(job_id)) == "completed", "the job to complete")
        queue.shutdown(quiet=True)
    finally:
        sweeper.close()


def test_a_worker_taken_for_lost_registers_again(
    jc: JobCollection, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue = jc.process_jobs("t", lambda job: None, lost_after=LAPSE)
    jc.manager.run(lambda op, _: op.tx.remove_worker(queue.worker_id), None)
    with caplog.at_level(logging.WARNING, logger="jobcollection.engine._liveness"):
        clock.advance(LAPSE // 3 + 1)
        wait_until(lambda: worker(jc, queue.worker_id) is not None, "the record again")
    assert f"worker {queue.worker_id} was taken for lost" in caplog.text
    queue.shutdown(quiet=True)


def test_a_running_job_of_an_unregistered_worker_fails_at_the_sweep(
    jc: JobCollection, clock: ManualClock
) -> None:
    orphan = claim(jc, 1, "never-registered")
    jc.promote(1000)
    clock.advance(1001)
    wait_until(lambda: status(jc, orphan[0]) != "running", "the sweep")
    job = jc.get_job(orphan[0], get_failures=True)
    assert job is not None
    assert job.doc["failures"][0]["value"] == "Worker lost"
    assert "not registered" in job.doc["failures"][0]["message"]


def test_a_worker_enrolled_by_a_rolled_back_claim_is_not_taken_for_registered(
    jc: JobCollection, clock: ManualClock
) -> None:
    """A server registers a connection inside its first claim's transaction: if that
    transaction rolls back, so does the registration, and the next claim registers it."""
    from jobcollection.engine import _work
    from jobcollection.engine.workers import WorkerRef

    jc.save_jobs([jc.job("t", {}) for _ in range(2)])
    ref = WorkerRef("conn", enroll=lambda now: ghost(clock, "conn", kind="remote"))
    params = jc.manager.call("getWork", [["t"], {}], worker=ref)  # a plain call: it commits
    assert ref.enrolled
    assert len(params) == 1
    second = WorkerRef("conn2", enroll=lambda now: ghost(clock, "conn2", kind="remote"))

    def claim_then_fail(op: Any, parsed: Any) -> None:
        assert _work.get_work(op, parsed)
        raise RuntimeError("the transaction fails after the claim")

    parsed = _work.GetWorkParams(["t"])
    with pytest.raises(RuntimeError):
        jc.manager.run(claim_then_fail, parsed, second)
    assert not second.enrolled
    assert [w.id for w in jc.workers()] == ["conn"]
    jc.manager.call("getWork", [["t"], {}], worker=second)
    assert second.enrolled
    assert sorted(w.id for w in jc.workers()) == ["conn", "conn2"]


def test_a_failed_look_for_lost_workers_is_tried_again_a_second_later(
    jc: JobCollection, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    from jobcollection.errors import StorageUnavailable

    liveness = jc.manager.liveness

    def locked(now: int) -> None:
        raise StorageUnavailable("database is locked")

    original, liveness._look = liveness._look, locked  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING, logger="jobcollection.engine._liveness"):
            now = clock.now_ms() + 10_000
            assert liveness.tend(now, rescuing=True) == now + 1000
        assert "looking for lost workers failed: database is locked" in caplog.text
    finally:
        liveness._look = original  # type: ignore[method-assign]


# -- storage -----------------------------------------------------------------------------------


@pytest.mark.sqlite_only(
    reason="migrates a SQLite database of schema version 4 (PRAGMA user_version)"
)
def test_a_version_4_database_gains_the_registry(db: str) -> None:
    path = db
    with JobCollection("q", path) as jc:
        jc.start_job_server()
        jc.job("t", {}).save()
        [running] = jc.get_work("t")
    conn = sqlite3.connect(path, isolation_level=None)
    drop_worker_registry(conn)
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    with JobCollection("q", path) as jc:
        assert jc.workers() == []
        job = jc.get_job(str(running.id))
        assert job is not None
        assert job.status == "running"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5
        assert conn.execute("SELECT worker_id FROM jobs").fetchall() == [(None,)]
    finally:
        conn.close()


@pytest.mark.sqlite_only(reason="SQLite's query plan (EXPLAIN QUERY PLAN)")
def test_the_rescue_reads_running_jobs_through_the_status_index(jc: JobCollection) -> None:
    """No index was added for the rescue: it walks the running jobs through `jobs_status`."""
    conn = jc.manager.storage._conn  # type: ignore[attr-defined]
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE collection = ? AND status = 'running' "
        "AND status != 'ready' AND worker_id IN (?)",
        ("queue", "w"),
    ).fetchall()
    assert any("jobs_status" in str(row) for row in plan), plan
