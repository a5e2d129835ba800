"""jobRemove of an antecedent cancels only its unfinished dependents (SPEC 3.3, 11 decision).

Regression: the engine used to run the cancel cascade through *every* dependent of a removed
job, so a job waiting on an already-cancelled dependent was cancelled too (found by the model
test in test_state_machine_model.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobcollection.api.collection import JobCollection
from jobcollection.api.job import Job
from jobcollection.engine.clock import ManualClock


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("remove", db, clock=ManualClock())
    collection.start_job_server()
    yield collection
    collection.close()


def _chain(jc: JobCollection) -> tuple[Job, Job, Job]:
    """A <- B <- C: B depends on A, C on B (A ready, B and C waiting)."""
    a = jc.job("a", {})
    a.save()
    b = jc.job("b", {}).depends([a])
    b.save()
    c = jc.job("c", {}).depends([b])
    c.save()
    return a, b, c


def _messages(jc: JobCollection, job: Job) -> list[str]:
    found = jc.get_job(job.id or "", get_log=True)
    assert found is not None
    return [entry["message"] for entry in found.doc["log"]]


def _status(job: Job) -> str:
    assert job.refresh()
    return job.status


def test_remove_does_not_cascade_through_a_cancelled_dependent(jc: JobCollection) -> None:
    a, b, c = _chain(jc)
    # B alone (the user keeps C waiting), then A alone
    assert jc.cancel_jobs([b.id or ""], antecedents=False, dependents=False)
    assert jc.cancel_jobs([a.id or ""], antecedents=False, dependents=False)
    log_b = _messages(jc, b)
    assert jc.remove_jobs([a.id or ""])
    assert jc.get_job(a.id or "") is None
    assert _status(b) == "cancelled"
    assert _messages(jc, b) == log_b  # a finished dependent is left alone
    assert _status(c) == "waiting"  # not a dependent of A, and it waits on B, which exists
    assert "Job Cancelled" not in _messages(jc, c)


def test_remove_does_not_cancel_a_paused_job_behind_a_cancelled_dependent(
    jc: JobCollection,
) -> None:
    """The shrunk Hypothesis example: cancel B with its antecedent A, then remove A."""
    a = jc.job("a", {})
    a.pause()
    a.save()
    b = jc.job("b", {}).depends([a])
    b.pause()
    b.save()
    c = jc.job("c", {}).depends([b])
    c.pause()
    c.save()
    assert jc.cancel_jobs([b.id or ""], antecedents=True, dependents=False)
    assert _status(a) == "cancelled"
    assert jc.remove_jobs([a.id or ""])
    assert _status(b) == "cancelled"
    assert _status(c) == "paused"


def test_remove_cancels_unfinished_dependents_and_cascades_from_them(jc: JobCollection) -> None:
    a, b, c = _chain(jc)
    assert jc.cancel_jobs([a.id or ""], antecedents=False, dependents=False)
    assert _status(b) == "waiting"
    assert jc.remove_jobs([a.id or ""])
    assert _status(b) == "cancelled"
    assert _messages(jc, b)[-2:] == ["Antecedent removed", "Job Cancelled"]
    assert _status(c) == "cancelled"  # cancel's default cascade from the orphan B
    assert _messages(jc, c)[-1] == "Job Cancelled"
