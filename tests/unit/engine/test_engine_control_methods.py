"""SPEC 1 and 4 (#5-#12): jobRemove, jobPause, jobResume, jobReady, jobCancel, jobRestart,
jobSave and jobRerun, with every option and its default."""

from __future__ import annotations

from typing import Any

import pytest
from engine_harness import T0, Engine, is_meteor_id

from jobcollection.core.constants import FOREVER, FOREVER_DATE
from jobcollection.core.cron import parse_cron

HALF_HOURLY: dict[str, Any] = {"schedules": [{"m": [0, 30]}]}
T0_NEXT_HALF_HOUR = T0 + 1_000_000  # 22:30:00Z after 22:13:20Z
MISSING = "missingJobId23456"


# -- ids handling common to the bulk methods -------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["jobRemove", "jobPause", "jobResume", "jobCancel", "jobRestart"]
)
def test_empty_id_list_returns_false_and_does_nothing(eng: Engine, method: str) -> None:
    for status in ("ready", "paused", "failed", "completed", "waiting"):
        eng.in_status(status, status)
    before = eng.snapshot()
    assert eng.call(method, []) is False
    assert eng.snapshot() == before


@pytest.mark.parametrize(
    ("method", "status", "new_status"),
    [
        ("jobRemove", "completed", None),
        ("jobPause", "ready", "paused"),
        ("jobResume", "paused", "ready"),
        ("jobCancel", "ready", "cancelled"),
        ("jobRestart", "cancelled", "ready"),
        ("jobReady", "waiting", "ready"),
    ],
)
def test_single_id_and_list_of_ids(
    eng: Engine, method: str, status: str, new_status: str | None
) -> None:
    a, _ = eng.in_status(status)
    b, _ = eng.in_status(status)
    c, _ = eng.in_status(status)
    options: dict[str, Any] = {"time": FOREVER_DATE} if method == "jobReady" else {}
    assert eng.call(method, a, options) is True
    assert eng.call(method, [b, c, MISSING], options) is True
    for job_id in (a, b, c):
        if new_status is None:
            assert not eng.exists(job_id)
        else:
            assert eng.status(job_id) == new_status


@pytest.mark.parametrize(
    "method", ["jobRemove", "jobPause", "jobResume", "jobCancel", "jobRestart", "jobReady"]
)
def test_unknown_id_returns_false(eng: Engine, method: str) -> None:
    eng.save()
    before = eng.snapshot()
    assert eng.call(method, [MISSING]) is False
    assert eng.call(method, MISSING) is False
    assert eng.snapshot() == before


# -- jobRemove -----------------------------------------------------------------------------------


def test_remove_deletes_job_and_its_log(eng: Engine) -> None:
    job_id, _ = eng.completed()
    assert eng.call("jobRemove", job_id, {}) is True
    assert eng.call("getJob", job_id, {"getLog": True}) is None
    assert eng.raw_tables()["job_log"] == []


def test_remove_only_removable_of_a_list(eng: Engine) -> None:
    done, _ = eng.completed("a")
    ready = eng.save("b")
    assert eng.call("jobRemove", [done, ready]) is True
    assert not eng.exists(done)
    assert eng.status(ready) == "ready"


# -- jobPause / jobResume ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["ready", "waiting"])
def test_pause_fields(eng: Engine, status: str) -> None:
    job_id, _ = eng.in_status(status)
    before = eng.get(job_id)
    eng.advance(11)
    assert eng.call("jobPause", job_id, {}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "paused"
    assert doc["updated"] == eng.now
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": None,
        "level": "info",
        "message": "Job Paused",
    }
    same = ("status", "updated", "log")
    assert {k: v for k, v in doc.items() if k not in same} == {
        k: v for k, v in before.items() if k not in same
    }


def test_paused_job_is_not_promoted_when_due(eng: Engine) -> None:
    job_id = eng.save(status="paused", after=eng.now + 10)
    eng.advance(20_000)
    eng.m.sweep()
    assert eng.status(job_id) == "paused"


def test_resume_fields_and_ready_at_once(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    eng.advance(13)
    assert eng.call("jobResume", job_id, {}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "ready"
    assert doc["updated"] == eng.now
    assert doc["after"] == eng.now
    assert doc["log"][-2:] == [
        {"time": eng.now, "runId": None, "level": "info", "message": "Job Resumed"},
        {"time": eng.now, "runId": None, "level": "info", "message": "Promoted to ready"},
    ]


def test_resumed_job_becomes_ready_at_its_after(eng: Engine) -> None:
    job_id = eng.save(status="paused", after=eng.now + 1000)
    assert eng.call("jobResume", job_id) is True
    assert eng.status(job_id) == "waiting"
    eng.advance(1000)
    eng.wait_for(lambda: eng.status(job_id) == "ready")


def test_resume_with_open_dependency_stays_waiting(eng: Engine) -> None:
    antecedent = eng.save("other")
    job_id = eng.save(status="paused", depends=[antecedent])
    assert eng.call("jobResume", job_id) is True
    assert eng.status(job_id) == "waiting"


# -- jobReady ------------------------------------------------------------------------------------


def test_ready_defaults_use_now_and_no_force(eng: Engine) -> None:
    later = eng.save(after=eng.now + 1)
    antecedent = eng.save("other")
    blocked = eng.save(depends=[antecedent])
    before = eng.snapshot()
    assert eng.call("jobReady", [later, blocked]) is False
    assert eng.call("jobReady", [later, blocked], {}) is False
    assert eng.snapshot() == before


def test_ready_with_ids_sets_after_to_now(eng: Engine) -> None:
    job_id = eng.save(after=eng.now + 5000)
    eng.advance(17)
    assert eng.call("jobReady", job_id, {"time": eng.now + 5000}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "ready"
    assert doc["after"] == eng.now
    assert doc["updated"] == eng.now
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": None,
        "level": "info",
        "message": "Promoted to ready",
    }


def test_ready_time_option_is_inclusive(eng: Engine) -> None:
    job_id = eng.save(after=eng.now + 5000)
    assert eng.call("jobReady", job_id, {"time": eng.now + 4999}) is False
    assert eng.call("jobReady", job_id, {"time": eng.now + 5000}) is True


def test_ready_empty_ids_applies_to_all_waiting_jobs_and_keeps_after(eng: Engine) -> None:
    a = eng.save("a", after=eng.now + 1000)
    b = eng.save("b", after=eng.now + 2000)
    c = eng.save("c", after=eng.now + 9000)
    assert eng.call("jobReady", [], {"time": eng.now + 2000}) is True
    assert [eng.status(i) for i in (a, b, c)] == ["ready", "ready", "waiting"]
    assert eng.get(a)["after"] == T0 + 1000
    assert eng.get(b)["after"] == T0 + 2000


def test_ready_empty_ids_with_nothing_due_is_false(eng: Engine) -> None:
    eng.save(after=eng.now + 1000)
    assert eng.call("jobReady", []) is False


def test_ready_force_drops_dependencies_without_resolving(eng: Engine) -> None:
    antecedent = eng.save("other")
    job_id = eng.save(depends=[antecedent])
    eng.advance(3)
    assert eng.call("jobReady", job_id, {"force": True}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "ready"
    assert doc["depends"] == []
    assert doc["resolved"] == []
    assert doc["log"][-2:] == [
        {
            "time": eng.now,
            "runId": None,
            "level": "warning",
            "message": "Dependencies force resolved",
        },
        {"time": eng.now, "runId": None, "level": "info", "message": "Promoted to ready"},
    ]
    # The antecedent's completion no longer concerns the forced job.
    run_id = eng.claim(antecedent)
    eng.call("jobDone", antecedent, run_id, {})
    assert eng.get(job_id)["resolved"] == []


def test_ready_force_still_needs_after(eng: Engine) -> None:
    antecedent = eng.save("other")
    job_id = eng.save(depends=[antecedent], after=eng.now + 1000)
    assert eng.call("jobReady", job_id, {"force": True}) is False
    assert eng.get(job_id)["depends"] == [antecedent]


def test_ready_force_false_is_the_default(eng: Engine) -> None:
    antecedent = eng.save("other")
    job_id = eng.save(depends=[antecedent])
    assert eng.call("jobReady", job_id, {"force": False}) is False


def test_ready_force_with_empty_ids_applies_to_all(eng: Engine) -> None:
    antecedent = eng.save("other")
    jobs = [eng.save(depends=[antecedent]) for _ in range(2)]
    assert eng.call("jobReady", [], {"force": True}) is True
    assert [eng.status(j) for j in jobs] == ["ready", "ready"]


# -- jobCancel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["running", "ready", "waiting", "paused"])
def test_cancel_fields(eng: Engine, status: str) -> None:
    job_id, run_id = eng.in_status(status)
    if run_id is not None:
        eng.call("jobProgress", job_id, run_id, 1, 2)
    before = eng.get(job_id)
    eng.advance(19)
    assert eng.call("jobCancel", job_id, {}) is True
    doc = eng.get(job_id)
    assert doc["status"] == "cancelled"
    assert doc["runId"] is None
    assert doc["progress"] == {"completed": 0, "total": 1, "percent": 0}
    assert doc["updated"] == eng.now
    assert doc["log"][-1] == {
        "time": eng.now,
        "runId": None,
        "level": "warning",
        "message": "Job Cancelled",
    }
    for key in ("after", "retries", "retried", "repeats", "priority", "data"):
        assert doc[key] == before[key]


def test_cancel_keeps_retries_repeats_and_after(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=3, repeats=4, retryWait=50_000)
    eng.call("jobFail", job_id, run_id, {})
    before = eng.get(job_id)
    assert eng.call("jobCancel", job_id) is True
    doc = eng.get(job_id)
    assert (doc["retries"], doc["repeats"], doc["after"]) == (2, 4, before["after"])


# -- jobRestart ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_restart_fields_and_defaults(eng: Engine, status: str) -> None:
    job_id, run_id = eng.running(retries=2, retryWait=0)
    eng.call("jobProgress", job_id, run_id, 1, 2)
    if status == "failed":
        eng.call("jobFail", job_id, run_id, {}, {"fatal": True})
    else:
        eng.call("jobCancel", job_id)
    before = eng.get(job_id)
    eng.advance(23)
    assert eng.call("jobRestart", job_id) is True
    doc = eng.get(job_id)
    assert doc["status"] == "ready"
    assert doc["progress"] == {"completed": 0, "total": 1, "percent": 0}
    assert doc["updated"] == eng.now
    assert doc["retries"] == before["retries"] + 1  # default retries: 1
    assert doc["retried"] == before["retried"]  # not reset
    assert doc["retryUntil"] == before["retryUntil"]  # no until given
    assert doc["log"][-2:] == [
        {"time": eng.now, "runId": None, "level": "info", "message": "Job Restarted"},
        {"time": eng.now, "runId": None, "level": "info", "message": "Promoted to ready"},
    ]


@pytest.mark.parametrize(
    ("retries", "expected"),
    [(0, 0), (1, 1), (5, 5), (2.0, 2), (FOREVER, FOREVER), (FOREVER + 10, FOREVER)],
)
def test_restart_retries_option_adds_and_caps(eng: Engine, retries: int, expected: int) -> None:
    job_id = eng.cancelled(retries=0)
    assert eng.call("jobRestart", job_id, {"retries": retries}) is True
    assert eng.get(job_id)["retries"] == expected


def test_restart_retries_sum_is_capped_at_forever(eng: Engine) -> None:
    job_id = eng.cancelled(retries=FOREVER)
    eng.call("jobRestart", job_id, {"retries": 5})
    assert eng.get(job_id)["retries"] == FOREVER


def test_restart_until_option_sets_retry_until(eng: Engine) -> None:
    job_id = eng.cancelled()
    assert eng.call("jobRestart", job_id, {"until": eng.now + 77}) is True
    doc = eng.get(job_id)
    assert doc["retryUntil"] == eng.now + 77
    assert doc["repeatUntil"] == FOREVER_DATE


def test_restart_does_not_reset_after(eng: Engine) -> None:
    job_id, run_id = eng.running(retryWait=60_000)
    eng.call("jobFail", job_id, run_id, {})
    after = eng.get(job_id)["after"]
    assert eng.call("jobRestart", job_id) is True
    doc = eng.get(job_id)
    assert doc["status"] == "waiting"
    assert doc["after"] == after
    eng.advance(60_000)
    eng.wait_for(lambda: eng.status(job_id) == "ready")


def test_restarted_run_can_be_claimed_and_counts_runs(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.call("jobFail", job_id, run_id, {}, {"fatal": True})
    eng.call("jobRestart", job_id, {"retries": 1})
    eng.advance(300_000)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    new_run = eng.claim(job_id)
    doc = eng.get(job_id)
    assert new_run != run_id
    assert (doc["retries"], doc["retried"]) == (0, 2)


# -- jobSave: new documents ------------------------------------------------------------------------


def test_save_new_returns_fresh_id_and_stores_document(eng: Engine) -> None:
    doc = eng.doc("email", {"to": "a@b.c"}, priority=-5, retries=3, retryWait=10)
    doc["updated"] = doc["created"] = eng.now - 5000
    eng.advance(100)
    job_id = eng.call("jobSave", doc)
    assert is_meteor_id(job_id)
    stored = eng.get(job_id)
    expected = {k: v for k, v in doc.items() if k != "log"}
    expected.update(_id=job_id, status="ready", created=eng.now, updated=eng.now, after=eng.now)
    assert {k: v for k, v in stored.items() if k != "log"} == expected


def test_save_new_ids_differ(eng: Engine) -> None:
    ids = {eng.save() for _ in range(5)}
    assert len(ids) == 5


def test_save_null_id_means_new(eng: Engine) -> None:
    job_id = eng.call("jobSave", eng.doc(_id=None))
    assert is_meteor_id(job_id)


def test_save_new_keeps_client_updated_until_readied(eng: Engine) -> None:
    paused = eng.call("jobSave", eng.doc(status="paused", updated=T0 - 5000))
    later = eng.call("jobSave", eng.doc(after=eng.now + 1000, updated=T0 - 7000))
    assert eng.get(paused)["updated"] == T0 - 5000
    assert eng.get(later)["updated"] == T0 - 7000
    assert eng.get(paused)["created"] == eng.now


def test_save_new_appends_job_submitted_to_client_log(eng: Engine) -> None:
    entry = {"time": T0 - 10, "runId": None, "level": "warning", "message": "hi", "data": {"a": 1}}
    job_id = eng.call("jobSave", eng.doc(status="paused", log=[entry]))
    assert eng.log(job_id) == [
        entry,
        {"time": eng.now, "runId": None, "level": "info", "message": "Job Submitted"},
    ]


def test_save_new_without_log_creates_it(eng: Engine) -> None:
    doc = eng.doc()
    del doc["log"]
    job_id = eng.call("jobSave", doc)
    assert eng.messages(job_id) == ["Job Submitted", "Promoted to ready"]


def test_save_new_with_empty_log(eng: Engine) -> None:
    job_id = eng.call("jobSave", eng.doc(log=[]))
    assert eng.messages(job_id) == ["Job Submitted", "Promoted to ready"]


def test_save_new_default_document_log(eng: Engine) -> None:
    job_id = eng.save()
    assert eng.log(job_id) == [
        {"time": T0, "runId": None, "level": "info", "message": "Constructed"},
        {"time": T0, "runId": None, "level": "info", "message": "Job Submitted"},
        {"time": T0, "runId": None, "level": "info", "message": "Promoted to ready"},
    ]


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("after", 0, T0),
        ("after", -FOREVER_DATE, T0),
        ("after", T0 - 1, T0),
        ("retryUntil", 0, T0),
        ("retryUntil", T0 - 1, T0),
        ("retryUntil", T0 + 1, T0 + 1),
        ("repeatUntil", 5, T0),
        ("repeatUntil", T0 + 1, T0 + 1),
        ("retries", FOREVER + 1, FOREVER),
        ("retries", 2**60, FOREVER),
        ("repeats", FOREVER * 2, FOREVER),
        ("repeatRetries", FOREVER + 5, FOREVER),
        ("retries", 1.0, 1),
        ("priority", -(2**31), -(2**31)),
        ("priority", 2**31 - 1, 2**31 - 1),
    ],
)
def test_save_clamps(eng: Engine, field: str, value: int, stored: int) -> None:
    changes: dict[str, Any] = {field: value}
    job_id = eng.call("jobSave", eng.doc(status="paused", **changes))
    assert eng.get(job_id)[field] == stored


def test_save_stores_js_integers_as_int(eng: Engine) -> None:
    job_id = eng.save(
        status="paused", priority=3.0, retries=2.0, retryWait=10.0, after=T0 + 5.0,
        repeats=1.0, repeatWait=7.0, retried=0.0,
    )  # fmt: skip
    doc = eng.get(job_id)
    for key, value in [
        ("priority", 3), ("retries", 2), ("retryWait", 10), ("after", T0 + 5), ("repeats", 1),
        ("repeatWait", 7), ("retried", 0),
    ]:  # fmt: skip
        assert doc[key] == value
        assert type(doc[key]) is int


def test_save_future_after_waits_then_becomes_ready(eng: Engine) -> None:
    job_id = eng.save(after=eng.now + 1500)
    doc = eng.get(job_id)
    assert (doc["status"], doc["after"]) == ("waiting", T0 + 1500)
    eng.advance(1499)
    eng.settle()
    assert eng.status(job_id) == "waiting"
    eng.advance(1)
    eng.wait_for(lambda: eng.status(job_id) == "ready")


def test_save_paused_is_not_readied(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    assert eng.messages(job_id) == ["Constructed", "Job Submitted"]


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (HALF_HOURLY, 0, T0_NEXT_HALF_HOUR),
        (HALF_HOURLY, T0_NEXT_HALF_HOUR, T0_NEXT_HALF_HOUR + 1_800_000),  # strictly later
        (HALF_HOURLY, T0_NEXT_HALF_HOUR - 1, T0_NEXT_HALF_HOUR),
        (
            {"schedules": [{"m": [0, 30]}], "exceptions": [{"h": [23]}]},
            T0_NEXT_HALF_HOUR,
            T0_NEXT_HALF_HOUR + 5_400_000,  # 23:00 and 23:30 skipped
        ),
        (parse_cron("*/15 * * * *"), 0, T0 + 100_000),  # 22:15:00
        (parse_cron("0 9 * * *"), 0, T0 + 38_800_000),  # 09:00 next day
        ({"schedules": [{"dw": [2]}]}, 0, 1_700_438_400_000),  # Monday 2023-11-20
    ],
)
def test_save_schedule_moves_after_to_next_occurrence(
    eng: Engine, schedule: dict[str, Any], after: int, expected: int
) -> None:
    job_id = eng.save(repeatWait=schedule, after=after, repeats=FOREVER)
    doc = eng.get(job_id)
    assert doc["after"] == expected
    assert doc["status"] == "waiting"


def test_save_schedule_is_stored_normalized(eng: Engine) -> None:
    job_id = eng.save(repeatWait={"schedules": [{"dw": [2.0]}], "error": -1})
    assert eng.get(job_id)["repeatWait"] == {"schedules": [{"d": [2]}], "exceptions": []}


@pytest.mark.parametrize(
    ("schedule", "repeat_until"),
    [
        ({"schedules": [{"Y": [2020]}]}, FOREVER_DATE),  # no occurrence at all
        (HALF_HOURLY, T0_NEXT_HALF_HOUR - 1),  # first occurrence after repeatUntil
    ],
)
def test_save_schedule_without_usable_occurrence_saves_nothing(
    eng: Engine, schedule: dict[str, Any], repeat_until: int
) -> None:
    eng.save("other")
    before = eng.snapshot()
    doc = eng.doc(repeatWait=schedule, repeatUntil=repeat_until)
    assert eng.call("jobSave", doc) is None
    assert eng.snapshot() == before


def test_save_schedule_occurrence_equal_to_repeat_until_is_saved(eng: Engine) -> None:
    doc = eng.doc(repeatWait=HALF_HOURLY, repeatUntil=T0_NEXT_HALF_HOUR)
    assert isinstance(eng.call("jobSave", doc), str)


@pytest.mark.parametrize("options", [[], [{}], [{"cancelRepeats": False}]])
def test_save_cancel_repeats_default_false(eng: Engine, options: list[object]) -> None:
    old = eng.save("rep", repeats=FOREVER)
    eng.call("jobSave", eng.doc("rep", repeats=FOREVER), *options)
    assert eng.status(old) == "ready"


def test_save_cancel_repeats_cancels_cancellable_jobs_of_same_type(eng: Engine) -> None:
    done, _ = eng.completed("rep")
    same = {"running": eng.in_status("running", "rep")[0]}
    same.update({s: eng.in_status(s, "rep")[0] for s in ("waiting", "paused", "ready")})
    other = eng.save("other")
    new_id = eng.call("jobSave", eng.doc("rep", repeats=FOREVER), {"cancelRepeats": True})
    assert isinstance(new_id, str)
    assert {s: eng.status(j) for s, j in same.items()} == dict.fromkeys(same, "cancelled")
    assert eng.status(done) == "completed"
    assert eng.status(other) == "ready"
    assert eng.status(new_id) == "ready"


def test_save_cancel_repeats_needs_forever_repeats(eng: Engine) -> None:
    old = eng.save("rep", repeats=FOREVER)
    eng.call("jobSave", eng.doc("rep", repeats=FOREVER - 1), {"cancelRepeats": True})
    assert eng.status(old) == "ready"


def test_save_cancel_repeats_counts_clamped_repeats_as_forever(eng: Engine) -> None:
    old = eng.save("rep", repeats=FOREVER)
    eng.call("jobSave", eng.doc("rep", repeats=FOREVER + 1), {"cancelRepeats": True})
    assert eng.status(old) == "cancelled"


def test_save_cancel_repeats_cascades_to_dependents(eng: Engine) -> None:
    old = eng.save("rep", repeats=FOREVER)
    dependent = eng.save("dep", depends=[old])
    eng.call("jobSave", eng.doc("rep", repeats=FOREVER), {"cancelRepeats": True})
    assert eng.status(dependent) == "cancelled"


# -- jobSave: paused re-save -----------------------------------------------------------------------


def test_resave_paused_updates_settings(eng: Engine) -> None:
    job_id = eng.save("email", {"v": 1}, status="paused")
    antecedent = eng.save("other")
    eng.advance(29)
    entry = {"time": 1, "runId": None, "level": "info", "message": "client entry"}
    doc = eng.doc(
        "renamed", {"v": 2}, _id=job_id, priority=7, retries=4, retried=3, retryWait=9,
        retryBackoff="exponential", retryUntil=eng.now + 100, repeats=6,
        repeatUntil=eng.now + 200, repeatWait=11, depends=[antecedent], after=eng.now + 50,
        resolved=["someOtherJob23456"], log=[entry], repeatRetries=8,
    )  # fmt: skip
    assert eng.call("jobSave", doc) == job_id
    stored = eng.get(job_id)
    expected_changes = {
        "status": "waiting", "data": {"v": 2}, "priority": 7, "retries": 4, "retryWait": 9,
        "retryBackoff": "exponential", "retryUntil": eng.now + 100, "repeats": 6,
        "repeatUntil": eng.now + 200, "repeatWait": 11, "depends": [antecedent],
        "after": eng.now + 50, "repeatRetries": 8, "updated": eng.now,
    }  # fmt: skip
    assert {k: stored[k] for k in expected_changes} == expected_changes
    # Ignored: type, resolved, log, retried, created.
    assert stored["type"] == "email"
    assert stored["resolved"] == []
    assert stored["retried"] == 0
    assert stored["created"] == T0
    assert stored["log"][-1] == {
        "time": eng.now,
        "runId": None,
        "level": "info",
        "message": "Job Resubmitted",
    }
    assert "client entry" not in [e["message"] for e in stored["log"]]


def test_resave_without_repeat_retries_uses_retries_plus_retried(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    doc = eng.doc(_id=job_id, retries=3, retried=2)
    del doc["repeatRetries"]
    assert eng.call("jobSave", doc) == job_id
    assert eng.get(job_id)["repeatRetries"] == 5


def test_resave_readies_due_job(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    eng.advance(5)
    assert eng.call("jobSave", eng.doc(_id=job_id)) == job_id
    doc = eng.get(job_id)
    assert (doc["status"], doc["after"]) == ("ready", eng.now)
    assert [e["message"] for e in doc["log"][-2:]] == ["Job Resubmitted", "Promoted to ready"]


def test_resave_clamps_times(eng: Engine) -> None:
    job_id = eng.save(status="paused", after=eng.now + 10_000)
    eng.advance(5)
    assert eng.call("jobSave", eng.doc(_id=job_id, after=0, retryUntil=0)) == job_id
    doc = eng.get(job_id)
    assert (doc["after"], doc["retryUntil"]) == (eng.now, eng.now)


def test_resave_paused_with_schedule(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    assert eng.call("jobSave", eng.doc(_id=job_id, repeatWait=HALF_HOURLY)) == job_id
    assert eng.get(job_id)["after"] == T0_NEXT_HALF_HOUR


def test_resave_with_schedule_without_occurrence_changes_nothing(eng: Engine) -> None:
    job_id = eng.save(status="paused")
    before = eng.snapshot()
    doc = eng.doc(_id=job_id, repeatWait={"schedules": [{"Y": [2020]}]})
    assert eng.call("jobSave", doc) is None
    assert eng.snapshot() == before


def test_resave_unknown_id_is_null(eng: Engine) -> None:
    eng.save()
    before = eng.snapshot()
    assert eng.call("jobSave", eng.doc(_id=MISSING)) is None
    assert eng.snapshot() == before


def test_resave_of_document_with_paused_status(eng: Engine) -> None:
    """The stored status must be paused; the re-saved document's own status may be paused too."""
    job_id = eng.save(status="paused")
    assert eng.call("jobSave", eng.doc(_id=job_id, status="paused")) == job_id
    assert eng.status(job_id) == "ready"


# -- jobRerun ------------------------------------------------------------------------------------


def test_rerun_copy_rules(eng: Engine) -> None:
    job_id = eng.save(
        "email", {"to": "x"}, priority=-10, retries=3, repeatRetries=3, retryWait=5,
        retryBackoff="exponential",
        retryUntil=eng.now + 10, repeats=2, repeatWait=7, repeatUntil=eng.now + 99_000,
    )  # fmt: skip
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.call("jobFail", job_id, run_id, {"value": "first"})
    eng.advance(5)
    eng.wait_for(lambda: eng.status(job_id) == "ready")
    run_id = eng.claim(job_id, workTimeout=1000)
    eng.call("jobProgress", job_id, run_id, 1, 3)
    eng.call("jobDone", job_id, run_id, {"r": 1})
    eng.set_fields(job_id, _private={"secret": [1]})
    old = eng.stored(job_id)
    old_repeats = eng.job_count()
    eng.advance(1000)
    new_id = eng.call("jobRerun", job_id)
    assert is_meteor_id(new_id)
    assert eng.job_count() == old_repeats + 1
    new = eng.stored(new_id)
    expected = {
        k: v
        for k, v in old.items()
        if k not in ("_id", "result", "failures", "expiresAfter", "workTimeout")
    }
    expected.update(
        _id=new_id, runId=None, status="ready", repeatRetries=3, retries=3, retried=0,
        retryUntil=T0 + 99_000, repeatUntil=T0 + 99_000, repeats=0,
        repeated=old["repeated"] + 1, created=eng.now, updated=eng.now,
        progress={"completed": 0, "total": 1, "percent": 0}, after=eng.now,
    )  # fmt: skip
    assert new == expected
    assert new["_private"] == {"secret": [1]}
    assert eng.log(new_id) == [
        {"time": eng.now, "runId": None, "level": "info", "message": "Rerunning job"},
        {"time": eng.now, "runId": None, "level": "info", "message": "Promoted to ready"},
    ]
    assert "_private" not in eng.get(new_id)


def test_rerun_repeat_retries_falls_back_to_retries_plus_retried(eng: Engine) -> None:
    doc = eng.doc(retries=3)
    del doc["repeatRetries"]
    job_id = eng.call("jobSave", doc)
    run_id = eng.claim(job_id)
    eng.call("jobDone", job_id, run_id, {})
    assert "repeatRetries" not in eng.get(job_id)
    new_id = eng.call("jobRerun", job_id)
    new = eng.get(new_id)
    assert (new["repeatRetries"], new["retries"]) == (3, 3)


def test_rerun_of_rerun_counts_repeated(eng: Engine) -> None:
    job_id, _ = eng.completed()
    second = eng.call("jobRerun", job_id)
    run_id = eng.claim(second)
    eng.call("jobDone", second, run_id, {})
    third = eng.call("jobRerun", second)
    assert [eng.get(i)["repeated"] for i in (job_id, second, third)] == [0, 1, 2]


@pytest.mark.parametrize(("wait", "status"), [(0, "ready"), (1, "waiting"), (60_000, "waiting")])
def test_rerun_wait_option(eng: Engine, wait: int, status: str) -> None:
    job_id, _ = eng.completed()
    eng.advance(3)
    new_id = eng.call("jobRerun", job_id, {"wait": wait})
    doc = eng.get(new_id)
    assert doc["status"] == status
    assert doc["after"] == eng.now + wait
    assert doc["repeats"] == 0  # default


def test_rerun_waiting_copy_becomes_ready_at_its_after(eng: Engine) -> None:
    job_id, _ = eng.completed()
    new_id = eng.call("jobRerun", job_id, {"wait": 250})
    eng.advance(250)
    eng.wait_for(lambda: eng.status(new_id) == "ready")


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        (T0, T0_NEXT_HALF_HOUR),
        (T0_NEXT_HALF_HOUR - 501, T0_NEXT_HALF_HOUR),  # now + 500 is before 22:30
        (T0_NEXT_HALF_HOUR - 500, T0_NEXT_HALF_HOUR + 1_800_000),  # strictly after now + 500
        (T0_NEXT_HALF_HOUR - 1, T0_NEXT_HALF_HOUR + 1_800_000),
    ],
)
def test_rerun_schedule_wait(eng: Engine, clock: int, expected: int) -> None:
    job_id, _ = eng.completed()
    eng.clock.set(clock)
    new_id = eng.call("jobRerun", job_id, {"wait": HALF_HOURLY})
    doc = eng.get(new_id)
    assert doc["after"] == expected
    assert doc["status"] == "waiting"
    assert doc["repeatWait"] == 300_000  # copied unchanged, not the rerun wait


def test_rerun_schedule_wait_without_occurrence_is_null(eng: Engine) -> None:
    job_id, _ = eng.completed()
    before = eng.snapshot()
    assert eng.call("jobRerun", job_id, {"wait": {"schedules": [{"Y": [2020]}]}}) is None
    assert eng.snapshot() == before


def test_rerun_until_option(eng: Engine) -> None:
    job_id, _ = eng.completed(retryUntil=eng.now + 5, repeatUntil=eng.now + 6)
    new_id = eng.call("jobRerun", job_id, {"wait": 0, "until": eng.now + 1234})
    doc = eng.get(new_id)
    assert (doc["retryUntil"], doc["repeatUntil"]) == (eng.now + 1234, eng.now + 1234)


def test_rerun_until_defaults_to_repeat_until(eng: Engine) -> None:
    job_id, _ = eng.completed(retryUntil=eng.now + 5, repeatUntil=eng.now + 6)
    new_id = eng.call("jobRerun", job_id, {"wait": 0})
    doc = eng.get(new_id)
    assert (doc["retryUntil"], doc["repeatUntil"]) == (T0 + 6, T0 + 6)


@pytest.mark.parametrize(("repeats", "stored"), [(0, 0), (3, 3), (FOREVER + 1, FOREVER)])
def test_rerun_repeats_option(eng: Engine, repeats: int, stored: int) -> None:
    job_id, _ = eng.completed(repeats=9)
    new_id = eng.call("jobRerun", job_id, {"repeats": repeats, "wait": 0})
    assert eng.get(new_id)["repeats"] == stored


def test_rerun_unknown_job_is_false(eng: Engine) -> None:
    assert eng.call("jobRerun", MISSING) is False
    assert eng.call("jobRerun", MISSING, {"wait": 0}) is False
