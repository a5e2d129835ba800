"""SPEC 3.2 and 4 (#1, #2): the stopped flag, startJobServer, shutdownJobServer, promote sweeps."""

from __future__ import annotations

import logging

import pytest
from engine_harness import NO_RUN, Engine

from jobcollection.errors import JobValidationError

SHUTDOWN_ERROR = "Running at Job Server shutdown."


class Stream:
    """A writable text stream with `end()`, as SPEC 5 wants for the call log."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended = 0

    def write(self, text: str) -> None:
        self.lines.append(text)

    def end(self) -> None:
        self.ended += 1


# -- the stopped flag -------------------------------------------------------------------------


def test_new_collection_starts_stopped(stopped_eng: Engine) -> None:
    assert stopped_eng.m.stopped is True


def test_get_work_returns_empty_list_while_stopped(stopped_eng: Engine) -> None:
    job_id = stopped_eng.save()
    assert stopped_eng.status(job_id) == "ready"
    assert stopped_eng.call("getWork", "t") == []
    assert stopped_eng.call("getWork", ["t"], {"maxJobs": 5}) == []
    assert stopped_eng.status(job_id) == "ready"


def test_job_progress_returns_null_while_stopped(eng: Engine) -> None:
    job_id, run_id = eng.running()
    assert eng.call("shutdownJobServer", {"timeout": 60_000}) is True
    assert eng.call("jobProgress", job_id, run_id, 1, 2) is None
    assert eng.get(job_id)["progress"] == {"completed": 0, "total": 1, "percent": 0}
    assert eng.call("jobProgress", "unknownJobId23456", NO_RUN, 1, 2) is None


def test_job_progress_while_stopped_still_validates(stopped_eng: Engine) -> None:
    with pytest.raises(JobValidationError) as info:
        stopped_eng.call("jobProgress", "someJobId2345678", NO_RUN, 3, 2)
    assert info.value.field == "completed"


def test_other_methods_work_while_stopped(eng: Engine) -> None:
    running, run_id = eng.running("a")
    failing, fail_run = eng.running("b")
    completed, _ = eng.completed("c")
    assert eng.call("shutdownJobServer", {"timeout": 60_000}) is True
    assert eng.m.stopped is True
    saved = eng.save("d")
    assert eng.status(saved) == "ready"  # save still readies at once
    assert eng.call("getJob", saved)["_id"] == saved
    assert eng.call("jobLog", running, run_id, "still logging") is True
    assert eng.call("jobPause", saved) is True
    assert eng.call("jobResume", saved) is True
    assert eng.call("jobDone", running, run_id, {}) is True
    assert eng.call("jobFail", failing, fail_run, {}, {"fatal": True}) is True
    assert eng.call("jobRestart", failing, {"retries": 0}) is True
    rerun = eng.call("jobRerun", completed)
    assert isinstance(rerun, str)
    assert eng.call("jobCancel", saved) is True
    assert eng.call("jobRemove", saved) is True
    waiting = eng.save("e", after=eng.now + 10)
    assert eng.call("jobReady", waiting, {"time": eng.now + 10}) is True


def test_sweep_does_nothing_while_stopped(stopped_eng: Engine) -> None:
    job_id = stopped_eng.save(after=stopped_eng.now + 1000)
    stopped_eng.advance(20_000)
    stopped_eng.m.sweep()
    stopped_eng.settle()
    assert stopped_eng.status(job_id) == "waiting"


def test_expired_run_is_not_failed_while_stopped(eng: Engine) -> None:
    job_id = eng.save()
    eng.claim(job_id, workTimeout=100)
    eng.call("shutdownJobServer", {"timeout": 3_600_000})
    eng.advance(20_000)
    eng.m.sweep()
    eng.settle()
    assert eng.status(job_id) == "running"


# -- startJobServer -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["startJobServer", "startJobs"])
@pytest.mark.parametrize("params", [[], [{}]], ids=["absent", "empty"])
def test_start_clears_stopped_flag(stopped_eng: Engine, method: str, params: list[object]) -> None:
    job_id = stopped_eng.save()
    assert stopped_eng.call(method, *params) is True
    assert stopped_eng.m.stopped is False
    assert [d["_id"] for d in stopped_eng.work()] == [job_id]


def test_start_twice_is_fine(eng: Engine) -> None:
    assert eng.call("startJobServer") is True
    assert eng.m.stopped is False


def test_start_cancels_pending_shutdown_timer(eng: Engine) -> None:
    job_id, _ = eng.running()
    eng.call("shutdownJobServer", {"timeout": 1000})
    assert eng.call("startJobServer", {}) is True
    eng.advance(5000)
    eng.settle()
    assert eng.status(job_id) == "running"


# -- shutdownJobServer ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["shutdownJobServer", "stopJobs"])
def test_shutdown_sets_stopped_and_returns_true(eng: Engine, method: str) -> None:
    assert eng.call(method, {"timeout": 1000}) is True
    assert eng.m.stopped is True
    eng.save()
    assert eng.work() == []


def test_shutdown_default_timeout_is_60000(eng: Engine) -> None:
    job_id, run_id = eng.running()
    assert eng.call("shutdownJobServer") is True
    eng.advance(59_999)
    eng.settle()
    assert eng.status(job_id) == "running"
    eng.advance(1)
    eng.wait_for(lambda: eng.status(job_id) != "running")
    assert eng.get(job_id)["failures"] == [{"value": SHUTDOWN_ERROR, "runId": run_id}]


def test_shutdown_custom_timeout(eng: Engine) -> None:
    job_id, _ = eng.running()
    eng.call("shutdownJobServer", {"timeout": 10})
    eng.advance(9)
    eng.settle()
    assert eng.status(job_id) == "running"
    eng.advance(1)
    eng.wait_for(lambda: eng.status(job_id) != "running")


def test_shutdown_fails_running_job_not_fatally_when_retries_left(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2, retryWait=5000)
    other, _ = eng.running("other")
    eng.call("shutdownJobServer", {"timeout": 100})
    eng.advance(100)
    eng.wait_for(lambda: eng.status(job_id) != "running")
    eng.wait_for(lambda: eng.status(other) != "running")
    doc = eng.get(job_id)
    assert doc["status"] == "waiting"
    assert doc["runId"] is None
    assert doc["after"] == eng.now + 5000
    assert doc["failures"] == [{"value": SHUTDOWN_ERROR, "runId": run_id}]
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": run_id,
        "level": "warning",
        "message": f"Job Failed with Error: {SHUTDOWN_ERROR}.",
    }


def test_shutdown_fails_running_job_for_good_without_retries(eng: Engine) -> None:
    job_id, run_id = eng.running()  # default: retries 1, so none left once running
    eng.call("shutdownJobServer", {"timeout": 100})
    eng.advance(100)
    eng.wait_for(lambda: eng.status(job_id) != "running")
    doc = eng.get(job_id)
    assert doc["status"] == "failed"
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": run_id,
        "level": "danger",
        "message": f"Job Failed with Fatal Error: {SHUTDOWN_ERROR}.",
    }


def test_shutdown_leaves_jobs_in_other_statuses_alone(eng: Engine) -> None:
    ready = eng.save("a")
    completed, _ = eng.completed("b")
    before = [eng.get(ready), eng.get(completed)]
    eng.call("shutdownJobServer", {"timeout": 1})
    eng.advance(1)
    eng.settle()
    assert [eng.get(ready), eng.get(completed)] == before


def test_shutdown_closes_and_clears_log_stream_at_deadline(eng: Engine) -> None:
    stream = Stream()
    eng.m.set_log_stream(stream)
    eng.call("shutdownJobServer", {"timeout": 50})
    assert stream.ended == 0
    eng.advance(50)
    eng.wait_for(lambda: stream.ended == 1)
    assert eng.m.call_log.stream is None
    eng.m.set_log_stream(Stream())  # settable again in the next cycle


def test_restart_after_shutdown_serves_work_again(eng: Engine) -> None:
    eng.call("shutdownJobServer", {"timeout": 1})
    eng.advance(1)
    job_id = eng.save()
    assert eng.work() == []
    eng.call("startJobServer")
    assert [d["_id"] for d in eng.work()] == [job_id]


# -- promote ----------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, -5])
def test_promote_non_positive_interval_only_warns(
    eng: Engine, interval: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        eng.m.promote(interval)
    assert any("promote" in r.getMessage() for r in caplog.records)


def test_promote_sweeps_once_at_once(eng: Engine) -> None:
    """A run whose deadline passed behind the scheduler's back is failed by promote()."""
    job_id = eng.save(retries=2, retryWait=0)
    eng.claim(job_id, workTimeout=1_000_000)
    eng.settle()  # let the scheduler finish its own look at the collection first
    eng.set_fields(job_id, expiresAfter=eng.now - 1)  # behind the scheduler's back
    eng.settle()
    assert eng.status(job_id) == "running"
    eng.m.promote(1_000_000)
    eng.wait_for(lambda: eng.status(job_id) != "running")


def test_default_promote_interval_is_15000(eng: Engine) -> None:
    """The safety-net sweep runs every 15 s by default (changes made behind the scheduler's back
    are found by it)."""
    job_id = eng.save(retries=2, retryWait=0)
    eng.claim(job_id, workTimeout=1_000_000)
    eng.settle()  # let the scheduler finish its own look at the collection first
    eng.set_fields(job_id, expiresAfter=eng.now - 1)
    eng.advance(14_999)
    eng.settle()
    assert eng.status(job_id) == "running"
    eng.advance(1)
    eng.wait_for(lambda: eng.status(job_id) != "running")


def test_periodic_sweep_fails_expired_runs(eng: Engine) -> None:
    job_id, _ = eng.running(retries=3, retryWait=0)
    eng.m.promote(5000)
    eng.set_fields(job_id, expiresAfter=eng.now, workTimeout=1)
    eng.advance(5000)  # the sweep interval passes
    eng.wait_for(lambda: eng.status(job_id) != "running")
