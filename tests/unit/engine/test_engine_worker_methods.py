"""SPEC 1 (projections), 3.2 and 4 (#3, #4, #13-#16): getJob, getWork, jobProgress, jobLog,
jobDone and jobFail, with every option and its default."""

from __future__ import annotations

from typing import Any

import pytest
from engine_harness import NO_RUN, SERVER_LOG_KEYS, Engine, is_meteor_id

from jobcollection.core.constants import FOREVER_DATE

# -- getJob --------------------------------------------------------------------------------------


def _failed_once(eng: Engine) -> str:
    """A job with one failure behind it, ready for its next run."""
    job_id, run_id = eng.running(retries=2, retryWait=0)
    eng.call("jobFail", job_id, run_id, {"value": "e"})
    return job_id


@pytest.mark.parametrize(
    ("options", "has_log", "has_failures"),
    [
        ([], False, False),
        ([{}], False, False),
        ([{"getLog": False, "getFailures": False}], False, False),
        ([{"getLog": True}], True, False),
        ([{"getFailures": True}], False, True),
        ([{"getLog": True, "getFailures": True}], True, True),
    ],
)
def test_get_job_projection_options(
    eng: Engine, options: list[object], has_log: bool, has_failures: bool
) -> None:
    job_id = _failed_once(eng)
    eng.set_fields(job_id, _private={"secret": 1})
    doc = eng.call("getJob", job_id, *options)
    assert ("log" in doc) is has_log
    assert ("failures" in doc) is has_failures
    assert "_private" not in doc
    listed = eng.call("getJob", [job_id], *options)
    assert listed == [doc]


def test_get_job_without_failures_has_no_failures_key_even_when_asked(eng: Engine) -> None:
    job_id = eng.save()
    assert "failures" not in eng.call("getJob", job_id, {"getFailures": True})


def test_get_job_single_id_found_and_missing(eng: Engine) -> None:
    job_id = eng.save()
    assert eng.call("getJob", job_id)["_id"] == job_id
    assert eng.call("getJob", "missingJobId23456") is None


def test_get_job_list_in_storage_order_skipping_missing(eng: Engine) -> None:
    first = eng.save("a")
    second = eng.save("b")
    found = eng.call("getJob", [second, "missingJobId23456", first])
    assert [d["_id"] for d in found] == [first, second]


def test_get_job_list_with_nothing_found_is_null(eng: Engine) -> None:
    eng.save()
    assert eng.call("getJob", ["missingJobId23456"]) is None


def test_get_job_empty_list_is_null(eng: Engine) -> None:
    eng.save()
    assert eng.call("getJob", []) is None


def test_get_job_returns_the_whole_document(eng: Engine) -> None:
    job_id = eng.save()
    doc = eng.call("getJob", job_id)
    assert set(doc) == {
        "_id", "runId", "type", "status", "data", "priority", "depends", "resolved", "after",
        "updated", "progress", "retries", "retried", "repeatRetries", "retryUntil",
        "retryWait", "retryBackoff", "repeats", "repeated", "repeatUntil", "repeatWait",
        "created",
    }  # fmt: skip


def test_get_job_does_not_revalidate_outgoing_documents(eng: Engine) -> None:
    """A claim may take `retries` to -1; getJob still returns the document (SPEC 1, 11)."""
    job_id = eng.save(retries=0)
    eng.claim(job_id)
    doc = eng.call("getJob", job_id)
    assert doc["retries"] == -1
    assert doc["retried"] == 1


# -- getWork -------------------------------------------------------------------------------------


def test_get_work_claims_one_job_by_default(eng: Engine) -> None:
    ids = [eng.save() for _ in range(3)]
    docs = eng.call("getWork", "t")
    assert [d["_id"] for d in docs] == ids[:1]


@pytest.mark.parametrize(("max_jobs", "claimed"), [(1, 1), (2, 2), (3, 3), (10, 3), (2.0, 2)])
def test_get_work_max_jobs(eng: Engine, max_jobs: float, claimed: int) -> None:
    ids = [eng.save() for _ in range(3)]
    docs = eng.work(maxJobs=max_jobs)
    assert [d["_id"] for d in docs] == ids[:claimed]


def test_get_work_returns_empty_list_when_nothing_ready(eng: Engine) -> None:
    eng.save("other")
    assert eng.call("getWork", "t") == []
    assert eng.call("getWork", []) == []


def test_get_work_claim_fields(eng: Engine) -> None:
    job_id = eng.save(retries=3)
    eng.advance(10)
    before = eng.get(job_id)
    [doc] = eng.work()
    run_id = doc["runId"]
    assert is_meteor_id(run_id)
    assert doc["status"] == "running"
    assert doc["updated"] == eng.now
    assert doc["retries"] == 2
    assert doc["retried"] == 1
    assert "workTimeout" not in doc
    assert "expiresAfter" not in doc
    assert not {"log", "failures", "_private"} & set(doc)
    stored = eng.get(job_id)
    assert stored["log"][-1] == {
        "time": eng.now,
        "runId": run_id,
        "level": "info",
        "message": "Job Running",
    }
    unchanged = {k: v for k, v in before.items() if k not in ("status", "runId", "updated", "log")}
    for key in ("retries", "retried"):
        unchanged.pop(key)
    assert {k: stored[k] for k in unchanged} == unchanged
    assert {k: v for k, v in stored.items() if k != "log"} == doc


def test_get_work_hides_private_and_failures(eng: Engine) -> None:
    job_id = _failed_once(eng)
    eng.set_fields(job_id, _private={"secret": 1})
    [doc] = eng.work()
    assert doc["_id"] == job_id
    assert not {"log", "failures", "_private"} & set(doc)


def test_get_work_one_run_id_per_call(eng: Engine) -> None:
    for _ in range(4):
        eng.save()
    first = eng.work(maxJobs=2)
    second = eng.work(maxJobs=2)
    assert len({d["runId"] for d in first}) == 1
    assert len({d["runId"] for d in second}) == 1
    assert first[0]["runId"] != second[0]["runId"]
    for doc in first + second:
        assert eng.get(doc["_id"])["runId"] == doc["runId"]


@pytest.mark.parametrize("job_type", ["a", ["a"]])
def test_get_work_type_string_or_list(eng: Engine, job_type: str | list[str]) -> None:
    job_id = eng.save("a")
    eng.save("b")
    assert [d["_id"] for d in eng.work(job_type, maxJobs=5)] == [job_id]


def test_get_work_several_types_best_first(eng: Engine) -> None:
    low_a = eng.save("a", priority=10)
    high_b = eng.save("b", priority=-10)
    normal_a = eng.save("a")
    eng.save("c", priority=-15)
    docs = eng.work(["a", "b"], maxJobs=5)
    assert [d["_id"] for d in docs] == [high_b, normal_a, low_a]


def test_get_work_orders_by_priority(eng: Engine) -> None:
    ids = {p: eng.save(priority=p) for p in (0, 10, -15, -5, -10)}
    docs = eng.work(maxJobs=5)
    assert [d["_id"] for d in docs] == [ids[p] for p in (-15, -10, -5, 0, 10)]


def test_get_work_orders_by_after_within_a_priority(eng: Engine) -> None:
    late = eng.save(after=eng.now + 2000)
    early = eng.save(after=eng.now + 1000)
    eng.advance(2000)
    eng.m.sweep()
    assert eng.get(late)["after"] > eng.get(early)["after"]
    assert [d["_id"] for d in eng.work(maxJobs=2)] == [early, late]


def test_get_work_orders_by_insertion_last(eng: Engine) -> None:
    ids = [eng.save() for _ in range(5)]
    assert [d["_id"] for d in eng.work(maxJobs=5)] == ids


def test_get_work_priority_beats_after(eng: Engine) -> None:
    early = eng.save(after=eng.now + 1000, priority=5)
    late = eng.save(after=eng.now + 2000, priority=0)
    eng.advance(2000)
    eng.m.sweep()
    assert [d["_id"] for d in eng.work(maxJobs=2)] == [late, early]


def test_get_work_orders_by_retry_until_before_after(eng: Engine) -> None:
    forever = eng.save(retryUntil=FOREVER_DATE)
    soon = eng.save(retryUntil=eng.now + 60_000)
    assert eng.get(forever)["after"] == eng.get(soon)["after"]
    assert [d["_id"] for d in eng.work(maxJobs=2)] == [soon, forever]


def test_get_work_retry_until_beats_after(eng: Engine) -> None:
    early = eng.save(after=eng.now + 1000, retryUntil=FOREVER_DATE)
    late = eng.save(after=eng.now + 2000, retryUntil=eng.now + 60_000)
    eng.advance(2000)
    eng.m.sweep()
    assert [d["_id"] for d in eng.work(maxJobs=2)] == [late, early]


def test_get_work_type_listed_twice_still_fills_max_jobs(eng: Engine) -> None:
    ids = [eng.save("a") for _ in range(3)]
    docs = eng.work(["a", "a"], maxJobs=3)
    assert [d["_id"] for d in docs] == ids


def test_get_work_work_timeout_sets_deadline(eng: Engine) -> None:
    eng.save()
    [doc] = eng.work(workTimeout=5000)
    assert doc["workTimeout"] == 5000
    assert doc["expiresAfter"] == eng.now + 5000
    stored = eng.get(doc["_id"])
    assert stored["workTimeout"] == 5000
    assert stored["expiresAfter"] == eng.now + 5000


def test_get_work_without_work_timeout_removes_old_deadline(eng: Engine) -> None:
    job_id = eng.save(retries=2, retryWait=0)
    run_id = eng.claim(job_id, workTimeout=5000)
    eng.call("jobFail", job_id, run_id, {})
    assert eng.get(job_id)["workTimeout"] == 5000  # kept while waiting
    [doc] = eng.work()
    assert "workTimeout" not in doc
    assert "expiresAfter" not in doc
    stored = eng.get(job_id)
    assert "workTimeout" not in stored
    assert "expiresAfter" not in stored


def test_get_work_claims_only_ready_unclaimed_jobs(eng: Engine) -> None:
    for status in ("waiting", "paused", "running", "completed", "failed", "cancelled"):
        eng.in_status(status)
    assert eng.work(maxJobs=10) == []


# -- work timeout and renewal ----------------------------------------------------------------------


def test_progress_renews_expires_after(eng: Engine) -> None:
    job_id = eng.save()
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.advance(700)
    assert eng.call("jobProgress", job_id, run_id, 1, 2) is True
    assert eng.get(job_id)["expiresAfter"] == eng.now + 1000


def test_log_renews_expires_after_while_running(eng: Engine) -> None:
    job_id = eng.save()
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.advance(700)
    assert eng.call("jobLog", job_id, run_id, "alive") is True
    assert eng.get(job_id)["expiresAfter"] == eng.now + 1000


def test_log_does_not_renew_when_not_running(eng: Engine) -> None:
    job_id = eng.save(retries=2, retryWait=60_000)
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.call("jobFail", job_id, run_id, {})
    deadline = eng.get(job_id)["expiresAfter"]
    eng.advance(700)
    assert eng.call("jobLog", job_id, None, "later") is True
    assert eng.get(job_id)["expiresAfter"] == deadline


def test_progress_and_log_without_work_timeout_set_no_deadline(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.call("jobProgress", job_id, run_id, 1, 2)
    eng.call("jobLog", job_id, run_id, "x")
    assert "expiresAfter" not in eng.get(job_id)


def test_expired_run_is_failed_at_sweep(eng: Engine) -> None:
    job_id = eng.save(retries=2, retryWait=0)
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.advance(1000)
    eng.m.sweep()
    assert eng.status(job_id) == "running"  # expiresAfter < now is needed, not <=
    eng.advance(1)
    eng.m.sweep()
    doc = eng.get(job_id)
    assert doc["status"] in ("waiting", "ready")
    assert doc["failures"] == [
        {"value": "Failed for exceeding worker set workTimeout", "runId": run_id}
    ]
    assert {
        "time": eng.now,
        "runId": run_id,
        "level": "warning",
        "message": "Job Failed with Error: Failed for exceeding worker set workTimeout.",
    } in doc["log"]


def test_expired_run_without_retries_fails_for_good(eng: Engine) -> None:
    job_id = eng.save()
    eng.claim(job_id, workTimeout=10)
    eng.advance(11)
    eng.m.sweep()
    doc = eng.get(job_id)
    assert doc["status"] == "failed"
    assert doc["log"][-1]["message"] == (
        "Job Failed with Fatal Error: Failed for exceeding worker set workTimeout."
    )


def test_expired_run_is_failed_by_the_scheduler(eng: Engine) -> None:
    job_id = eng.save()
    eng.claim(job_id, workTimeout=10)
    eng.advance(11)
    eng.wait_for(lambda: eng.status(job_id) == "failed")


def test_renewed_run_is_not_failed(eng: Engine) -> None:
    job_id = eng.save()
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.advance(900)
    eng.call("jobProgress", job_id, run_id, 1, 2)
    eng.advance(900)
    eng.m.sweep()
    assert eng.status(job_id) == "running"


# -- jobProgress -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completed", "total", "percent"),
    [(0, 1, 0), (1, 4, 25), (3, 3, 100), (0.5, 2, 25), (1, 3, 100 / 3), (7.0, 7.0, 100)],
)
def test_progress_values(eng: Engine, completed: float, total: float, percent: float) -> None:
    job_id, run_id = eng.running()
    eng.advance(5)
    assert eng.call("jobProgress", job_id, run_id, completed, total) is True
    doc = eng.get(job_id)
    assert doc["progress"] == {"completed": completed, "total": total, "percent": percent}
    assert doc["updated"] == eng.now
    assert doc["status"] == "running"


def test_progress_accepts_empty_options(eng: Engine) -> None:
    job_id, run_id = eng.running()
    assert eng.call("jobProgress", job_id, run_id, 1, 2, {}) is True


def test_progress_adds_no_log_entry(eng: Engine) -> None:
    job_id, run_id = eng.running()
    before = eng.log(job_id)
    eng.call("jobProgress", job_id, run_id, 1, 2)
    assert eng.log(job_id) == before


@pytest.mark.parametrize("run_id", [NO_RUN, None], ids=["wrong-run", "old-run"])
def test_progress_with_wrong_run_id_is_false(eng: Engine, run_id: str | None) -> None:
    job_id, real_run = eng.running(retries=2, retryWait=0)
    if run_id is None:  # a previous run of the same job
        eng.call("jobFail", job_id, real_run, {})
        eng.claim(job_id)
        run_id = real_run
    before = eng.snapshot()
    assert eng.call("jobProgress", job_id, run_id, 1, 2) is False
    assert eng.snapshot() == before


def test_progress_unknown_job_is_false(eng: Engine) -> None:
    assert eng.call("jobProgress", "missingJobId23456", NO_RUN, 1, 2) is False


def test_worker_of_cancelled_run_sees_false(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.call("jobCancel", job_id)
    assert eng.get(job_id)["runId"] is None
    assert eng.call("jobProgress", job_id, run_id, 1, 2) is False
    assert eng.call("jobDone", job_id, run_id, {}) is False
    assert eng.call("jobFail", job_id, run_id, {}) is False
    assert eng.call("jobLog", job_id, run_id, "still here") is True
    assert eng.status(job_id) == "cancelled"


# -- jobLog --------------------------------------------------------------------------------------


def test_log_defaults(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.advance(3)
    assert eng.call("jobLog", job_id, run_id, "hello") is True
    doc = eng.get(job_id)
    assert doc["log"][-1] == {"time": eng.now, "runId": run_id, "level": "info", "message": "hello"}
    assert doc["updated"] == eng.now


@pytest.mark.parametrize("level", ["info", "success", "warning", "danger"])
def test_log_levels(eng: Engine, level: str) -> None:
    job_id = eng.save()
    assert eng.call("jobLog", job_id, None, "m", {"level": level}) is True
    assert eng.log(job_id)[-1]["level"] == level


def test_log_with_data(eng: Engine) -> None:
    job_id = eng.save()
    data = {"k": [1, 2], "nested": {"x": None}}
    assert eng.call("jobLog", job_id, None, "m", {"level": "warning", "data": data}) is True
    assert eng.log(job_id)[-1] == {
        "time": eng.now,
        "runId": None,
        "level": "warning",
        "message": "m",
        "data": data,
    }


def test_log_without_data_has_no_data_key(eng: Engine) -> None:
    job_id = eng.save()
    eng.call("jobLog", job_id, None, "m")
    assert set(eng.log(job_id)[-1]) == SERVER_LOG_KEYS


def test_log_run_id_is_not_checked(eng: Engine) -> None:
    job_id = eng.save()
    assert eng.call("jobLog", job_id, NO_RUN, "m") is True
    assert eng.log(job_id)[-1]["runId"] == NO_RUN


def test_log_empty_message(eng: Engine) -> None:
    job_id = eng.save()
    assert eng.call("jobLog", job_id, None, "") is True
    assert eng.log(job_id)[-1]["message"] == ""


def test_log_unknown_job_is_false(eng: Engine) -> None:
    eng.save()
    before = eng.snapshot()
    assert eng.call("jobLog", "missingJobId23456", None, "m") is False
    assert eng.snapshot() == before


# -- jobDone -------------------------------------------------------------------------------------


def test_done_fields(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.advance(7)
    assert eng.call("jobDone", job_id, run_id, {"answer": 42}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "completed"
    assert doc["result"] == {"answer": 42}
    assert doc["updated"] == eng.now
    assert doc["progress"] == {"completed": 1, "total": 1, "percent": 100}
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": run_id,
        "level": "success",
        "message": "Job Completed",
    }


def test_done_keeps_the_run_id_of_the_completing_run(eng: Engine) -> None:
    # As the original: getWork sets runId, jobDone leaves it; only fail, cancel, re-save and
    # rerun copies clear it.
    job_id, run_id = eng.running()
    assert eng.call("jobDone", job_id, run_id, {}) is True
    assert eng.get(job_id)["runId"] == run_id
    assert eng.call("jobDone", job_id, run_id, {}) is False  # a completed run stays completed
    assert eng.get(job_id)["status"] == "completed"


def test_done_in_a_batch_keeps_each_run_id(eng: Engine) -> None:
    ids = [eng.save() for _ in range(3)]
    run_id = eng.work(maxJobs=3)[0]["runId"]
    assert eng.m.complete_many([(job_id, run_id, {}) for job_id in ids]) == [True] * 3
    assert [eng.get(job_id)["runId"] for job_id in ids] == [run_id] * 3


def test_rerun_copy_of_a_completed_job_has_no_run_id(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.call("jobDone", job_id, run_id, {})
    copy_id = eng.call("jobRerun", job_id, {"wait": 0})
    assert eng.get(copy_id)["runId"] is None
    assert eng.get(job_id)["runId"] == run_id


def test_done_keeps_total_of_progress(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.call("jobProgress", job_id, run_id, 3, 7)
    eng.call("jobDone", job_id, run_id, {})
    assert eng.get(job_id)["progress"] == {"completed": 7, "total": 7, "percent": 100}


def test_done_with_empty_result(eng: Engine) -> None:
    job_id, run_id = eng.running()
    assert eng.call("jobDone", job_id, run_id, {}, {}) is True
    assert eng.get(job_id)["result"] == {}


@pytest.mark.parametrize("run_id", [NO_RUN], ids=["wrong-run"])
def test_done_with_wrong_run_id_is_false(eng: Engine, run_id: str) -> None:
    job_id, _ = eng.running()
    before = eng.snapshot()
    assert eng.call("jobDone", job_id, run_id, {}) is False
    assert eng.snapshot() == before


def test_done_twice_is_false_the_second_time(eng: Engine) -> None:
    job_id, run_id = eng.running()
    assert eng.call("jobDone", job_id, run_id, {}) is True
    assert eng.call("jobDone", job_id, run_id, {}) is False


@pytest.mark.parametrize(
    ("repeats", "options", "returns_id"),
    [
        (0, {}, False),
        (0, {"repeatId": True}, False),
        (1, {}, False),
        (1, {"repeatId": False}, False),
        (1, {"repeatId": True}, True),
    ],
)
def test_done_repeat_id_option(
    eng: Engine, repeats: int, options: dict[str, object], returns_id: bool
) -> None:
    job_id, run_id = eng.running(repeats=repeats, repeatWait=0)
    result = eng.call("jobDone", job_id, run_id, {}, options)
    others = [d["_id"] for d in eng.m.find() if d["_id"] != job_id]
    assert len(others) == repeats
    if returns_id:
        assert result == others[0]
        assert is_meteor_id(result)
    else:
        assert result is True


def test_done_repeat_id_when_repeat_is_past_repeat_until(eng: Engine) -> None:
    job_id, run_id = eng.running(repeats=1, repeatWait=1000, repeatUntil=eng.now + 999)
    assert eng.call("jobDone", job_id, run_id, {}, {"repeatId": True}) is True
    assert eng.job_count() == 1


# -- jobFail -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "message"),
    [
        ({"value": "boom"}, "Job Failed with Error: boom."),
        ({"value": ""}, "Job Failed with Error: ."),
        ({"value": 3}, "Job Failed with Error."),
        ({"value": None}, "Job Failed with Error."),
        ({"value": {"x": 1}}, "Job Failed with Error."),
        ({}, "Job Failed with Error."),
        ({"message": "m", "stack": "s"}, "Job Failed with Error."),
    ],
)
@pytest.mark.parametrize("final", [False, True])
def test_fail_log_message(eng: Engine, err: dict[str, Any], message: str, final: bool) -> None:
    job_id, run_id = eng.running(retries=1 if final else 2)
    eng.advance(4)
    assert eng.call("jobFail", job_id, run_id, err) is True
    doc = eng.get(job_id)
    if final:
        message = message.replace("with Error", "with Fatal Error")
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": run_id,
        "level": "danger" if final else "warning",
        "message": message,
    }
    assert doc["failures"] == [{**err, "runId": run_id}]
    assert doc["status"] == ("failed" if final else "waiting")


def test_fail_fields(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2, retryWait=1234)
    eng.call("jobProgress", job_id, run_id, 1, 4)
    eng.advance(9)
    assert eng.call("jobFail", job_id, run_id, {"value": "e"}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "waiting"
    assert doc["runId"] is None
    assert doc["after"] == eng.now + 1234
    assert doc["updated"] == eng.now
    assert doc["progress"] == {"completed": 1, "total": 4, "percent": 25}  # untouched
    assert doc["retries"] == 1
    assert doc["retried"] == 1


def test_fail_default_is_not_fatal(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2)
    assert eng.call("jobFail", job_id, run_id, {}, {}) is True
    assert eng.status(job_id) == "waiting"


@pytest.mark.parametrize(("fatal", "status"), [(False, "waiting"), (True, "failed")])
def test_fail_fatal_option(eng: Engine, fatal: bool, status: str) -> None:
    job_id, run_id = eng.running(retries=5)
    assert eng.call("jobFail", job_id, run_id, {}, {"fatal": fatal}) is True
    doc = eng.get(job_id)
    assert doc["status"] == status
    assert doc["after"] == eng.now + 300_000  # `after` is set in both cases


def test_fail_with_wrong_run_id_is_false(eng: Engine) -> None:
    job_id, _ = eng.running()
    before = eng.snapshot()
    assert eng.call("jobFail", job_id, NO_RUN, {}) is False
    assert eng.snapshot() == before


def test_fail_unknown_job_is_false(eng: Engine) -> None:
    assert eng.call("jobFail", "missingJobId23456", NO_RUN, {}) is False
