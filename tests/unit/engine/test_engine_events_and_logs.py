"""SPEC 3.5 (server-generated log entries), SPEC 5 (events and the call log stream) and SPEC 0/2
(times up to `foreverDate`, year 275760, round-tripping unchanged)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from engine_harness import SERVER_LOG_KEYS, T0, Engine

from jobcollection.core.constants import FOREVER, FOREVER_DATE
from jobcollection.core.ejson import CustomType, Date, to_ejson
from jobcollection.engine.events import CallEvent
from jobcollection.errors import JobCollectionError, JobValidationError

# -- SPEC 3.5: the exact server-generated log entries ----------------------------------------------

Expected = list[tuple[str, str, bool]]  # message, level, carries the run's runId
Scenario = Callable[[Engine], tuple[str, str | None, Expected]]  # job, runId, expected tail


def _insert(eng: Engine) -> tuple[str, str | None, Expected]:
    return eng.save(status="paused"), None, [("Job Submitted", "info", False)]


def _insert_ready(eng: Engine) -> tuple[str, str | None, Expected]:
    return (
        eng.save(),
        None,
        [("Job Submitted", "info", False), ("Promoted to ready", "info", False)],
    )


def _resave(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id = eng.save(status="paused")
    eng.advance(1)
    eng.call("jobSave", eng.doc(_id=job_id, after=eng.now + 1000))
    return job_id, None, [("Job Resubmitted", "info", False)]


def _ready(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id = eng.save(after=eng.now + 1000)
    eng.advance(1)
    eng.call("jobReady", job_id, {"time": eng.now + 1000})
    return job_id, None, [("Promoted to ready", "info", False)]


def _ready_by_sweep(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id = eng.save(after=eng.now + 1000)
    eng.advance(1000)
    eng.m.sweep()
    return job_id, None, [("Promoted to ready", "info", False)]


def _force(eng: Engine) -> tuple[str, str | None, Expected]:
    antecedent = eng.save("other")
    job_id = eng.save(depends=[antecedent])
    eng.advance(1)
    eng.call("jobReady", job_id, {"force": True})
    return (
        job_id,
        None,
        [("Dependencies force resolved", "warning", False), ("Promoted to ready", "info", False)],
    )


def _claim(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id = eng.save()
    eng.advance(1)
    return job_id, eng.claim(job_id), [("Job Running", "info", True)]


def _pause(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id = eng.save()
    eng.advance(1)
    eng.call("jobPause", job_id)
    return job_id, None, [("Job Paused", "info", False)]


def _resume(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id = eng.save(status="paused", after=eng.now + 1000)
    eng.advance(1)
    eng.call("jobResume", job_id)
    return job_id, None, [("Job Resumed", "info", False)]


def _cancel(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id, _ = eng.running()
    eng.advance(1)
    eng.call("jobCancel", job_id)
    return job_id, None, [("Job Cancelled", "warning", False)]


def _restart(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id, _ = eng.failed()  # after = now + retryWait: not due after the restart
    eng.advance(1)
    eng.call("jobRestart", job_id)
    return job_id, None, [("Job Restarted", "info", False)]


def _done(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id, run_id = eng.running()
    eng.advance(1)
    eng.call("jobDone", job_id, run_id, {})
    return job_id, run_id, [("Job Completed", "success", True)]


def _fail_retry(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id, run_id = eng.running(retries=2)
    eng.advance(1)
    eng.call("jobFail", job_id, run_id, {"value": "oops"})
    return job_id, run_id, [("Job Failed with Error: oops.", "warning", True)]


def _fail_final(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id, run_id = eng.running()
    eng.advance(1)
    eng.call("jobFail", job_id, run_id, {"value": "oops"})
    return job_id, run_id, [("Job Failed with Fatal Error: oops.", "danger", True)]


def _rerun(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id, _ = eng.completed()
    eng.advance(1)
    return eng.call("jobRerun", job_id, {"wait": 10}), None, [("Rerunning job", "info", False)]


def _repeat(eng: Engine) -> tuple[str, str | None, Expected]:
    job_id, run_id = eng.running(repeats=1, repeatWait=10)
    eng.advance(1)
    new_id = eng.call("jobDone", job_id, run_id, {}, {"repeatId": True})
    return new_id, None, [("Rerunning job", "info", False)]


def _dependency_done(eng: Engine) -> tuple[str, str | None, Expected]:
    antecedent, run_id = eng.running("other")
    job_id = eng.save(depends=[antecedent], after=eng.now + 1000)
    eng.advance(1)
    eng.call("jobDone", antecedent, run_id, {})
    return job_id, None, [("Dependency resolved", "info", False)]


SCENARIOS: dict[str, Scenario] = {
    "insert": _insert,
    "insert-ready": _insert_ready,
    "paused-resave": _resave,
    "ready": _ready,
    "ready-by-sweep": _ready_by_sweep,
    "ready-force": _force,
    "claim": _claim,
    "pause": _pause,
    "resume": _resume,
    "cancel": _cancel,
    "restart": _restart,
    "done": _done,
    "fail": _fail_retry,
    "fail-final": _fail_final,
    "rerun": _rerun,
    "repeat": _repeat,
    "dependency-done": _dependency_done,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_server_log_entries(eng: Engine, scenario: str) -> None:
    job_id, run_id, expected = SCENARIOS[scenario](eng)
    log = eng.log(job_id)
    tail = log[-len(expected) :]
    assert tail == [
        {"time": eng.now, "runId": run_id if with_run else None, "level": level, "message": msg}
        for msg, level, with_run in expected
    ]
    for entry in tail:
        assert set(entry) == SERVER_LOG_KEYS  # exactly these keys, no `data`
    if scenario in ("rerun", "repeat"):
        assert log == tail  # a copy's log starts afresh


# -- SPEC 5: events --------------------------------------------------------------------------------


def _state(eng: Engine) -> dict[str, Any]:
    running, run_id = eng.running("run")
    completed, _ = eng.completed("done")
    failed, _ = eng.failed("bad")
    return {
        "ready": eng.save("t"),
        "paused": eng.save("p", status="paused"),
        "running": running,
        "run": run_id,
        "completed": completed,
        "failed": failed,
    }


VALID: dict[str, Callable[[Engine, dict[str, Any]], list[object]]] = {
    "startJobServer": lambda e, s: [{}],
    "startJobs": lambda e, s: [],
    "shutdownJobServer": lambda e, s: [{"timeout": 1000}],
    "stopJobs": lambda e, s: [{"timeout": 1000}],
    "getJob": lambda e, s: [s["ready"], {"getLog": True}],
    "getWork": lambda e, s: ["t", {"maxJobs": 1}],
    "jobRemove": lambda e, s: [s["completed"]],
    "jobPause": lambda e, s: [s["ready"], {}],
    "jobResume": lambda e, s: [s["paused"]],
    "jobReady": lambda e, s: [[], {}],
    "jobCancel": lambda e, s: [s["ready"]],
    "jobRestart": lambda e, s: [s["failed"], {"retries": 1}],
    "jobSave": lambda e, s: [e.doc()],
    "jobRerun": lambda e, s: [s["completed"], {"wait": 0}],
    "jobProgress": lambda e, s: [s["running"], s["run"], 1, 2],
    "jobLog": lambda e, s: [s["ready"], None, "m"],
    "jobDone": lambda e, s: [s["running"], s["run"], {"r": Date(FOREVER_DATE)}],
    "jobFail": lambda e, s: [s["running"], s["run"], {"value": "e"}],
}

INVALID: dict[str, Callable[[dict[str, Any]], list[object]]] = {
    "startJobServer": lambda s: [None],
    "startJobs": lambda s: [{"x": 1}],
    "shutdownJobServer": lambda s: [{"timeout": 0}],
    "stopJobs": lambda s: [None],
    "getJob": lambda s: [5],
    "getWork": lambda s: [5],
    "jobRemove": lambda s: [5],
    "jobPause": lambda s: [[s["ready"], 5]],
    "jobResume": lambda s: [s["paused"], None],
    "jobReady": lambda s: [[], {"force": "yes"}],
    "jobCancel": lambda s: [s["ready"], {"antecedents": None}],
    "jobRestart": lambda s: [s["failed"], {"retries": -1}],
    "jobSave": lambda s: [{"type": "t"}],
    "jobRerun": lambda s: [s["completed"], {}],
    "jobProgress": lambda s: [s["running"], s["run"], 2, 1],
    "jobLog": lambda s: [s["ready"], None, 5],
    "jobDone": lambda s: [s["running"], s["run"], "done"],
    "jobFail": lambda s: [s["running"], s["run"], "boom"],
}


def _record(eng: Engine, method: str) -> list[tuple[str, CallEvent]]:
    seen: list[tuple[str, CallEvent]] = []

    def listener(name: str) -> Callable[[CallEvent], None]:
        return lambda event: seen.append((name, event))

    for name in ("call", "error", method):
        eng.m.events.on(name, listener(name))
    return seen


@pytest.mark.parametrize("method", list(VALID))
def test_success_emits_call_then_method_event(eng: Engine, method: str) -> None:
    state = _state(eng)
    params = VALID[method](eng, state)
    seen = _record(eng, method)
    result = eng.m.call(method, params)
    assert [name for name, _ in seen] == ["call", method]
    event = seen[0][1]
    assert seen[1][1] == event
    assert event.method == method
    assert event.params == params
    assert event.return_value == result
    assert event.error is None
    assert event.user_id is None
    assert event.connection is None


@pytest.mark.parametrize("method", list(INVALID))
def test_error_emits_error_then_method_event_with_real_params(eng: Engine, method: str) -> None:
    state = _state(eng)
    params = INVALID[method](state)
    seen = _record(eng, method)
    with pytest.raises(JobValidationError) as info:
        eng.m.call(method, params)
    assert [name for name, _ in seen] == ["error", method]
    event = seen[0][1]
    assert seen[1][1] == event
    assert event.method == method
    assert event.params == params
    assert event.params != []
    assert event.error is info.value
    assert event.return_value is None


def test_events_carry_user_and_connection(eng: Engine) -> None:
    seen = _record(eng, "getJob")
    handle = object()
    eng.m.call("getJob", [[]], user_id="user1", connection=handle)
    event = seen[0][1]
    assert (event.user_id, event.connection) == ("user1", handle)


def test_event_listener_can_be_removed(eng: Engine) -> None:
    seen: list[CallEvent] = []
    off = eng.m.events.on("call", seen.append)
    eng.call("getJob", [])
    off()
    eng.call("getJob", [])
    assert len(seen) == 1


def test_failing_listener_does_not_break_the_call(eng: Engine) -> None:
    def broken(_: CallEvent) -> None:
        raise RuntimeError("listener bug")

    eng.m.events.on("call", broken)
    assert isinstance(eng.save(), str)


def test_events_of_other_methods_are_not_emitted(eng: Engine) -> None:
    seen = _record(eng, "jobSave")
    eng.call("getJob", [])
    assert [name for name, _ in seen] == ["call"]


# -- SPEC 5: the call log stream -------------------------------------------------------------------


class Stream:
    def __init__(self) -> None:
        self.text = ""
        self.ended = 0

    def write(self, text: str) -> None:
        self.text += text

    def end(self) -> None:
        self.ended += 1


def _lines(stream: Stream) -> list[list[str]]:
    return [line.split(", ", 3) for line in stream.text.splitlines()]


def test_call_log_success_lines(eng: Engine) -> None:
    stream = Stream()
    eng.m.set_log_stream(stream)
    doc = eng.doc(after=Date(FOREVER_DATE))
    job_id = eng.call("jobSave", doc)
    params_line, returned_line = _lines(stream)
    assert params_line[1:3] == ["[SERVER]", "jobSave"]
    assert params_line[0]
    assert params_line[3].startswith("params: ")
    assert json.loads(params_line[3].removeprefix("params: ")) == to_ejson([doc])
    assert '{"$date": 8640000000000000}' in params_line[3]
    assert returned_line[1:3] == ["[SERVER]", "jobSave"]
    assert json.loads(returned_line[3].removeprefix("returned: ")) == job_id


def test_call_log_returned_null_and_lists(eng: Engine) -> None:
    stream = Stream()
    eng.m.set_log_stream(stream)
    eng.call("getJob", [])
    eng.call("getWork", "t")
    lines = _lines(stream)
    assert [line[3] for line in lines] == [
        "params: [[]]",
        "returned: null",
        'params: ["t"]',
        "returned: []",
    ]


def test_call_log_error_line(eng: Engine) -> None:
    stream = Stream()
    eng.m.set_log_stream(stream)
    with pytest.raises(JobValidationError) as info:
        eng.call("getWork", "t", {"maxJobs": 0})
    [line] = _lines(stream)
    assert line[1:3] == ["[SERVER]", "getWork"]
    assert line[3] == str(info.value)
    assert "maxJobs" in line[3]


@pytest.mark.parametrize(
    ("user_id", "connection", "shown"),
    [(None, None, "[SERVER]"), ("user1", object(), "user1"), (None, object(), "[UNAUTHENTICATED]")],
)
def test_call_log_user_column(
    eng: Engine, user_id: str | None, connection: object | None, shown: str
) -> None:
    stream = Stream()
    eng.m.set_log_stream(stream)
    eng.m.call("getJob", [[]], user_id=user_id, connection=connection)
    assert {line[1] for line in _lines(stream)} == {shown}


def test_call_log_server_side_call_with_user_id_shows_server(eng: Engine) -> None:
    stream = Stream()
    eng.m.set_log_stream(stream)
    eng.m.call("getJob", [[]], user_id="user1", connection=None)
    assert {line[1] for line in _lines(stream)} == {"[SERVER]"}


def test_call_log_stream_can_be_set_once(eng: Engine) -> None:
    eng.m.set_log_stream(Stream())
    with pytest.raises(JobCollectionError):
        eng.m.set_log_stream(Stream())


def test_call_log_stream_must_be_writable(eng: Engine) -> None:
    with pytest.raises(JobCollectionError):
        eng.m.set_log_stream(object())  # type: ignore[arg-type]


def test_no_call_log_without_stream(eng: Engine) -> None:
    stream = Stream()
    eng.call("getJob", [])
    eng.m.set_log_stream(stream)
    assert stream.text == ""


# -- SPEC 0 / 2: times at year 275760 --------------------------------------------------------------


def test_forever_date_job_times_round_trip(eng: Engine) -> None:
    job_id = eng.save(
        after=FOREVER_DATE, retryUntil=FOREVER_DATE, repeatUntil=FOREVER_DATE, retries=FOREVER,
        repeats=FOREVER, updated=FOREVER_DATE,
    )  # fmt: skip
    doc = eng.get(job_id)
    assert (doc["status"], doc["after"], doc["updated"]) == ("waiting", FOREVER_DATE, FOREVER_DATE)
    assert (doc["retryUntil"], doc["repeatUntil"]) == (FOREVER_DATE, FOREVER_DATE)
    assert (doc["retries"], doc["repeats"]) == (FOREVER, FOREVER)
    for key in ("after", "retryUntil", "repeatUntil", "retries", "repeats"):
        assert type(doc[key]) is int


def test_forever_date_as_ejson_date_input(eng: Engine) -> None:
    job_id = eng.save(after=Date(FOREVER_DATE), repeatUntil=Date(FOREVER_DATE))
    doc = eng.get(job_id)
    assert (doc["after"], doc["repeatUntil"]) == (FOREVER_DATE, FOREVER_DATE)


def test_forever_date_job_is_claimed_with_its_after(eng: Engine) -> None:
    job_id = eng.save(after=FOREVER_DATE)
    assert eng.call("jobReady", [], {"time": FOREVER_DATE}) is True  # empty ids: after kept
    [doc] = eng.work()
    assert (doc["_id"], doc["after"]) == (job_id, FOREVER_DATE)


def test_forever_date_in_user_data_round_trips(eng: Engine) -> None:
    data = {"at": Date(FOREVER_DATE), "before": Date(-FOREVER_DATE), "list": [Date(0)]}
    job_id, run_id = eng.running(data=data)
    assert eng.get(job_id)["data"] == data
    eng.call("jobLog", job_id, run_id, "m", {"data": {"when": Date(FOREVER_DATE)}})
    assert eng.log(job_id)[-1]["data"] == {"when": Date(FOREVER_DATE)}
    eng.call("jobFail", job_id, run_id, {"value": "v", "at": Date(FOREVER_DATE)}, {"fatal": True})
    assert eng.get(job_id)["failures"] == [
        {"value": "v", "at": Date(FOREVER_DATE), "runId": run_id}
    ]


def test_ejson_user_values_round_trip(eng: Engine) -> None:
    data = {
        "inf": math.inf,
        "bytes": b"\x00\xff",
        "oid": CustomType("oid", "0123456789abcdef01234567"),
        "looks_like_date": {"$date": 5},
        "looks_escaped": {"$escape": {"a": 1}},
        "date": Date(-1),
    }
    job_id, run_id = eng.running(data=data)
    assert eng.get(job_id)["data"] == data
    [doc] = [d for d in eng.m.find() if d["_id"] == job_id]
    assert doc["data"] == data
    eng.call("jobDone", job_id, run_id, data)
    assert eng.get(job_id)["result"] == data


def test_forever_date_in_result_round_trips(eng: Engine) -> None:
    job_id, run_id = eng.running()
    eng.call("jobDone", job_id, run_id, {"until": Date(FOREVER_DATE)})
    assert eng.get(job_id)["result"] == {"until": Date(FOREVER_DATE)}


def test_forever_date_in_client_log_round_trips(eng: Engine) -> None:
    entry = {"time": FOREVER_DATE, "runId": None, "level": "info", "message": "far"}
    job_id = eng.save(status="paused", log=[entry])
    assert eng.log(job_id)[0] == entry


def test_forever_date_in_restart_and_rerun_until(eng: Engine) -> None:
    failed, _ = eng.failed("a")
    eng.call("jobRestart", failed, {"until": Date(FOREVER_DATE)})
    assert eng.get(failed)["retryUntil"] == FOREVER_DATE
    completed, _ = eng.completed("b", repeatUntil=T0 + 5)
    new_id = eng.call("jobRerun", completed, {"wait": 0, "until": FOREVER_DATE})
    doc = eng.get(new_id)
    assert (doc["retryUntil"], doc["repeatUntil"]) == (FOREVER_DATE, FOREVER_DATE)


def test_clock_at_forever_date(db: str) -> None:
    """A server whose clock reads the last JS date still saves and runs jobs."""
    eng = Engine(db, start_ms=FOREVER_DATE - 1000)
    try:
        eng.call("startJobServer")
        job_id, run_id = eng.running(retries=2, retryWait=2000)
        doc = eng.get(job_id)
        assert (doc["created"], doc["after"]) == (FOREVER_DATE - 1000, FOREVER_DATE - 1000)
        eng.call("jobFail", job_id, run_id, {})
        doc = eng.get(job_id)  # now + 2000 is past foreverDate: failed for good
        assert (doc["status"], doc["after"]) == ("failed", FOREVER_DATE)
    finally:
        eng.close()
