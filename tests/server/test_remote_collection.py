"""`connect()`: what only a remote collection has (logins, the server's refusals, pushed
readiness); what both backends share is tested once for both in test_both_backends.py."""

from __future__ import annotations

import time

import pytest

from jobcollection import (
    Job,
    JobCollection,
    PermissionDenied,
    ValidationError,
    connect,
)
from jobcollection.errors import AuthenticationFailed


def _wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_jobs_round_trip_with_the_same_job_class(
    remote: JobCollection, local: JobCollection
) -> None:
    job = Job(remote, "mail", {"to": "ada"}).priority("high").retry(3, wait=1000).delay(60_000)
    assert job.save()
    stored = local.get_job(job.id)
    assert stored is not None
    assert (stored.doc["priority"], stored.doc["retries"], stored.doc["status"]) == (
        -10,
        4,
        "waiting",
    )
    fetched = remote.get_job(job.id, get_log=True)
    assert fetched is not None
    assert fetched.doc["after"] == stored.doc["after"]  # times come back as int ms
    assert isinstance(fetched.doc["log"][0]["time"], int)
    assert fetched.ready(time=stored.doc["after"])  # ready now, ahead of its delay
    assert [j.id for j in remote.find({"status": "ready"})] == [job.id]
    assert remote.stats() == [("ready", "mail", 1)]
    [work] = remote.get_work("mail")
    work.log("working", level="info")
    work.progress(1, 2)
    assert work.done({"ok": True})
    done = local.get_job(job.id)
    assert done is not None
    assert (done.status, done.run_id) == ("completed", work.run_id)
    assert job.refresh()  # and the remote client reads the kept runId back
    assert (job.status, job.run_id) == ("completed", work.run_id)


def test_errors_are_the_in_process_ones(remote: JobCollection, url: str) -> None:
    bad = {**Job(remote, "t", {}).doc, "priority": "urgent"}
    with pytest.raises(ValidationError, match="priority"):
        remote.call("jobSave", [bad])
    broken = Job(remote, "t", {})
    broken.doc["retries"] = -1
    with pytest.raises(ValidationError, match=r"jobs\[1\]"):
        remote.save_jobs([Job(remote, "t", {}), broken])
    assert remote.find({"type": "t"}) == []  # nothing saved from the bad batch
    anonymous = connect(url)
    try:
        with pytest.raises(PermissionDenied):
            Job(anonymous, "t", {}).save()
    finally:
        anonymous.close()
    with pytest.raises(AuthenticationFailed, match="Incorrect username or password"):
        connect(url, username="ada", password="wrong")


def test_remote_queue_is_push_triggered(remote: JobCollection, local: JobCollection) -> None:
    remote.start_job_server()
    done: list[str] = []

    def work(jobs: list[Job]) -> None:
        done.extend(job.id for job in jobs)

    queue = remote.process_jobs("push", work, concurrency=4, payload=10, poll_interval=60_000)
    try:
        ids = local.save_jobs([Job(local, "push", {"n": n}) for n in range(100)])
        _wait_for(lambda: len(done) == 100)
        assert sorted(done) == sorted(i for i in ids if i)
        started = time.monotonic()
        late = Job(local, "push", {})
        late.save()
        _wait_for(lambda: len(done) == 101, timeout=5)
        assert time.monotonic() - started < 1  # far below the 60 s poll interval
    finally:
        queue.shutdown("soft")
    assert {j.doc["status"] for j in local.find({"type": "push"})} == {"completed"}


def test_remote_worker_keeps_a_slow_job_alive(remote: JobCollection, local: JobCollection) -> None:
    remote.start_job_server()
    job = Job(remote, "slow", {})
    job.retry(0).save()

    def slow(_: Job) -> None:
        time.sleep(1.0)

    queue = remote.process_jobs("slow", slow, work_timeout=300)
    try:
        _wait_for(lambda: local.get_job(job.id).doc["status"] == "completed")  # type: ignore[union-attr]
    finally:
        queue.shutdown("soft")
