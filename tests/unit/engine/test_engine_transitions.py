"""SPEC 3.1: every (status, operation) pair of the state machine, driven through JobManager.call.

A listed transition changes the job as the table says; every other pair leaves the whole
database unchanged (job documents, logs and raw rows) and returns false / null / [] as SPEC 4
specifies for the method.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from engine_harness import NO_RUN, Engine

from jobcollection.core.constants import FOREVER_DATE, JOB_STATUSES

Params = Callable[[Engine, str, str | None], list[object]]


def _resave(eng: Engine, job_id: str, _run: str | None) -> list[object]:
    return [eng.doc("t", {"n": 2}, _id=job_id)]


FAR = FOREVER_DATE


# label -> (method, params builder, {from status: new status (None = deleted)},
#           result when the pair is not a transition)
OPERATIONS: dict[str, tuple[str, Params, dict[str, str | None], object]] = {
    "jobPause": ("jobPause", lambda e, j, r: [j], {"waiting": "paused", "ready": "paused"}, False),
    "jobResume": ("jobResume", lambda e, j, r: [j], {"paused": "ready"}, False),
    # The table's waiting job is not due yet (after = now + 1 h) ...
    "jobReady": ("jobReady", lambda e, j, r: [j], {}, False),
    "jobReady-force": ("jobReady", lambda e, j, r: [j, {"force": True}], {}, False),
    # ... until `time` says so.
    "jobReady-time": ("jobReady", lambda e, j, r: [j, {"time": FAR}], {"waiting": "ready"}, False),
    "jobReady-all": ("jobReady", lambda e, j, r: [[], {"time": FAR}], {"waiting": "ready"}, False),
    "jobCancel": (
        "jobCancel",
        lambda e, j, r: [j],
        dict.fromkeys(("running", "ready", "waiting", "paused"), "cancelled"),
        False,
    ),
    "jobCancel-cascades": (
        "jobCancel",
        lambda e, j, r: [j, {"antecedents": True, "dependents": True}],
        dict.fromkeys(("running", "ready", "waiting", "paused"), "cancelled"),
        False,
    ),
    # A failed run set `after = now + retryWait` and restart does not reset it (SPEC 3.4).
    "jobRestart": (
        "jobRestart",
        lambda e, j, r: [j],
        {"cancelled": "ready", "failed": "waiting"},
        False,
    ),
    "jobRestart-cascades": (
        "jobRestart",
        lambda e, j, r: [j, {"retries": 0, "antecedents": True, "dependents": True}],
        {"cancelled": "ready", "failed": "waiting"},
        False,
    ),
    "jobRemove": (
        "jobRemove",
        lambda e, j, r: [j],
        dict.fromkeys(("completed", "cancelled", "failed")),
        False,
    ),
    "jobRerun": ("jobRerun", lambda e, j, r: [j], {"completed": "completed"}, False),
    "getWork": ("getWork", lambda e, j, r: ["t"], {"ready": "running"}, []),
    "jobDone": (
        "jobDone",
        lambda e, j, r: [j, r or NO_RUN, {}],
        {"running": "completed"},
        False,
    ),
    "jobFail": (
        "jobFail",
        lambda e, j, r: [j, r or NO_RUN, {"value": "e"}],
        {"running": "failed"},
        False,
    ),
    "jobFail-fatal": (
        "jobFail",
        lambda e, j, r: [j, r or NO_RUN, {}, {"fatal": True}],
        {"running": "failed"},
        False,
    ),
    "jobProgress": (
        "jobProgress",
        lambda e, j, r: [j, r or NO_RUN, 1, 2],
        {"running": "running"},
        False,
    ),
    "jobSave": ("jobSave", _resave, {"paused": "ready"}, None),
}

PAIRS = [(label, status) for label in OPERATIONS for status in JOB_STATUSES]


@pytest.mark.parametrize(("label", "status"), PAIRS)
def test_status_operation_matrix(eng: Engine, label: str, status: str) -> None:
    method, params, changes, unchanged_result = OPERATIONS[label]
    job_id, run_id = eng.in_status(status)
    assert eng.status(job_id) == status
    before = eng.snapshot()
    eng.advance(1)
    result = eng.call(method, *params(eng, job_id, run_id))
    if status not in changes:
        assert result == unchanged_result
        assert type(result) is type(unchanged_result)
        assert eng.snapshot() == before
        return
    expected = changes[status]
    if expected is None:
        assert result is True
        assert eng.call("getJob", job_id) is None
        return
    doc = eng.get(job_id)
    assert doc["status"] == expected
    if method != "jobRerun":  # rerun copies a job; the original stays as it was
        assert doc["updated"] == eng.now
    if method == "getWork":
        assert [d["_id"] for d in result] == [job_id]
    elif method == "jobSave":
        assert result == job_id
    elif method == "jobRerun":
        assert isinstance(result, str)
        assert result != job_id
        assert eng.status(result) == "ready"
    else:
        assert result is True


@pytest.mark.parametrize("status", JOB_STATUSES)
def test_job_log_works_in_every_status(eng: Engine, status: str) -> None:
    job_id, run_id = eng.in_status(status)
    assert eng.call("jobLog", job_id, run_id, "note") is True
    doc = eng.get(job_id)
    assert doc["status"] == status
    assert doc["log"][-1]["message"] == "note"


# -- the rows of the table that need a particular setup -------------------------------------------


def test_new_waiting_job_is_stored_waiting_or_ready(eng: Engine) -> None:
    """(new) → waiting: a due job without dependencies goes straight on to ready."""
    later = eng.save(after=eng.now + 1000)
    due = eng.save()
    assert eng.status(later) == "waiting"
    assert eng.status(due) == "ready"


def test_new_paused_job_stays_paused(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    assert eng.status(job_id) == "paused"


def test_waiting_becomes_ready_by_explicit_job_ready_when_due(eng: Engine) -> None:
    job_id = eng.save(after=eng.now + 5000)
    assert eng.call("jobReady", job_id, {"time": eng.now + 5000}) is True
    assert eng.status(job_id) == "ready"


def test_waiting_becomes_ready_by_promote_sweep(eng: Engine) -> None:
    job_id = eng.save(after=eng.now + 5000)
    eng.advance(5000)
    eng.m.sweep()
    assert eng.status(job_id) == "ready"


def test_waiting_with_open_dependency_is_not_readied(eng: Engine) -> None:
    antecedent = eng.save("other")
    job_id = eng.save(depends=[antecedent])
    assert eng.call("jobReady", job_id) is False
    eng.advance(20_000)
    eng.m.sweep()
    assert eng.status(job_id) == "waiting"


def test_waiting_with_open_dependency_is_readied_by_force(eng: Engine) -> None:
    antecedent = eng.save("other")
    job_id = eng.save(depends=[antecedent])
    assert eng.call("jobReady", job_id, {"force": True}) is True
    assert eng.status(job_id) == "ready"


def test_running_to_waiting_on_failure_with_retries_left(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2, retryWait=0)
    assert eng.call("jobFail", job_id, run_id, {}) is True
    # retryWait 0: due at once, so readied at once (SPEC 3.1 decision).
    assert eng.status(job_id) == "ready"


def test_running_to_waiting_on_failure_with_retry_wait(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2, retryWait=1000)
    assert eng.call("jobFail", job_id, run_id, {}) is True
    assert eng.status(job_id) == "waiting"


def test_running_to_failed_on_fatal_failure(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=5)
    assert eng.call("jobFail", job_id, run_id, {}, {"fatal": True}) is True
    assert eng.status(job_id) == "failed"


def test_paused_resave_to_waiting_when_not_due(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    assert eng.call("jobSave", eng.doc(_id=job_id, after=eng.now + 1000)) == job_id
    assert eng.status(job_id) == "waiting"


def test_paused_resume_to_waiting_when_not_due(eng: Engine) -> None:
    job_id = eng.save(status="paused", after=eng.now + 1000)
    assert eng.call("jobResume", job_id) is True
    assert eng.status(job_id) == "waiting"


def test_rerun_creates_new_waiting_job_when_wait_given(eng: Engine) -> None:
    job_id, _ = eng.completed()
    new_id = eng.call("jobRerun", job_id, {"wait": 1000})
    assert eng.status(new_id) == "waiting"
    assert eng.status(job_id) == "completed"


def test_done_with_repeats_creates_new_job(eng: Engine) -> None:
    job_id, run_id = eng.running(repeats=1, repeatWait=0)
    assert eng.call("jobDone", job_id, run_id, {}) is True
    jobs = {d["_id"]: d["status"] for d in eng.m.find()}
    assert jobs.pop(job_id) == "completed"
    assert list(jobs.values()) == ["ready"]


@pytest.mark.parametrize("status", ["running", "ready", "waiting", "paused"])
def test_save_time_dependency_check_cancels_only_the_new_job(eng: Engine, status: str) -> None:
    """Only the job being saved is cancelled by the save-time check, not its antecedent."""
    antecedent, _ = eng.in_status(status, "ante")
    assert eng.call("jobSave", eng.doc(depends=[antecedent, "missingJobId23456"])) is None
    [new] = [d for d in eng.m.find() if d["type"] == "t"]
    assert new["status"] == "cancelled"
    assert eng.status(antecedent) == status
