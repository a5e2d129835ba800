"""SPEC 0, 1 and 4: every invalid input to every method raises `JobValidationError` naming the
field, and leaves the stored data byte-for-byte unchanged (documents, logs, failures, raw rows)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from engine_harness import Engine, Snapshot

from jobcollection.core.constants import FOREVER, FOREVER_DATE
from jobcollection.core.ejson import Date
from jobcollection.errors import JobValidationError
from storage_support import Databases

NAN = math.nan
INF = math.inf


@dataclass
class Ctx:
    """A populated collection: one job in each interesting status."""

    eng: Engine
    ready: str
    paused: str
    running: str
    run_id: str
    completed: str
    failed: str

    def doc(self, **changes: Any) -> dict[str, Any]:
        doc = self.eng.doc("t")
        doc.update(changes)
        return doc

    def doc_without(self, key: str) -> dict[str, Any]:
        doc = self.doc()
        del doc[key]
        return doc


def _populate(eng: Engine) -> Ctx:
    running, run_id = eng.running("run", retries=3, retryWait=0)
    eng.call("jobFail", running, run_id, {"value": "first"})
    run_id = eng.claim(running, workTimeout=60_000)
    eng.call("jobLog", running, run_id, "working", {"data": {"d": Date(FOREVER_DATE)}})
    completed, _ = eng.completed("done")
    failed, _ = eng.failed("bad")
    return Ctx(
        eng=eng,
        ready=eng.save("t", priority=-3),
        paused=eng.save("t", status="paused"),
        running=running,
        run_id=run_id,
        completed=completed,
        failed=failed,
    )


@pytest.fixture(scope="module")
def shared(module_dbs: Databases) -> Iterator[tuple[Ctx, Snapshot]]:
    """One populated collection for all rejection rows, and its snapshot. A rejected call changes
    nothing (which each row checks against this snapshot), so the rows can share it."""
    eng = Engine(module_dbs("validation"))
    try:
        eng.call("startJobServer")
        ctx = _populate(eng)
        yield ctx, eng.snapshot()
    finally:
        eng.close()


@pytest.fixture
def ctx(eng: Engine) -> Ctx:
    return _populate(eng)


Build = Callable[[Ctx], list[object]]
Row = tuple[str, Build, str]  # method, params builder, expected field


def _bulk_rows(method: str) -> list[Row]:
    return [
        (method, lambda c: [], "ids"),
        (method, lambda c: [None], "ids"),
        (method, lambda c: [5], "ids"),
        (method, lambda c: [True], "ids"),
        (method, lambda c: [""], "ids"),
        (method, lambda c: [{"_id": c.ready}], "ids"),
        (method, lambda c: [[c.ready, 5]], "ids[1]"),
        (method, lambda c: [[c.ready, None]], "ids[1]"),
        (method, lambda c: [[""]], "ids[0]"),
        (method, lambda c: [c.ready, None], "options"),
        (method, lambda c: [c.ready, []], "options"),
        (method, lambda c: [c.ready, "x"], "options"),
        (method, lambda c: [c.ready, {"x": 1}], "options.x"),
    ]


def _append(first: Build, *tail: object) -> Build:
    """Params: what `first` builds, then fixed values."""

    def build(c: Ctx) -> list[object]:
        return [*first(c), *tail]

    return build


def _doc_with(**changes: object) -> Build:
    def build(c: Ctx) -> list[object]:
        return [c.doc(**changes)]

    return build


def _doc_without(key: str) -> Build:
    def build(c: Ctx) -> list[object]:
        return [c.doc_without(key)]

    return build


def _nothing(c: Ctx) -> list[object]:
    return []


def _ready(c: Ctx) -> list[object]:
    return [c.ready]


def _failed(c: Ctx) -> list[object]:
    return [c.failed]


def _completed(c: Ctx) -> list[object]:
    return [c.completed]


def _run(c: Ctx) -> list[object]:
    return [c.running, c.run_id]


def _log_args(c: Ctx) -> list[object]:
    return [c.ready, None, "m"]


BAD_COMPLETED: tuple[object, ...] = (None, -1, -0.5, True, "1", NAN, INF, -INF, [])
BAD_TOTAL: tuple[object, ...] = (None, 0, 0.0, -1, True, "1", NAN, INF, [])
BAD_LEVELS: tuple[object, ...] = (None, "debug", "INFO", 1, True)
BAD_DATA: tuple[object, ...] = (None, [], "x", 1, True)
BAD_BOOLS: tuple[object, ...] = (None, 1, 0, "true", [], {})
BAD_TIMES: tuple[object, ...] = (
    None, "2020-01-01", True, 1.5, NAN, INF, {}, FOREVER_DATE + 1, -FOREVER_DATE - 1,
    Date(FOREVER_DATE + 1),
)  # fmt: skip


def _bad_ints(minimum: int) -> tuple[object, ...]:
    return (None, minimum - 1, 1.5, True, False, "1", NAN, INF, -INF, [], {})


def _options_rows(method: str, first: Build) -> list[Row]:
    """Options must be an object; null or anything else fails."""
    return [
        (method, _append(first, None), "options"),
        (method, _append(first, [1]), "options"),
        (method, _append(first, 1), "options"),
        (method, _append(first, {"unknownOption": True}), "options.unknownOption"),
    ]


def _bool_rows(method: str, first: Build, key: str) -> list[Row]:
    return [(method, _append(first, {key: v}), f"options.{key}") for v in BAD_BOOLS]


def _time_rows(method: str, first: Build, key: str) -> list[Row]:
    return [(method, _append(first, {key: v}), f"options.{key}") for v in BAD_TIMES]


def _int_rows(method: str, first: Build, key: str, minimum: int) -> list[Row]:
    return [(method, _append(first, {key: v}), f"options.{key}") for v in _bad_ints(minimum)]


def _wait_values() -> list[tuple[object, str]]:
    """Invalid `repeatWait` / rerun `wait` values and the field suffix each one names."""
    values: list[tuple[object, str]] = [
        (-1, ""),
        (1.5, ""),
        (True, ""),
        ("300", ""),
        (NAN, ""),
        (INF, ""),
        ([], ""),
        ({}, ".schedules"),
        ({"schedules": "x"}, ".schedules"),
        ({"schedules": [1]}, ".schedules[0]"),
        ({"schedules": [{"zz": [1]}]}, ".schedules[0].zz"),
        ({"schedules": [{"m_c": [1]}]}, ".schedules[0].m_c"),
        ({"schedules": [{"m": 5}]}, ".schedules[0].m"),
        ({"schedules": [{"m": []}]}, ".schedules[0].m"),
        ({"schedules": [{"m": ["5"]}]}, ".schedules[0].m[0]"),
        ({"schedules": [{"m": [True]}]}, ".schedules[0].m[0]"),
        ({"schedules": [], "exceptions": "x"}, ".exceptions"),
        ({"schedules": [], "exceptions": [{"q": [1]}]}, ".exceptions[0].q"),
        ({"schedules": [], "extra": 1}, ".extra"),
        (None, ""),
    ]
    return values


def _doc_rows() -> list[Row]:
    rows: list[Row] = [
        ("jobSave", lambda c: [], "doc"),
        ("jobSave", lambda c: [None], "doc"),
        ("jobSave", lambda c: [[]], "doc"),
        ("jobSave", lambda c: ["doc"], "doc"),
        ("jobSave", lambda c: [c.doc(), None], "options"),
        ("jobSave", lambda c: [c.doc(), {"cancelRepeats": 1}], "options.cancelRepeats"),
        ("jobSave", lambda c: [c.doc(), {"cancelRepeats": None}], "options.cancelRepeats"),
        ("jobSave", lambda c: [c.doc(), {"x": True}], "options.x"),
    ]
    required = (
        "runId", "type", "status", "data", "priority", "depends", "resolved", "after",
        "updated", "progress", "retries", "retried", "retryUntil", "retryWait",
        "retryBackoff", "repeats", "repeated", "repeatUntil", "repeatWait", "created",
    )  # fmt: skip
    rows += [("jobSave", _doc_without(k), f"doc.{k}") for k in required]
    optional_not_null = (
        "result", "failures", "workTimeout", "expiresAfter", "log", "repeatRetries",
    )  # fmt: skip
    rows += [("jobSave", _doc_with(**{k: None}), f"doc.{k}") for k in optional_not_null]
    bad: list[tuple[str, object, str]] = [
        ("_private", {}, "doc._private"),
        ("unknownKey", 1, "doc.unknownKey"),
        ("_id", 5, "doc._id"),
        ("_id", "", "doc._id"),
        ("runId", 5, "doc.runId"),
        ("type", "", "doc.type"),
        ("type", 5, "doc.type"),
        ("type", None, "doc.type"),
        ("status", "ready", "doc.status"),
        ("status", "running", "doc.status"),
        ("status", "completed", "doc.status"),
        ("status", "bogus", "doc.status"),
        ("status", None, "doc.status"),
        ("data", [], "doc.data"),
        ("data", None, "doc.data"),
        ("data", "x", "doc.data"),
        ("result", [], "doc.result"),
        ("failures", "x", "doc.failures"),
        ("failures", ["x"], "doc.failures[0]"),
        ("priority", 2**31, "doc.priority"),
        ("priority", -(2**31) - 1, "doc.priority"),
        ("priority", 1.5, "doc.priority"),
        ("priority", True, "doc.priority"),
        ("priority", "high", "doc.priority"),
        ("priority", NAN, "doc.priority"),
        ("depends", "x", "doc.depends"),
        ("depends", [5], "doc.depends[0]"),
        ("depends", [None], "doc.depends[0]"),
        ("resolved", [None], "doc.resolved[0]"),
        ("resolved", None, "doc.resolved"),
        ("after", "x", "doc.after"),
        ("after", True, "doc.after"),
        ("after", 1.5, "doc.after"),
        ("after", NAN, "doc.after"),
        ("after", INF, "doc.after"),
        ("after", None, "doc.after"),
        ("after", FOREVER_DATE + 1, "doc.after"),
        ("updated", "x", "doc.updated"),
        ("created", None, "doc.created"),
        ("retryUntil", FOREVER_DATE + 1, "doc.retryUntil"),
        ("repeatUntil", -FOREVER_DATE - 1, "doc.repeatUntil"),
        ("expiresAfter", "x", "doc.expiresAfter"),
        ("workTimeout", 0, "doc.workTimeout"),
        ("workTimeout", 1.5, "doc.workTimeout"),
        ("log", "x", "doc.log"),
        ("log", [None], "doc.log[0]"),
        ("log", [{"time": 1, "runId": None, "level": "info"}], "doc.log[0].message"),
        ("log", [{"time": 1, "level": "info", "message": "m"}], "doc.log[0].runId"),
        ("log", [{"runId": None, "level": "info", "message": "m"}], "doc.log[0].time"),
        ("log", [{"time": 1, "runId": None, "level": "debug", "message": "m"}], "doc.log[0].level"),
        ("log", [{"time": 1, "runId": None, "level": "info", "message": 5}], "doc.log[0].message"),
        (
            "log",
            [{"time": 1, "runId": None, "level": "info", "message": "m", "data": []}],
            "doc.log[0].data",
        ),
        (
            "log",
            [{"time": 1, "runId": None, "level": "info", "message": "m", "x": 1}],
            "doc.log[0].x",
        ),
        ("progress", None, "doc.progress"),
        ("progress", {"completed": 0, "total": 1}, "doc.progress.percent"),
        ("progress", {"completed": -1, "total": 1, "percent": 0}, "doc.progress.completed"),
        ("progress", {"completed": 0, "total": "1", "percent": 0}, "doc.progress.total"),
        ("progress", {"completed": 0, "total": 1, "percent": NAN}, "doc.progress.percent"),
        ("progress", {"completed": 0, "total": 1, "percent": 0, "x": 0}, "doc.progress.x"),
        ("retries", -1, "doc.retries"),
        ("retries", 1.5, "doc.retries"),
        ("retries", True, "doc.retries"),
        ("retries", NAN, "doc.retries"),
        ("retries", INF, "doc.retries"),
        ("retries", "1", "doc.retries"),
        ("retried", -1, "doc.retried"),
        ("retried", FOREVER + 1, "doc.retried"),
        ("repeatRetries", -1, "doc.repeatRetries"),
        ("retryWait", -1, "doc.retryWait"),
        ("retryWait", 0.5, "doc.retryWait"),
        ("retryWait", None, "doc.retryWait"),
        ("retryBackoff", "linear", "doc.retryBackoff"),
        ("retryBackoff", None, "doc.retryBackoff"),
        ("repeats", -1, "doc.repeats"),
        ("repeats", False, "doc.repeats"),
        ("repeated", 0.5, "doc.repeated"),
    ]
    rows += [("jobSave", _doc_with(**{k: v}), f) for k, v, f in bad]
    rows += [
        ("jobSave", _doc_with(repeatWait=v), f"doc.repeatWait{suffix}")
        for v, suffix in _wait_values()
    ]
    # Re-saving a paused job goes through the same validation.
    rows += [
        ("jobSave", lambda c: [c.doc(_id=c.paused, priority=1.5)], "doc.priority"),
        ("jobSave", lambda c: [c.doc(_id=c.paused, status="ready")], "doc.status"),
        ("jobSave", lambda c: [c.doc(_id=c.paused, _private=1)], "doc._private"),
    ]
    return rows


ROWS: list[Row] = [
    # unknown method
    ("noSuchMethod", lambda c: [], "method"),
    ("", lambda c: [], "method"),
    # startJobServer / startJobs
    *_options_rows("startJobServer", lambda c: []),
    ("startJobServer", lambda c: [{"timeout": 1}], "options.timeout"),
    *_options_rows("startJobs", lambda c: []),
    # shutdownJobServer / stopJobs
    *_options_rows("shutdownJobServer", lambda c: []),
    *_int_rows("shutdownJobServer", lambda c: [], "timeout", 1),
    ("shutdownJobServer", lambda c: [{"timeout": -5}], "options.timeout"),
    *_int_rows("stopJobs", lambda c: [], "timeout", 1),
    # getJob
    ("getJob", lambda c: [], "ids"),
    ("getJob", lambda c: [None], "ids"),
    ("getJob", lambda c: [5], "ids"),
    ("getJob", lambda c: [""], "ids"),
    ("getJob", lambda c: [[c.ready, 5]], "ids[1]"),
    ("getJob", lambda c: [{"_id": c.ready}], "ids"),
    *_options_rows("getJob", lambda c: [c.ready]),
    *_bool_rows("getJob", lambda c: [c.ready], "getLog"),
    *_bool_rows("getJob", lambda c: [c.ready], "getFailures"),
    # getWork
    ("getWork", lambda c: [], "type"),
    ("getWork", lambda c: [None], "type"),
    ("getWork", lambda c: [5], "type"),
    ("getWork", lambda c: [{"type": "t"}], "type"),
    ("getWork", lambda c: [["t", 5]], "type[1]"),
    ("getWork", lambda c: [["t", None]], "type[1]"),
    *_options_rows("getWork", lambda c: ["t"]),
    *_int_rows("getWork", lambda c: ["t"], "maxJobs", 1),
    *_int_rows("getWork", lambda c: ["t"], "workTimeout", 1),
    ("getWork", lambda c: ["t", {"maxJobs": 1, "workTimeout": -1}], "options.workTimeout"),
    # jobRemove, jobPause, jobResume
    *_bulk_rows("jobRemove"),
    *_bulk_rows("jobPause"),
    *_bulk_rows("jobResume"),
    # jobReady
    *_bulk_rows("jobReady"),
    *_bool_rows("jobReady", lambda c: [c.ready], "force"),
    *_time_rows("jobReady", lambda c: [[]], "time"),
    # jobCancel
    *_bulk_rows("jobCancel"),
    *_bool_rows("jobCancel", lambda c: [c.ready], "antecedents"),
    *_bool_rows("jobCancel", lambda c: [c.ready], "dependents"),
    # jobRestart
    *_bulk_rows("jobRestart"),
    *_int_rows("jobRestart", lambda c: [c.failed], "retries", 0),
    *_time_rows("jobRestart", lambda c: [c.failed], "until"),
    *_bool_rows("jobRestart", lambda c: [c.failed], "antecedents"),
    *_bool_rows("jobRestart", lambda c: [c.failed], "dependents"),
    # jobSave
    *_doc_rows(),
    # jobRerun
    ("jobRerun", lambda c: [], "id"),
    ("jobRerun", lambda c: [None], "id"),
    ("jobRerun", lambda c: [5], "id"),
    ("jobRerun", lambda c: [""], "id"),
    ("jobRerun", lambda c: [[c.completed]], "id"),
    *_options_rows("jobRerun", lambda c: [c.completed]),
    ("jobRerun", lambda c: [c.completed, {}], "options.wait"),
    ("jobRerun", lambda c: [c.completed, {"repeats": 1}], "options.wait"),
    ("jobRerun", lambda c: [c.completed, {"until": 1, "repeats": 1}], "options.wait"),
    *[
        ("jobRerun", _append(_completed, {"wait": 0, "repeats": v}), "options.repeats")
        for v in _bad_ints(0)
    ],
    *[
        ("jobRerun", _append(_completed, {"wait": 0, "until": v}), "options.until")
        for v in BAD_TIMES
    ],
    *[
        ("jobRerun", _append(_completed, {"wait": v}), f"options.wait{suffix}")
        for v, suffix in _wait_values()
    ],
    # jobProgress
    ("jobProgress", lambda c: [], "id"),
    ("jobProgress", lambda c: [None, c.run_id, 0, 1], "id"),
    ("jobProgress", lambda c: [5, c.run_id, 0, 1], "id"),
    ("jobProgress", lambda c: [c.running], "runId"),
    ("jobProgress", lambda c: [c.running, None, 0, 1], "runId"),
    ("jobProgress", lambda c: [c.running, 5, 0, 1], "runId"),
    ("jobProgress", lambda c: [c.running, "", 0, 1], "runId"),
    ("jobProgress", lambda c: _run(c), "completed"),
    ("jobProgress", lambda c: [*_run(c), 0], "total"),
    *[("jobProgress", _append(_run, v, 10), "completed") for v in BAD_COMPLETED],
    *[("jobProgress", _append(_run, 0, v), "total") for v in BAD_TOTAL],
    ("jobProgress", lambda c: [*_run(c), 2, 1], "completed"),
    ("jobProgress", lambda c: [*_run(c), 1.5, 1], "completed"),
    *_options_rows("jobProgress", lambda c: [*_run(c), 0, 1]),
    # jobLog
    ("jobLog", lambda c: [], "id"),
    ("jobLog", lambda c: [None, None, "m"], "id"),
    ("jobLog", lambda c: [5, None, "m"], "id"),
    ("jobLog", lambda c: [c.ready], "runId"),
    ("jobLog", lambda c: [c.ready, 5, "m"], "runId"),
    ("jobLog", lambda c: [c.ready, "", "m"], "runId"),
    ("jobLog", lambda c: [c.ready, None], "message"),
    ("jobLog", lambda c: [c.ready, None, None], "message"),
    ("jobLog", lambda c: [c.ready, None, 5], "message"),
    ("jobLog", lambda c: [c.ready, None, ["m"]], "message"),
    *_options_rows("jobLog", lambda c: [c.ready, None, "m"]),
    *[("jobLog", _append(_log_args, {"level": v}), "options.level") for v in BAD_LEVELS],
    *[("jobLog", _append(_log_args, {"data": v}), "options.data") for v in BAD_DATA],
    ("jobLog", lambda c: [c.ready, None, "m", {"echo": True}], "options.echo"),
    # jobDone
    ("jobDone", lambda c: [], "id"),
    ("jobDone", lambda c: [None, c.run_id, {}], "id"),
    ("jobDone", lambda c: [c.running], "runId"),
    ("jobDone", lambda c: [c.running, None, {}], "runId"),
    ("jobDone", lambda c: [c.running, 5, {}], "runId"),
    ("jobDone", lambda c: _run(c), "result"),
    *[("jobDone", _append(_run, v), "result") for v in (None, [], [1], "ok", 5, True)],
    *_options_rows("jobDone", lambda c: [*_run(c), {}]),
    *_bool_rows("jobDone", lambda c: [*_run(c), {}], "repeatId"),
    *[
        ("jobDone", _append(_run, {}, {"delayDeps": v}), "options.delayDeps")
        for v in (None, -1, 1.5, True, "5", NAN, INF)
    ],
    # jobFail
    ("jobFail", lambda c: [], "id"),
    ("jobFail", lambda c: [None, c.run_id, {}], "id"),
    ("jobFail", lambda c: [c.running], "runId"),
    ("jobFail", lambda c: [c.running, None, {}], "runId"),
    ("jobFail", lambda c: _run(c), "err"),
    *[("jobFail", _append(_run, v), "err") for v in (None, [], ["e"], "error text", 5, False)],
    *_options_rows("jobFail", lambda c: [*_run(c), {}]),
    *_bool_rows("jobFail", lambda c: [*_run(c), {}], "fatal"),
]


def _row_id(row: Row) -> str:
    return f"{row[0]}-{row[2]}"


@pytest.mark.parametrize(("method", "build", "field"), ROWS, ids=[_row_id(r) for r in ROWS])
def test_invalid_input_is_rejected_and_changes_nothing(
    shared: tuple[Ctx, Snapshot], method: str, build: Build, field: str
) -> None:
    ctx, before = shared
    eng = ctx.eng
    params = build(ctx)
    with pytest.raises(JobValidationError) as info:
        eng.m.call(method, params)
    assert info.value.field == field
    assert eng.snapshot() == before
    assert eng.m.stopped is False


def test_while_stopped_invalid_input_is_still_rejected(ctx: Ctx) -> None:
    eng = ctx.eng
    eng.call("shutdownJobServer", {"timeout": 3_600_000})
    before = eng.snapshot()
    rows: list[tuple[str, list[object], str]] = [
        ("getWork", ["t", {"maxJobs": 0}], "options.maxJobs"),
        ("jobProgress", [ctx.running, ctx.run_id, 2, 1], "completed"),
        ("startJobServer", [None], "options"),
    ]
    for method, params, field in rows:
        with pytest.raises(JobValidationError) as info:
            eng.m.call(method, params)
        assert info.value.field == field
    assert eng.snapshot() == before
    assert eng.m.stopped is True


# -- the valid edge of each rule (so the rows above reject for the stated reason) ------------------


VALID_EDGES: list[tuple[str, Build]] = [
    ("getWork", lambda c: ["t", {}, "extra", 1]),  # extra trailing params are ignored
    ("getWork", lambda c: [[]]),
    ("getWork", lambda c: [("t",)]),
    ("getWork", lambda c: ["t", {"maxJobs": FOREVER * 4}]),  # clamped
    ("getWork", lambda c: ["t", {"workTimeout": 1}]),
    ("shutdownJobServer", lambda c: [{"timeout": 1.0}]),
    ("getJob", lambda c: [[]]),
    ("getJob", lambda c: [c.ready, {"getLog": False, "getFailures": True}]),
    ("jobReady", lambda c: [[], {"time": -FOREVER_DATE}]),
    ("jobReady", lambda c: [[], {"time": Date(FOREVER_DATE)}]),
    ("jobReady", lambda c: [[], {"time": 5.0}]),
    ("jobRestart", lambda c: [c.failed, {"retries": 0, "until": FOREVER_DATE}]),
    ("jobCancel", lambda c: [[c.ready], {"antecedents": False, "dependents": False}]),
    ("jobRerun", lambda c: [c.completed, {"wait": 0.0, "repeats": 2.0}]),
    ("jobRerun", lambda c: [c.completed, {"wait": {"schedules": [{"dw": [1.0]}]}}]),
    ("jobProgress", lambda c: [*_run(c), 0, 0.001]),
    ("jobProgress", lambda c: [*_run(c), 5, 5, {}]),
    ("jobLog", lambda c: [c.ready, None, "", {"level": "danger", "data": {}}]),
    ("jobDone", lambda c: [*_run(c), {"$date": 5}, {"repeatId": False, "delayDeps": 0}]),
    ("jobFail", lambda c: [*_run(c), {}, {"fatal": False}, "extra"]),
    ("jobSave", lambda c: [c.doc(_id=None, priority=-(2**31), retries=0.0)]),
    ("jobSave", lambda c: [c.doc(data={"x": [Date(1)]}, log=[], workTimeout=1)]),
    ("jobSave", lambda c: [c.doc(repeatWait={"schedules": [], "exceptions": []})]),
    ("jobSave", lambda c: [c.doc(repeatWait=0, retryWait=0, retryBackoff="exponential")]),
]


@pytest.mark.parametrize(
    ("method", "build"), VALID_EDGES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(VALID_EDGES)]
)
def test_valid_edge_inputs_are_accepted(ctx: Ctx, method: str, build: Build) -> None:
    ctx.eng.m.call(method, build(ctx))
