"""With the real clock: due jobs become ready at their time, not at the next 15 s sweep, and
expired work timeouts are failed as promptly (the exact lateness is a benchmark figure)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from jobcollection import Job, JobCollection

SWEEP_MS = 15000  # the default safety-net interval: every wait below must beat it by far


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("timers", db)
    collection.start_job_server()
    yield collection
    collection.close()


def _wait_for(check: Callable[[], bool], seconds: float = 5.0) -> float:
    """Seconds until `check()` held (fails after `seconds`)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            pytest.fail("condition not reached in time")
        time.sleep(0.002)
    return time.monotonic() - start


def _status(jc: JobCollection, job_id: str) -> str:
    job = jc.get_job(job_id)
    assert job is not None
    return job.status


def test_delayed_job_becomes_ready_at_its_time_not_at_the_sweep(jc: JobCollection) -> None:
    job_id = Job(jc, "t", {}).delay(150).save()
    assert job_id is not None
    assert _status(jc, job_id) == "waiting"
    waited = _wait_for(lambda: _status(jc, job_id) == "ready")
    assert waited < SWEEP_MS / 1000 / 3
    job = jc.get_job(job_id)
    assert job is not None
    assert job.doc["after"] <= job.doc["updated"]


def test_retry_wait_readies_the_failed_run_at_its_time(jc: JobCollection) -> None:
    job_id = Job(jc, "t", {}).retry(2, wait=100).save()
    assert job_id is not None
    (work,) = jc.get_work("t")
    assert work.fail("boom")
    assert _status(jc, job_id) == "waiting"
    _wait_for(lambda: _status(jc, job_id) == "ready")


def test_expired_work_timeout_is_failed_promptly(jc: JobCollection) -> None:
    job_id = Job(jc, "t", {}).retry(1, wait=0).save()
    assert job_id is not None
    (work,) = jc.get_work("t", work_timeout=100)
    assert work.status == "running"
    _wait_for(lambda: _status(jc, job_id) != "running")
    job = jc.get_job(job_id, get_failures=True)
    assert job is not None
    assert job.doc["failures"][0]["value"] == "Failed for exceeding worker set workTimeout"


def test_a_job_due_while_the_server_was_stopped_is_readied_at_start(db: str) -> None:
    jc = JobCollection("timers", db)
    try:
        job_id = Job(jc, "t", {}).delay(50).save()
        assert job_id is not None
        time.sleep(0.2)
        assert _status(jc, job_id) == "waiting"  # a stopped server promotes nothing
        jc.start_job_server()
        _wait_for(lambda: _status(jc, job_id) == "ready")
    finally:
        jc.close()


def test_another_process_writes_wake_the_scheduler(db: str) -> None:
    """A delayed job saved through a second connection is readied by the first one's timer."""
    server = JobCollection("timers", db)
    server.start_job_server()
    other = JobCollection("timers", db)  # stopped: it never promotes anything itself
    try:
        job_id = Job(other, "t", {}).delay(100).save()
        assert job_id is not None
        _wait_for(lambda: _status(server, job_id) == "ready")
    finally:
        other.close()
        server.close()


def test_a_wake_up_asked_for_during_a_recheck_is_kept(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler rechecks the next due time by reading the database; a write that
    commits after that read began asks for its wake-up meanwhile, and the read's answer (which
    cannot see that write) must not erase it."""
    manager = jc.manager
    scheduler = manager.scheduler
    read = manager.next_wakeup
    asked = jc.now_ms() + 60_000
    reads: list[int | None] = []

    def read_while_a_write_asks() -> int | None:
        found = read()
        scheduler.wake_at(asked)  # (the write committed after the read's snapshot)
        reads.append(found)
        return found

    monkeypatch.setattr(manager, "next_wakeup", read_while_a_write_asks)
    scheduler.set_interval(SWEEP_MS)  # a sweep now, then a recheck
    _wait_for(lambda: bool(reads))
    assert reads[0] is None or reads[0] > asked  # (nothing else due before it)
    assert scheduler._next_wake is not None
    assert scheduler._next_wake <= asked
