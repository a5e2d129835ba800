"""A claim whose transaction committed though its caller got an error (the database went away
during the COMMIT: the reply was lost, the rows were written) must not leave its jobs running
for good: nobody runs them, and a worker that lives keeps them from being rescued. The next
sweep gives them back: ready again, with the retry the claim took (engine/_claims.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jobcollection import JobCollection
from jobcollection.core.workers import WorkerRecord
from jobcollection.errors import StorageUnavailable

WAIT_S = 10.0


def wait_until(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("queue", db)
    collection.start_job_server()
    yield collection
    collection.close()


def local_worker(worker_id: str) -> WorkerRecord:
    now = int(time.time() * 1000)
    return WorkerRecord(
        id=worker_id,
        kind="local",
        status="active",
        types=("t",),
        started=now,
        last_seen=now,
        lost_after=30_000,
    )


def lose_the_next_commit_reply(jc: JobCollection, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next write commits, then raises as if the database had gone before replying."""
    storage = jc.manager.storage
    write = storage.write

    @contextmanager
    def committed_then_lost(collection: str) -> Iterator[Any]:
        monkeypatch.setattr(storage, "write", write)  # once
        with write(collection) as tx:
            yield tx
        raise StorageUnavailable("the reply to COMMIT was lost", transient=True)

    monkeypatch.setattr(storage, "write", committed_then_lost)


@pytest.mark.parametrize("worker", [None, "a-worker"])
def test_a_claim_whose_reply_was_lost_is_given_back(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch, worker: str | None
) -> None:
    if worker is not None:
        jc.register_worker(local_worker(worker))  # alive: nothing would rescue its jobs
    ids = [jc.job("t", {"n": n}).retry(2).save() for n in range(3)]
    before = {job.id: (job.doc["retries"], job.doc["retried"]) for job in jc.find()}
    lose_the_next_commit_reply(jc, monkeypatch)
    with pytest.raises(StorageUnavailable):
        jc.get_work("t", max_jobs=2, worker_id=worker)
    # (It did commit: two jobs were running, claimed by a call that got an error.)
    wait_until(lambda: len(jc.find({"status": "ready"})) == 3, "the claim to be given back")
    for job in jc.find():
        assert (job.doc["retries"], job.doc["retried"]) == before[job.id]
    given = [job for job in jc.get_jobs(ids, get_log=True) if job is not None]
    messages = [[entry["message"] for entry in job.doc["log"]] for job in given]
    assert sum("Claim given back" in m[-1] for m in messages) == 2
    # They run as any other job now.
    assert len(jc.get_work("t", max_jobs=3)) == 3


def test_a_claim_that_was_rolled_back_gives_back_nothing(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual failure: nothing was written, and nothing is touched afterwards."""
    job_id = jc.job("t", {}).save()
    storage = jc.manager.storage
    write = storage.write

    def broken(*_: object) -> None:
        raise StorageUnavailable("the connection broke before the claim", transient=True)

    @contextmanager
    def rolled_back(collection: str) -> Iterator[Any]:
        monkeypatch.setattr(storage, "write", write)
        with write(collection) as tx:
            # (The claim's statements fail; on PostgreSQL a claim is one autocommit statement,
            # so a failure after it would be a lost reply, the test above.)
            monkeypatch.setattr(tx, "claim", broken)
            monkeypatch.setattr(tx, "complete_and_claim", broken)
            yield tx

    monkeypatch.setattr(storage, "write", rolled_back)
    with pytest.raises(StorageUnavailable):
        jc.get_work("t")
    [job] = jc.get_work("t")  # claimed for real, by a call that got its reply
    assert job.id == job_id
    time.sleep(0.3)  # the sweep the failed claim asked for has run: it found nothing to undo
    assert jc.get_job(job_id).status == "running"  # type: ignore[union-attr]
