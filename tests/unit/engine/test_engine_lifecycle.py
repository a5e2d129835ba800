"""SPEC 3.3 and 3.4: dependencies, retries and repeats."""

from __future__ import annotations

from typing import Any

import pytest
from engine_harness import SERVER_LOG_KEYS, T0, Engine

from jobcollection.core.constants import FOREVER, FOREVER_DATE
from jobcollection.core.cron import parse_cron

MISSING = "missingJobId23456"
HALF_HOURLY: dict[str, Any] = {"schedules": [{"m": [0, 30]}]}
HALF_PAST = T0 + 1_000_000  # 2023-11-14T22:30:00Z
ELEVEN = HALF_PAST + 1_800_000  # 23:00:00Z


def _info(eng: Engine, message: str, level: str = "info") -> dict[str, Any]:
    return {"time": eng.now, "runId": None, "level": level, "message": message}


def _run_and_finish(eng: Engine, job_id: str, result: dict[str, Any] | None = None) -> str:
    run_id = eng.claim(job_id)
    assert eng.call("jobDone", job_id, run_id, result or {}) is True
    return run_id


def _chain(eng: Engine) -> tuple[str, str, str]:
    """A <- B <- C: B depends on A, C depends on B (A is ready, B and C waiting)."""
    a = eng.save("a")
    b = eng.save("b", depends=[a])
    c = eng.save("c", depends=[b])
    return a, b, c


# -- dependencies at save ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("antecedent_status", "message"),
    [
        ("missing", f"Antecedent job {MISSING} missing at save"),
        ("failed", "Antecedent job failed before save"),
        ("cancelled", "Antecedent job cancelled before save"),
    ],
)
def test_save_with_bad_antecedent_is_cancelled_and_null(
    eng: Engine, antecedent_status: str, message: str
) -> None:
    if antecedent_status == "missing":
        antecedent = MISSING
    else:
        antecedent, _ = eng.in_status(antecedent_status, "ante")
    eng.advance(3)
    count = eng.job_count()
    assert eng.call("jobSave", eng.doc(depends=[antecedent])) is None
    assert eng.job_count() == count + 1  # the document stays, cancelled
    [doc] = [d for d in eng.m.find() if d["type"] == "t"]
    stored = eng.get(doc["_id"])
    assert stored["status"] == "cancelled"
    assert stored["depends"] == [antecedent]
    assert stored["log"][1:] == [
        _info(eng, "Job Submitted"),
        _info(eng, message),
        _info(eng, "Job Cancelled", "warning"),
    ]


def test_paused_save_with_bad_antecedent_is_cancelled_and_null(eng: Engine) -> None:
    assert eng.call("jobSave", eng.doc(status="paused", depends=[MISSING])) is None
    [doc] = eng.m.find()
    assert eng.messages(doc["_id"])[1:] == [
        "Job Submitted",
        f"Antecedent job {MISSING} missing at save",
        "Job Cancelled",
    ]


def test_save_with_several_bad_antecedents_logs_each(eng: Engine) -> None:
    failed, _ = eng.failed("ante")
    assert eng.call("jobSave", eng.doc(depends=[MISSING, failed])) is None
    [doc] = [d for d in eng.m.find() if d["type"] == "t"]
    assert eng.messages(doc["_id"])[2:] == [
        f"Antecedent job {MISSING} missing at save",
        "Antecedent job failed before save",
        "Job Cancelled",
    ]


def test_save_resolves_completed_antecedents_before_cancelling(eng: Engine) -> None:
    # The original's order: missing ones logged first, then the stored antecedents in their
    # own order (failed/cancelled logged, completed resolved), then the job is cancelled.
    cancelled = eng.cancelled("ante")
    failed, _ = eng.failed("ante")
    done, _ = eng.completed("ante")
    eng.advance(3)
    assert eng.call("jobSave", eng.doc(depends=[cancelled, failed, done, MISSING])) is None
    [doc] = [d for d in eng.m.find() if d["type"] == "t"]
    stored = eng.get(doc["_id"])
    assert stored["status"] == "cancelled"
    assert stored["resolved"] == [done]
    assert stored["depends"] == [cancelled, failed, MISSING]
    assert stored["log"][1:] == [
        _info(eng, "Job Submitted"),
        _info(eng, f"Antecedent job {MISSING} missing at save"),
        _info(eng, "Antecedent job cancelled before save"),
        _info(eng, "Antecedent job failed before save"),
        _info(eng, "Dependency resolved"),
        _info(eng, "Job Cancelled", "warning"),
    ]


def test_paused_save_with_bad_and_completed_antecedents_resolves_nothing(eng: Engine) -> None:
    done, _ = eng.completed("ante")
    assert eng.call("jobSave", eng.doc(status="paused", depends=[done, MISSING])) is None
    [doc] = [d for d in eng.m.find() if d["type"] == "t"]
    stored = eng.get(doc["_id"])
    assert (stored["status"], stored["depends"], stored["resolved"]) == (
        "cancelled",
        [done, MISSING],
        [],
    )


def test_save_with_completed_antecedents_resolves_them(eng: Engine) -> None:
    first, _ = eng.completed("a")
    second, _ = eng.completed("b")
    eng.advance(3)
    job_id = eng.save(depends=[first, second])
    doc = eng.get(job_id)
    assert doc["status"] == "ready"
    assert doc["depends"] == []
    assert doc["resolved"] == [first, second]
    assert doc["log"][1:] == [
        _info(eng, "Job Submitted"),
        _info(eng, "Dependency resolved"),
        _info(eng, "Dependency resolved"),
        _info(eng, "Promoted to ready"),
    ]


@pytest.mark.parametrize("status", ["waiting", "paused", "ready", "running"])
def test_save_with_pending_antecedent_waits(eng: Engine, status: str) -> None:
    antecedent, _ = eng.in_status(status, "ante")
    job_id = eng.save(depends=[antecedent])
    doc = eng.get(job_id)
    assert (doc["status"], doc["depends"], doc["resolved"]) == ("waiting", [antecedent], [])


def test_save_with_completed_and_pending_antecedents(eng: Engine) -> None:
    done, _ = eng.completed("a")
    pending = eng.save("b")
    job_id = eng.save(depends=[done, pending])
    doc = eng.get(job_id)
    assert (doc["status"], doc["depends"], doc["resolved"]) == ("waiting", [pending], [done])


def test_save_paused_does_not_resolve_completed_antecedent(eng: Engine) -> None:
    done, _ = eng.completed("a")
    job_id = eng.save(status="paused", depends=[done])
    doc = eng.get(job_id)
    assert (doc["status"], doc["depends"], doc["resolved"]) == ("paused", [done], [])
    assert "Dependency resolved" not in eng.messages(job_id)


def test_resave_with_bad_antecedent_is_cancelled_and_null(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    cancelled = eng.cancelled("ante")
    assert eng.call("jobSave", eng.doc(_id=job_id, depends=[cancelled])) is None
    assert eng.status(job_id) == "cancelled"
    assert eng.messages(job_id)[-3:] == [
        "Job Resubmitted",
        "Antecedent job cancelled before save",
        "Job Cancelled",
    ]


def test_resave_with_completed_antecedent_resolves_it(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    done, _ = eng.completed("ante")
    assert eng.call("jobSave", eng.doc(_id=job_id, depends=[done])) == job_id
    doc = eng.get(job_id)
    assert (doc["status"], doc["depends"], doc["resolved"]) == ("ready", [], [done])


# -- dependencies resolved on done ---------------------------------------------------------------


def test_done_resolves_and_readies_dependents(eng: Engine) -> None:
    a, b, c = _chain(eng)
    eng.advance(5)
    _run_and_finish(eng, a)
    doc = eng.get(b)
    assert (doc["status"], doc["depends"], doc["resolved"]) == ("ready", [], [a])
    assert doc["after"] == eng.now
    assert doc["log"][-2:] == [_info(eng, "Dependency resolved"), _info(eng, "Promoted to ready")]
    assert all(set(e) == SERVER_LOG_KEYS for e in doc["log"][-2:])  # no `data`
    assert eng.status(c) == "waiting"
    _run_and_finish(eng, b)
    assert eng.status(c) == "ready"


def test_done_resolves_one_of_several_antecedents(eng: Engine) -> None:
    a = eng.save("a")
    b = eng.save("b")
    job_id = eng.save(depends=[a, b])
    _run_and_finish(eng, b)
    doc = eng.get(job_id)
    assert (doc["status"], doc["depends"], doc["resolved"]) == ("waiting", [a], [b])
    _run_and_finish(eng, a)
    doc = eng.get(job_id)
    assert (doc["status"], doc["depends"], doc["resolved"]) == ("ready", [], [b, a])


@pytest.mark.parametrize(("make", "status"), [("cancel", "cancelled"), ("pause", "paused")])
def test_done_resolves_dependents_in_any_status(eng: Engine, make: str, status: str) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a])
    if make == "cancel":
        eng.call("jobCancel", b)
    else:
        eng.call("jobPause", b)
    _run_and_finish(eng, a)
    doc = eng.get(b)
    assert (doc["status"], doc["depends"], doc["resolved"]) == (status, [], [a])
    assert doc["log"][-1] == _info(eng, "Dependency resolved")


def test_done_delay_deps_delays_dependents(eng: Engine) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a])
    run_id = eng.claim(a)
    eng.advance(10)
    assert eng.call("jobDone", a, run_id, {}, {"delayDeps": 5000}) is True
    doc = eng.get(b)
    assert (doc["status"], doc["after"], doc["depends"]) == ("waiting", eng.now + 5000, [])
    eng.advance(4999)
    eng.settle()
    assert eng.status(b) == "waiting"
    eng.advance(1)
    eng.wait_for(lambda: eng.status(b) == "ready")
    assert eng.get(b)["after"] == T0 + 10 + 5000


def test_done_delay_deps_zero_readies_at_once(eng: Engine) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a])
    run_id = eng.claim(a)
    assert eng.call("jobDone", a, run_id, {}, {"delayDeps": 0}) is True
    assert eng.status(b) == "ready"


def test_done_delay_deps_keeps_later_after(eng: Engine) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a], after=T0 + 10_000)
    run_id = eng.claim(a)
    eng.call("jobDone", a, run_id, {}, {"delayDeps": 100})
    assert eng.get(b)["after"] == T0 + 10_000


def test_done_without_delay_deps_keeps_future_after(eng: Engine) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a], after=T0 + 10_000)
    _run_and_finish(eng, a)
    doc = eng.get(b)
    assert (doc["status"], doc["after"], doc["depends"]) == ("waiting", T0 + 10_000, [])


# -- final failure, cancel and restart cascades ----------------------------------------------------


def test_final_failure_cancels_dependents_recursively(eng: Engine) -> None:
    a, b, c = _chain(eng)
    run_id = eng.claim(a)
    eng.advance(2)
    assert eng.call("jobFail", a, run_id, {"value": "x"}) is True
    assert [eng.status(j) for j in (a, b, c)] == ["failed", "cancelled", "cancelled"]
    assert eng.log(b)[-1] == _info(eng, "Job Cancelled", "warning")


def test_final_failure_cascades_through_cancelled_dependent(eng: Engine) -> None:
    a, b, c = _chain(eng)
    eng.call("jobCancel", b, {"dependents": False})
    assert eng.status(c) == "waiting"
    run_id = eng.claim(a)
    eng.call("jobFail", a, run_id, {}, {"fatal": True})
    assert eng.status(c) == "cancelled"


def test_cancel_of_cancelled_job_still_cascades(eng: Engine) -> None:
    _, b, c = _chain(eng)
    eng.call("jobCancel", b, {"dependents": False})
    assert eng.call("jobCancel", b) is True
    assert eng.status(c) == "cancelled"


def test_failure_with_retry_leaves_dependents_alone(eng: Engine) -> None:
    a = eng.save("a", retries=2)
    b = eng.save("b", depends=[a])
    run_id = eng.claim(a)
    eng.call("jobFail", a, run_id, {})
    assert eng.status(b) == "waiting"


@pytest.mark.parametrize(
    ("target", "options", "expected"),
    [
        ("b", {}, ("ready", "cancelled", "cancelled")),
        ("b", {"dependents": True}, ("ready", "cancelled", "cancelled")),
        ("b", {"dependents": False}, ("ready", "cancelled", "waiting")),
        ("b", {"antecedents": False}, ("ready", "cancelled", "cancelled")),
        ("b", {"antecedents": True}, ("cancelled", "cancelled", "cancelled")),
        ("b", {"antecedents": True, "dependents": False}, ("cancelled", "cancelled", "waiting")),
        ("c", {"antecedents": True}, ("cancelled", "cancelled", "cancelled")),
        ("c", {"antecedents": True, "dependents": False}, ("cancelled", "cancelled", "cancelled")),
        ("a", {}, ("cancelled", "cancelled", "cancelled")),
        ("a", {"dependents": False}, ("cancelled", "waiting", "waiting")),
    ],
)
def test_cancel_cascades(
    eng: Engine, target: str, options: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    chain = dict(zip("abc", _chain(eng), strict=True))
    assert eng.call("jobCancel", chain[target], options) is True
    assert tuple(eng.status(chain[k]) for k in "abc") == expected


def test_cancel_is_true_when_only_the_cascade_changed(eng: Engine) -> None:
    a, b, _ = _chain(eng)
    eng.call("jobCancel", b, {"dependents": False})
    assert eng.call("jobCancel", b, {"antecedents": True}) is True
    assert eng.status(a) == "cancelled"


def test_cancel_cascade_skips_finished_jobs(eng: Engine) -> None:
    _, b, c = _chain(eng)
    eng.call("jobCancel", c)
    log = eng.log(c)
    eng.call("jobCancel", b)
    assert eng.log(c) == log


def test_restart_default_restarts_antecedents(eng: Engine) -> None:
    a, b, c = _chain(eng)
    run_id = eng.claim(a)
    eng.call("jobFail", a, run_id, {}, {"fatal": True})
    assert [eng.status(j) for j in (a, b, c)] == ["failed", "cancelled", "cancelled"]
    assert eng.call("jobRestart", b) is True
    assert eng.status(a) == "waiting"  # its failed run set after = now + retryWait
    assert eng.status(b) == "waiting"  # still depends on a
    assert eng.status(c) == "cancelled"  # dependents: false by default
    assert eng.messages(a)[-1] == "Job Restarted"


def test_restart_is_true_when_only_the_cascade_changed(eng: Engine) -> None:
    a, b, _ = _chain(eng)
    eng.call("jobCancel", a, {"dependents": False})
    assert eng.status(b) == "waiting"
    assert eng.call("jobRestart", b) is True
    assert eng.status(b) == "waiting"
    # jobReady runs on the original ids only; the due antecedent is readied by the timer.
    eng.wait_for(lambda: eng.status(a) == "ready")


@pytest.mark.parametrize(
    ("target", "options", "expected"),
    [
        ("a", {}, ("waiting", "cancelled", "cancelled")),
        ("a", {"dependents": True}, ("waiting", "waiting", "waiting")),
        ("b", {"antecedents": False}, ("failed", "waiting", "cancelled")),
        ("b", {"antecedents": False, "dependents": True}, ("failed", "waiting", "waiting")),
        ("c", {}, ("waiting", "waiting", "waiting")),
    ],
)
def test_restart_cascades(
    eng: Engine, target: str, options: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    chain = dict(zip("abc", _chain(eng), strict=True))
    run_id = eng.claim(chain["a"])
    eng.call("jobFail", chain["a"], run_id, {}, {"fatal": True})  # after = now + 300000
    assert eng.call("jobRestart", chain[target], options) is True
    assert tuple(eng.status(chain[k]) for k in "abc") == expected


def test_restart_cascade_uses_same_options(eng: Engine) -> None:
    a, b, _ = _chain(eng)
    run_id = eng.claim(a)
    eng.call("jobFail", a, run_id, {}, {"fatal": True})
    assert eng.call("jobRestart", b, {"retries": 3, "until": T0 + 99}) is True
    doc = eng.get(a)
    assert (doc["retries"], doc["retryUntil"]) == (3, T0 + 99)


def test_restarted_antecedent_completes_and_frees_dependent(eng: Engine) -> None:
    a, b, _ = _chain(eng)
    run_id = eng.claim(a)
    eng.call("jobFail", a, run_id, {}, {"fatal": True})
    eng.call("jobRestart", b)
    eng.advance(300_000)
    eng.wait_for(lambda: eng.status(a) == "ready")
    _run_and_finish(eng, a)
    assert eng.status(b) == "ready"


# -- removal of an antecedent ----------------------------------------------------------------------


def test_remove_antecedent_cancels_unfinished_dependents(eng: Engine) -> None:
    a, b, c = _chain(eng)
    eng.call("jobCancel", a, {"dependents": False})
    eng.advance(4)
    assert eng.call("jobRemove", a) is True
    assert not eng.exists(a)
    assert eng.status(b) == "cancelled"
    assert eng.status(c) == "cancelled"
    messages = eng.messages(b)
    assert messages[-2:] == ["Antecedent removed", "Job Cancelled"]
    entry = eng.log(b)[-2]
    assert (entry["time"], entry["runId"]) == (eng.now, None)


def test_remove_antecedent_leaves_finished_dependents_alone(eng: Engine) -> None:
    a, b, _ = _chain(eng)
    eng.call("jobCancel", b)
    eng.call("jobCancel", a, {"dependents": False})
    log = eng.log(b)
    assert eng.call("jobRemove", a) is True
    assert eng.log(b) == log


@pytest.mark.parametrize("status", ["paused", "waiting"])
def test_remove_antecedent_cancels_paused_and_waiting_dependents(eng: Engine, status: str) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a], status="paused" if status == "paused" else "waiting")
    eng.call("jobCancel", a, {"dependents": False})
    assert eng.status(b) == status
    eng.call("jobRemove", a)
    assert eng.status(b) == "cancelled"


# -- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("retries", [1, 2, 4])
def test_retries_counts_runs(eng: Engine, retries: int) -> None:
    job_id = eng.save(retries=retries, retryWait=0)
    runs = []
    for number in range(1, retries + 1):
        run_id = eng.claim(job_id)
        runs.append(run_id)
        doc = eng.get(job_id)
        assert (doc["retries"], doc["retried"]) == (retries - number, number)
        assert eng.call("jobFail", job_id, run_id, {"value": number}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "failed"
    assert doc["failures"] == [{"value": n, "runId": r} for n, r in enumerate(runs, 1)]
    assert len(set(runs)) == retries
    assert eng.work() == []


def test_zero_retries_still_runs_once_then_fails(eng: Engine) -> None:
    job_id = eng.save(retries=0, retryWait=0)
    run_id = eng.claim(job_id)
    assert eng.get(job_id)["retries"] == -1
    eng.call("jobFail", job_id, run_id, {})
    assert eng.status(job_id) == "failed"


@pytest.mark.parametrize(
    ("backoff", "waits"),
    [("constant", [1000, 1000, 1000]), ("exponential", [1000, 2000, 4000])],
)
def test_retry_backoff(eng: Engine, backoff: str, waits: list[int]) -> None:
    job_id = eng.save(retries=10, retryWait=1000, retryBackoff=backoff)
    for wait in waits:
        eng.wait_for(lambda: eng.status(job_id) == "ready")
        run_id = eng.claim(job_id)
        eng.advance(7)
        eng.call("jobFail", job_id, run_id, {})
        doc = eng.get(job_id)
        assert (doc["status"], doc["after"]) == ("waiting", eng.now + wait)
        eng.advance(wait - 1)
        eng.m.sweep()
        assert eng.status(job_id) == "waiting"
        eng.advance(1)


def test_retry_becomes_ready_at_its_after_without_a_sweep(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2, retryWait=500)
    eng.call("jobFail", job_id, run_id, {})
    eng.advance(500)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    assert eng.get(job_id)["after"] == eng.now


def test_retry_wait_zero_is_ready_at_once(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2, retryWait=0)
    eng.call("jobFail", job_id, run_id, {})
    assert eng.status(job_id) == "ready"


@pytest.mark.parametrize(("retry_until", "status"), [(T0 + 1000, "waiting"), (T0 + 999, "failed")])
def test_retry_until(eng: Engine, retry_until: int, status: str) -> None:
    job_id, run_id = eng.running(retries=5, retryWait=1000, retryUntil=retry_until)
    eng.call("jobFail", job_id, run_id, {"value": "v"})
    doc = eng.get(job_id)
    assert doc["status"] == status
    assert doc["after"] == T0 + 1000
    final = status == "failed"
    assert doc["log"][-1]["message"] == f"Job Failed with{' Fatal' if final else ''} Error: v."


def test_retry_after_overflow_fails_with_forever_date(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=5, retryWait=FOREVER_DATE)
    assert eng.call("jobFail", job_id, run_id, {"value": "v"}) is True
    doc = eng.get(job_id)
    assert (doc["status"], doc["after"]) == ("failed", FOREVER_DATE)
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": run_id,
        "level": "danger",
        "message": "Job Failed with Fatal Error: v.",
    }


def test_exponential_after_overflow_fails_with_forever_date(eng: Engine) -> None:
    wait = 2**52  # 4.5e15 ms: the first retry fits, the second (2**53) does not
    job_id, run_id = eng.running(retries=5, retryWait=wait, retryBackoff="exponential")
    eng.call("jobFail", job_id, run_id, {})
    doc = eng.get(job_id)
    assert (doc["status"], doc["after"]) == ("waiting", T0 + wait)
    assert eng.call("jobReady", job_id, {"time": FOREVER_DATE}) is True
    run_id = eng.claim(job_id)
    eng.call("jobFail", job_id, run_id, {})
    doc = eng.get(job_id)
    assert (doc["status"], doc["after"]) == ("failed", FOREVER_DATE)
    # Restart does not reset `after`: the job waits (until year 275760).
    assert eng.call("jobRestart", job_id) is True
    doc = eng.get(job_id)
    assert (doc["status"], doc["after"]) == ("waiting", FOREVER_DATE)


def test_fatal_failure_skips_remaining_retries(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=9)
    eng.call("jobFail", job_id, run_id, {"value": "v"}, {"fatal": True})
    doc = eng.get(job_id)
    assert (doc["status"], doc["retries"]) == ("failed", 8)
    assert doc["log"][-1]["message"] == "Job Failed with Fatal Error: v."


# -- repeats -------------------------------------------------------------------------------------


def _repeat_of(eng: Engine, job_id: str) -> str:
    ids = [str(d["_id"]) for d in eng.m.find()]
    return ids[ids.index(job_id) + 1]


def test_numeric_repeats_until_exhausted(eng: Engine) -> None:
    first = eng.save(repeats=2, repeatWait=1000)
    _run_and_finish(eng, first)
    second = _repeat_of(eng, first)
    doc = eng.get(second)
    assert (doc["status"], doc["after"], doc["repeats"], doc["repeated"]) == (
        "waiting", T0 + 1000, 1, 1,
    )  # fmt: skip
    eng.advance(1000)
    eng.wait_for(lambda: eng.status(second) == "ready")
    _run_and_finish(eng, second)
    third = _repeat_of(eng, second)
    doc = eng.get(third)
    assert (doc["after"], doc["repeats"], doc["repeated"]) == (T0 + 2000, 0, 2)
    eng.advance(1000)
    eng.wait_for(lambda: eng.status(third) == "ready")
    _run_and_finish(eng, third)
    assert eng.job_count() == 3


def test_repeat_copy_rules(eng: Engine) -> None:
    job_id = eng.save(
        "email", {"k": 1}, repeats=3, repeatWait=100, retries=4, repeatRetries=2,
        retryUntil=T0 + 50, repeatUntil=T0 + 500_000, priority=3,
    )  # fmt: skip
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.call("jobProgress", job_id, run_id, 1, 2)
    eng.advance(10)
    eng.call("jobDone", job_id, run_id, {"r": 1})
    new_id = _repeat_of(eng, job_id)
    doc = eng.get(new_id)
    assert doc["log"] == [_info(eng, "Rerunning job")]
    assert not {"result", "failures", "workTimeout", "expiresAfter"} & set(doc)
    expected = {
        "type": "email", "data": {"k": 1}, "status": "waiting", "runId": None,
        "repeatRetries": 2, "retries": 2, "retried": 0, "retryUntil": T0 + 500_000,
        "repeatUntil": T0 + 500_000, "repeats": 2, "repeated": 1, "created": eng.now,
        "updated": eng.now, "progress": {"completed": 0, "total": 1, "percent": 0},
        "after": eng.now + 100, "priority": 3, "repeatWait": 100,
    }  # fmt: skip
    assert {k: doc[k] for k in expected} == expected


@pytest.mark.parametrize(("repeat_until", "repeats"), [(T0 + 1000, True), (T0 + 999, False)])
def test_numeric_repeat_until(eng: Engine, repeat_until: int, repeats: bool) -> None:
    job_id = eng.save(repeats=5, repeatWait=1000, repeatUntil=repeat_until)
    _run_and_finish(eng, job_id)
    assert eng.job_count() == (2 if repeats else 1)


def test_repeat_wait_zero_repeats_at_once(eng: Engine) -> None:
    job_id = eng.save(repeats=1, repeatWait=0)
    _run_and_finish(eng, job_id)
    new_id = _repeat_of(eng, job_id)
    assert eng.messages(new_id) == ["Rerunning job", "Promoted to ready"]


def test_forever_repeats_count_down_from_forever(eng: Engine) -> None:
    job_id = eng.save(repeats=FOREVER, repeatWait=0)
    _run_and_finish(eng, job_id)
    assert eng.get(_repeat_of(eng, job_id))["repeats"] == FOREVER - 1


@pytest.mark.parametrize(
    ("done_at", "next_run"),
    [
        (HALF_PAST, ELEVEN),
        (ELEVEN - 501, ELEVEN),
        (ELEVEN - 500, ELEVEN + 1_800_000),  # now + 500 ms is exactly 23:00: strictly later
        (ELEVEN - 1, ELEVEN + 1_800_000),
    ],
)
def test_schedule_repeat(eng: Engine, done_at: int, next_run: int) -> None:
    job_id = eng.save(repeats=FOREVER, repeatWait=HALF_HOURLY)
    assert eng.get(job_id)["after"] == HALF_PAST
    eng.clock.set(HALF_PAST)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    run_id = eng.claim(job_id)
    eng.clock.set(done_at)
    eng.call("jobDone", job_id, run_id, {})
    doc = eng.get(_repeat_of(eng, job_id))
    assert (doc["after"], doc["status"], doc["repeatWait"]) == (
        next_run, "waiting", {"schedules": [{"m": [0, 30]}], "exceptions": []},
    )  # fmt: skip


def test_schedule_repeat_with_exception(eng: Engine) -> None:
    schedule = {"schedules": [{"m": [0, 30]}], "exceptions": [{"h": [23]}]}
    job_id = eng.save(repeats=1, repeatWait=schedule)
    eng.clock.set(HALF_PAST)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    _run_and_finish(eng, job_id)
    assert eng.get(_repeat_of(eng, job_id))["after"] == ELEVEN + 3_600_000  # midnight


def test_schedule_repeat_past_repeat_until_stops(eng: Engine) -> None:
    job_id = eng.save(repeats=5, repeatWait=HALF_HOURLY, repeatUntil=ELEVEN - 1)
    eng.clock.set(HALF_PAST)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    _run_and_finish(eng, job_id)
    assert eng.job_count() == 1


def test_schedule_repeat_equal_to_repeat_until_repeats(eng: Engine) -> None:
    job_id = eng.save(repeats=5, repeatWait=HALF_HOURLY, repeatUntil=ELEVEN)
    eng.clock.set(HALF_PAST)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    _run_and_finish(eng, job_id)
    assert eng.get(_repeat_of(eng, job_id))["after"] == ELEVEN


def test_cron_schedule_repeat(eng: Engine) -> None:
    schedule = parse_cron("*/15 * * * *")
    job_id = eng.save(repeats=2, repeatWait=schedule)
    first_run = T0 + 100_000  # 22:15:00
    assert eng.get(job_id)["after"] == first_run
    eng.clock.set(first_run)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    _run_and_finish(eng, job_id)
    second = _repeat_of(eng, job_id)
    assert eng.get(second)["after"] == first_run + 900_000
    eng.clock.set(first_run + 900_000)
    eng.wait_for(lambda: eng.status(second) == "ready")
    _run_and_finish(eng, second)
    assert eng.get(_repeat_of(eng, second))["after"] == first_run + 1_800_000


def test_repeat_copies_private(eng: Engine) -> None:
    job_id, run_id = eng.running(repeats=1, repeatWait=0)
    eng.set_fields(job_id, _private={"owner": "server"})
    eng.call("jobDone", job_id, run_id, {})
    new_id = _repeat_of(eng, job_id)
    assert eng.stored(new_id)["_private"] == {"owner": "server"}
    assert "_private" not in eng.get(new_id)


def test_repeat_keeps_dependencies(eng: Engine) -> None:
    done, _ = eng.completed("ante")
    job_id = eng.save(repeats=1, repeatWait=0, depends=[done])
    _run_and_finish(eng, job_id)
    doc = eng.get(_repeat_of(eng, job_id))
    assert (doc["depends"], doc["resolved"], doc["status"]) == ([], [done], "ready")
