"""Table-driven tests of DDP params validation (core.params, core.document; SPEC 0, 1, 4)."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobcollection.core.constants import DDP_METHODS, FOREVER, FOREVER_DATE
from jobcollection.core.ejson import Date
from jobcollection.core.params import (
    CancelParams,
    DoneParams,
    FailParams,
    GetJobParams,
    GetWorkParams,
    IdsParams,
    LogParams,
    ProgressParams,
    ReadyParams,
    RerunParams,
    RestartParams,
    SaveParams,
    ShutdownParams,
    StartParams,
    parse_ids,
    parse_params,
    to_duration_ms,
    to_ms,
    validate_job_doc,
)
from jobcollection.core.schedule import validate_schedule
from jobcollection.errors import JobValidationError, ValidationError

NOW = 1_700_000_000_000
SCHEDULE: dict[str, object] = {"schedules": [{"m": [0, 30]}]}
DW_SCHEDULE: dict[str, object] = {"schedules": [{"dw": [2.0]}], "exceptions": [{"h": [11]}]}
NAN = math.nan
INF = math.inf
NAIVE = datetime.fromisoformat("2020-01-01T00:00:00")  # no tzinfo
DELETE = object()  # marks a key to remove from the base document


def norm(schedule: dict[str, object]) -> dict[str, object]:
    """What validate_schedule makes of a schedule (e.g. adds `exceptions`, maps `dw` to `d`)."""
    return dict(validate_schedule(schedule, "wait"))


def make_doc(**changes: object) -> dict[str, Any]:
    """The document meteor-job builds for `new Job(root, "email", {...})`, with changes."""
    doc: dict[str, Any] = {
        "runId": None,
        "type": "email",
        "data": {"to": "a@b.c"},
        "status": "waiting",
        "updated": NOW,
        "created": NOW,
        "priority": 0,
        "retries": 1,
        "repeatRetries": 1,
        "retryWait": 300000,
        "retried": 0,
        "retryBackoff": "constant",
        "retryUntil": FOREVER_DATE,
        "repeats": 0,
        "repeatWait": 300000,
        "repeated": 0,
        "repeatUntil": FOREVER_DATE,
        "after": 0,
        "progress": {"completed": 0, "total": 1, "percent": 0},
        "depends": [],
        "resolved": [],
        "log": [{"time": NOW, "runId": None, "level": "info", "message": "Constructed"}],
    }
    for key, value in changes.items():
        if value is DELETE:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def log_entry(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = {"time": NOW, "runId": None, "level": "info", "message": "m"}
    for key, value in changes.items():
        if value is DELETE:
            entry.pop(key, None)
        else:
            entry[key] = value
    return entry


def expect_error(field: str, call: Any, *args: object) -> JobValidationError:
    with pytest.raises(JobValidationError) as info:
        call(*args)
    assert info.value.field == field, str(info.value)
    assert info.value.problem
    assert isinstance(info.value, ValidationError)
    return info.value


# ---- valid calls: (method, params, expected) -----------------------------------------------

VALID: list[tuple[str, list[object], object]] = [
    ("startJobServer", [], StartParams()),
    ("startJobServer", [{}], StartParams()),
    ("startJobs", [{}], StartParams()),
    ("startJobServer", [{}, "extra", None], StartParams()),
    ("shutdownJobServer", [], ShutdownParams(60000)),
    ("shutdownJobServer", [{}], ShutdownParams(60000)),
    ("shutdownJobServer", [{"timeout": 1}], ShutdownParams(1)),
    ("shutdownJobServer", [{"timeout": 5.0}], ShutdownParams(5)),
    ("stopJobs", [{"timeout": 60000}], ShutdownParams(60000)),
    ("getJob", ["a"], GetJobParams(["a"], True)),
    ("getJob", [["a", "b"]], GetJobParams(["a", "b"], False)),
    ("getJob", [[]], GetJobParams([], False)),
    ("getJob", ["a", {"getLog": True}], GetJobParams(["a"], True, get_log=True)),
    ("getJob", ["a", {"getFailures": True}], GetJobParams(["a"], True, get_failures=True)),
    ("getJob", [["a"], {"getLog": False, "getFailures": False}], GetJobParams(["a"], False)),
    ("getWork", ["t"], GetWorkParams(["t"])),
    ("getWork", [["t", "u"]], GetWorkParams(["t", "u"])),
    ("getWork", [[]], GetWorkParams([])),
    ("getWork", [["t"], {"maxJobs": 5}], GetWorkParams(["t"], max_jobs=5)),
    ("getWork", [["t"], {"maxJobs": 5.0}], GetWorkParams(["t"], max_jobs=5)),
    ("getWork", [["t"], {"maxJobs": FOREVER * 4}], GetWorkParams(["t"], max_jobs=FOREVER)),
    ("getWork", [["t"], {"workTimeout": 1}], GetWorkParams(["t"], work_timeout=1)),
    ("getWork", [["t"], {"workTimeout": 2e3}], GetWorkParams(["t"], work_timeout=2000)),
    ("jobRemove", ["a"], IdsParams(["a"])),
    ("jobRemove", [["a", "b"], {}], IdsParams(["a", "b"])),
    ("jobPause", [[]], IdsParams([])),
    ("jobResume", ["a", {}], IdsParams(["a"])),
    ("jobReady", [[]], ReadyParams([])),
    ("jobReady", [["a"], {"force": False}], ReadyParams(["a"])),
    ("jobReady", ["a", {"force": True}], ReadyParams(["a"], force=True)),
    ("jobReady", ["a", {"time": NOW}], ReadyParams(["a"], time=NOW)),
    ("jobReady", ["a", {"time": Date(NOW)}], ReadyParams(["a"], time=NOW)),
    ("jobReady", ["a", {"time": float(NOW)}], ReadyParams(["a"], time=NOW)),
    ("jobReady", ["a", {"time": -FOREVER_DATE}], ReadyParams(["a"], time=-FOREVER_DATE)),
    ("jobCancel", ["a"], CancelParams(["a"])),
    ("jobCancel", ["a", {"antecedents": True}], CancelParams(["a"], antecedents=True)),
    ("jobCancel", ["a", {"dependents": False}], CancelParams(["a"], dependents=False)),
    ("jobRestart", ["a"], RestartParams(["a"])),
    ("jobRestart", ["a", {"retries": 0}], RestartParams(["a"], retries=0)),
    ("jobRestart", ["a", {"retries": 3.0}], RestartParams(["a"], retries=3)),
    ("jobRestart", ["a", {"retries": FOREVER + 10}], RestartParams(["a"], retries=FOREVER)),
    ("jobRestart", ["a", {"retries": 1e300}], RestartParams(["a"], retries=FOREVER)),
    ("jobRestart", ["a", {"until": FOREVER_DATE}], RestartParams(["a"], until=FOREVER_DATE)),
    ("jobRestart", ["a", {"antecedents": False}], RestartParams(["a"], antecedents=False)),
    (
        "jobRestart",
        ["a", {"retries": 1, "dependents": True}],
        RestartParams(["a"], dependents=True),
    ),
    ("jobRerun", ["a"], RerunParams("a")),
    ("jobRerun", ["a", {"wait": 0}], RerunParams("a")),
    ("jobRerun", ["a", {"wait": 5.0, "repeats": 2.0}], RerunParams("a", repeats=2, wait=5)),
    ("jobRerun", ["a", {"wait": 0, "repeats": FOREVER * 2}], RerunParams("a", repeats=FOREVER)),
    ("jobRerun", ["a", {"wait": 0, "until": NOW}], RerunParams("a", until=NOW)),
    ("jobRerun", ["a", {"wait": SCHEDULE}], RerunParams("a", wait=dict(norm(SCHEDULE)))),
    ("jobRerun", ["a", {"wait": DW_SCHEDULE}], RerunParams("a", wait=dict(norm(DW_SCHEDULE)))),
    ("jobProgress", ["a", "r", 0, 1], ProgressParams("a", "r", 0, 1)),
    ("jobProgress", ["a", "r", 0.5, 1.5, {}], ProgressParams("a", "r", 0.5, 1.5)),
    ("jobProgress", ["a", "r", 10, 10], ProgressParams("a", "r", 10, 10)),
    ("jobLog", ["a", None, "hi"], LogParams("a", None, "hi")),
    ("jobLog", ["a", "r", ""], LogParams("a", "r", "")),
    ("jobLog", ["a", "r", "m", {"level": "danger"}], LogParams("a", "r", "m", level="danger")),
    ("jobLog", ["a", "r", "m", {"data": {"k": [1]}}], LogParams("a", "r", "m", data={"k": [1]})),
    ("jobDone", ["a", "r", {}], DoneParams("a", "r", {})),
    ("jobDone", ["a", "r", {"value": 1}, {}], DoneParams("a", "r", {"value": 1})),
    ("jobDone", ["a", "r", {}, {"repeatId": True}], DoneParams("a", "r", {}, repeat_id=True)),
    ("jobDone", ["a", "r", {}, {"delayDeps": 0}], DoneParams("a", "r", {}, delay_deps=0)),
    ("jobDone", ["a", "r", {}, {"delayDeps": 7.0}], DoneParams("a", "r", {}, delay_deps=7)),
    ("jobFail", ["a", "r", {"value": "x"}], FailParams("a", "r", {"value": "x"})),
    ("jobFail", ["a", "r", {}, {"fatal": True}], FailParams("a", "r", {}, fatal=True)),
    ("jobFail", ["a", "r", {}, {"fatal": False}], FailParams("a", "r", {})),
]


@pytest.mark.parametrize(("method", "params", "expected"), VALID)
def test_valid_params(method: str, params: list[object], expected: object) -> None:
    before = copy.deepcopy(params)
    assert parse_params(method, params) == expected
    assert params == before


# ---- invalid calls: (method, params, field) ------------------------------------------------

INVALID: list[tuple[str, list[object], str]] = [
    # dispatch and params container
    ("nope", [], "method"),
    ("queue_jobSave", [], "method"),
    ("jobremove", [], "method"),
    # startJobServer: options absent or {}
    ("startJobServer", [None], "options"),
    ("startJobServer", [[]], "options"),
    ("startJobServer", [{"timeout": 1}], "options.timeout"),
    ("startJobs", [{"x": 1}], "options.x"),
    # shutdownJobServer: timeout int >= 1
    ("shutdownJobServer", [None], "options"),
    ("shutdownJobServer", [{"timeout": 0}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": -5}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": 1.5}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": None}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": True}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": "60000"}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": NAN}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": INF}], "options.timeout"),
    ("shutdownJobServer", [{"timeout": FOREVER + 1}], "options.timeout"),
    ("stopJobs", [{"timeout": 1, "force": True}], "options.force"),
    # getJob
    ("getJob", [], "ids"),
    ("getJob", [None], "ids"),
    ("getJob", [""], "ids"),
    ("getJob", [5], "ids"),
    ("getJob", [{"_id": "a"}], "ids"),
    ("getJob", [["a", 3]], "ids[1]"),
    ("getJob", [["a", "b", "c", ""]], "ids[3]"),
    ("getJob", [["a", None]], "ids[1]"),
    ("getJob", ["a", None], "options"),
    ("getJob", ["a", {"getLog": None}], "options.getLog"),
    ("getJob", ["a", {"getLog": 1}], "options.getLog"),
    ("getJob", ["a", {"getFailures": "yes"}], "options.getFailures"),
    ("getJob", ["a", {"getlog": True}], "options.getlog"),
    # getWork
    ("getWork", [], "type"),
    ("getWork", [None], "type"),
    ("getWork", [3], "type"),
    ("getWork", [{"type": "t"}], "type"),
    ("getWork", [["t", 1]], "type[1]"),
    ("getWork", [["t", None]], "type[1]"),
    ("getWork", ["t", None], "options"),
    ("getWork", ["t", {"maxJobs": 0}], "options.maxJobs"),
    ("getWork", ["t", {"maxJobs": "x"}], "options.maxJobs"),
    ("getWork", ["t", {"maxJobs": True}], "options.maxJobs"),
    ("getWork", ["t", {"maxJobs": 1.5}], "options.maxJobs"),
    ("getWork", ["t", {"maxJobs": None}], "options.maxJobs"),
    ("getWork", ["t", {"maxJobs": NAN}], "options.maxJobs"),
    ("getWork", ["t", {"maxJobs": INF}], "options.maxJobs"),
    ("getWork", ["t", {"workTimeout": 0}], "options.workTimeout"),
    ("getWork", ["t", {"workTimeout": None}], "options.workTimeout"),
    ("getWork", ["t", {"workTimeout": False}], "options.workTimeout"),
    ("getWork", ["t", {"workTimeout": -INF}], "options.workTimeout"),
    ("getWork", ["t", {"workTimeout": FOREVER + 1}], "options.workTimeout"),
    ("getWork", ["t", {"maxJobs": 1, "timeout": 1}], "options.timeout"),
    # jobRemove / jobPause / jobResume: options absent or {}
    ("jobRemove", [], "ids"),
    ("jobRemove", [None], "ids"),
    ("jobRemove", [["ok", 7]], "ids[1]"),
    ("jobRemove", ["a", None], "options"),
    ("jobRemove", ["a", {"force": True}], "options.force"),
    ("jobPause", [True], "ids"),
    ("jobPause", ["a", []], "options"),
    ("jobPause", ["a", {"x": None}], "options.x"),
    ("jobResume", [[""]], "ids[0]"),
    ("jobResume", ["a", "b"], "options"),
    # jobReady
    ("jobReady", [], "ids"),
    ("jobReady", [None], "ids"),
    ("jobReady", ["a", None], "options"),
    ("jobReady", ["a", {"force": None}], "options.force"),
    ("jobReady", ["a", {"force": 0}], "options.force"),
    ("jobReady", ["a", {"time": None}], "options.time"),
    ("jobReady", ["a", {"time": "2020-01-01"}], "options.time"),
    ("jobReady", ["a", {"time": True}], "options.time"),
    ("jobReady", ["a", {"time": 1.5}], "options.time"),
    ("jobReady", ["a", {"time": NAN}], "options.time"),
    ("jobReady", ["a", {"time": INF}], "options.time"),
    ("jobReady", ["a", {"time": FOREVER_DATE + 1}], "options.time"),
    ("jobReady", ["a", {"time": -FOREVER_DATE - 1}], "options.time"),
    ("jobReady", ["a", {"time": Date(FOREVER_DATE + 1)}], "options.time"),
    ("jobReady", ["a", {"time": NAIVE}], "options.time"),
    ("jobReady", ["a", {"until": NOW}], "options.until"),
    # jobCancel
    ("jobCancel", [None], "ids"),
    ("jobCancel", ["a", None], "options"),
    ("jobCancel", ["a", {"antecedents": None}], "options.antecedents"),
    ("jobCancel", ["a", {"antecedents": "true"}], "options.antecedents"),
    ("jobCancel", ["a", {"dependents": 1}], "options.dependents"),
    ("jobCancel", ["a", {"dependents": None}], "options.dependents"),
    ("jobCancel", ["a", {"retries": 1}], "options.retries"),
    # jobRestart
    ("jobRestart", [], "ids"),
    ("jobRestart", ["a", None], "options"),
    ("jobRestart", ["a", {"retries": -1}], "options.retries"),
    ("jobRestart", ["a", {"retries": 0.5}], "options.retries"),
    ("jobRestart", ["a", {"retries": None}], "options.retries"),
    ("jobRestart", ["a", {"retries": True}], "options.retries"),
    ("jobRestart", ["a", {"retries": INF}], "options.retries"),
    ("jobRestart", ["a", {"retries": NAN}], "options.retries"),
    ("jobRestart", ["a", {"until": None}], "options.until"),
    ("jobRestart", ["a", {"until": "soon"}], "options.until"),
    ("jobRestart", ["a", {"antecedents": None}], "options.antecedents"),
    ("jobRestart", ["a", {"dependents": "no"}], "options.dependents"),
    ("jobRestart", ["a", {"wait": 0}], "options.wait"),
    # jobSave
    ("jobSave", [], "doc"),
    ("jobSave", [None], "doc"),
    ("jobSave", [[]], "doc"),
    ("jobSave", [make_doc(status="ready")], "doc.status"),
    ("jobSave", [make_doc(status="running")], "doc.status"),
    ("jobSave", [make_doc(status="completed")], "doc.status"),
    ("jobSave", [make_doc(status="bogus")], "doc.status"),
    ("jobSave", [make_doc(), None], "options"),
    ("jobSave", [make_doc(), {"cancelRepeats": None}], "options.cancelRepeats"),
    ("jobSave", [make_doc(), {"cancelRepeats": 1}], "options.cancelRepeats"),
    ("jobSave", [make_doc(), {"cancelrepeats": True}], "options.cancelrepeats"),
    # jobRerun
    ("jobRerun", [], "id"),
    ("jobRerun", [None], "id"),
    ("jobRerun", [""], "id"),
    ("jobRerun", [["a"]], "id"),
    ("jobRerun", ["a", None], "options"),
    ("jobRerun", ["a", {}], "options.wait"),
    ("jobRerun", ["a", {"repeats": 1}], "options.wait"),
    ("jobRerun", ["a", {"wait": None}], "options.wait"),
    ("jobRerun", ["a", {"wait": -1}], "options.wait"),
    ("jobRerun", ["a", {"wait": 1.5}], "options.wait"),
    ("jobRerun", ["a", {"wait": True}], "options.wait"),
    ("jobRerun", ["a", {"wait": "5 min"}], "options.wait"),
    ("jobRerun", ["a", {"wait": NAN}], "options.wait"),
    ("jobRerun", ["a", {"wait": [1]}], "options.wait"),
    ("jobRerun", ["a", {"wait": {"exceptions": []}}], "options.wait.schedules"),
    ("jobRerun", ["a", {"wait": {"schedules": [], "x": 1}}], "options.wait.x"),
    ("jobRerun", ["a", {"wait": 0, "repeats": -1}], "options.repeats"),
    ("jobRerun", ["a", {"wait": 0, "repeats": None}], "options.repeats"),
    ("jobRerun", ["a", {"wait": 0, "repeats": False}], "options.repeats"),
    ("jobRerun", ["a", {"wait": 0, "until": None}], "options.until"),
    ("jobRerun", ["a", {"wait": 0, "until": INF}], "options.until"),
    ("jobRerun", ["a", {"wait": 0, "retries": 1}], "options.retries"),
    # jobProgress
    ("jobProgress", [], "id"),
    ("jobProgress", ["a"], "runId"),
    ("jobProgress", ["a", "r"], "completed"),
    ("jobProgress", ["a", "r", 0], "total"),
    ("jobProgress", [None, "r", 0, 1], "id"),
    ("jobProgress", ["a", None, 0, 1], "runId"),
    ("jobProgress", ["a", "", 0, 1], "runId"),
    ("jobProgress", ["a", "r", -1, 1], "completed"),
    ("jobProgress", ["a", "r", None, 1], "completed"),
    ("jobProgress", ["a", "r", True, 1], "completed"),
    ("jobProgress", ["a", "r", "1", 2], "completed"),
    ("jobProgress", ["a", "r", NAN, 1], "completed"),
    ("jobProgress", ["a", "r", 0, 0], "total"),
    ("jobProgress", ["a", "r", 0, -1], "total"),
    ("jobProgress", ["a", "r", 0, True], "total"),
    ("jobProgress", ["a", "r", 0, INF], "total"),
    ("jobProgress", ["a", "r", 0, None], "total"),
    ("jobProgress", ["a", "r", 2, 1], "completed"),
    ("jobProgress", ["a", "r", 1.5, 1], "completed"),
    ("jobProgress", ["a", "r", 0, 1, None], "options"),
    ("jobProgress", ["a", "r", 0, 1, {"x": 1}], "options.x"),
    # jobLog
    ("jobLog", [], "id"),
    ("jobLog", ["a"], "runId"),
    ("jobLog", ["a", None], "message"),
    ("jobLog", [7, None, "m"], "id"),
    ("jobLog", ["a", "", "m"], "runId"),
    ("jobLog", ["a", 5, "m"], "runId"),
    ("jobLog", ["a", None, None], "message"),
    ("jobLog", ["a", None, 5], "message"),
    ("jobLog", ["a", None, "m", None], "options"),
    ("jobLog", ["a", None, "m", {"level": "debug"}], "options.level"),
    ("jobLog", ["a", None, "m", {"level": None}], "options.level"),
    ("jobLog", ["a", None, "m", {"level": "INFO"}], "options.level"),
    ("jobLog", ["a", None, "m", {"data": None}], "options.data"),
    ("jobLog", ["a", None, "m", {"data": [1]}], "options.data"),
    ("jobLog", ["a", None, "m", {"data": "x"}], "options.data"),
    ("jobLog", ["a", None, "m", {"echo": True}], "options.echo"),
    # jobDone
    ("jobDone", [], "id"),
    ("jobDone", ["a"], "runId"),
    ("jobDone", ["a", "r"], "result"),
    ("jobDone", ["a", None, {}], "runId"),
    ("jobDone", ["a", "r", None], "result"),
    ("jobDone", ["a", "r", [1, 2]], "result"),
    ("jobDone", ["a", "r", "ok"], "result"),
    ("jobDone", ["a", "r", {}, None], "options"),
    ("jobDone", ["a", "r", {}, {"repeatId": None}], "options.repeatId"),
    ("jobDone", ["a", "r", {}, {"repeatId": "yes"}], "options.repeatId"),
    ("jobDone", ["a", "r", {}, {"delayDeps": -1}], "options.delayDeps"),
    ("jobDone", ["a", "r", {}, {"delayDeps": None}], "options.delayDeps"),
    ("jobDone", ["a", "r", {}, {"delayDeps": True}], "options.delayDeps"),
    ("jobDone", ["a", "r", {}, {"delayDeps": 0.5}], "options.delayDeps"),
    ("jobDone", ["a", "r", {}, {"delayDeps": NAN}], "options.delayDeps"),
    ("jobDone", ["a", "r", {}, {"fatal": True}], "options.fatal"),
    # jobFail
    ("jobFail", [], "id"),
    ("jobFail", ["a"], "runId"),
    ("jobFail", ["a", "r"], "err"),
    ("jobFail", ["a", None, {}], "runId"),
    ("jobFail", ["a", "r", None], "err"),
    ("jobFail", ["a", "r", "boom"], "err"),
    ("jobFail", ["a", "r", ["boom"]], "err"),
    ("jobFail", ["a", "r", {}, None], "options"),
    ("jobFail", ["a", "r", {}, {"fatal": None}], "options.fatal"),
    ("jobFail", ["a", "r", {}, {"fatal": 1}], "options.fatal"),
    ("jobFail", ["a", "r", {}, {"repeatId": True}], "options.repeatId"),
]


@pytest.mark.parametrize(("method", "params", "field"), INVALID)
def test_invalid_params(method: str, params: list[object], field: str) -> None:
    expect_error(field, parse_params, method, params)


def test_params_must_be_a_list() -> None:
    expect_error("params", parse_params, "jobRemove", "abc")
    expect_error("params", parse_params, "jobRemove", None)


def test_tuple_params_are_accepted() -> None:
    assert parse_params("jobRemove", ("a", {})) == IdsParams(["a"])  # type: ignore[arg-type]


def test_problem_text_names_rule_and_value() -> None:
    error = expect_error("options.maxJobs", parse_params, "getWork", ["t", {"maxJobs": "x"}])
    assert error.problem == "must be an integer >= 1, got 'x'"
    assert str(error) == "options.maxJobs: must be an integer >= 1, got 'x'"


FIRST_REQUIRED: dict[str, str | None] = {
    **dict.fromkeys(("startJobs", "stopJobs", "startJobServer", "shutdownJobServer"), None),
    **dict.fromkeys(("getJob", "jobRemove", "jobPause", "jobResume", "jobReady"), "ids"),
    **dict.fromkeys(("jobCancel", "jobRestart"), "ids"),
    **dict.fromkeys(("jobRerun", "jobProgress", "jobLog", "jobDone", "jobFail"), "id"),
    "getWork": "type",
    "jobSave": "doc",
}


@pytest.mark.parametrize("method", DDP_METHODS)
def test_every_ddp_method_is_dispatched(method: str) -> None:
    field = FIRST_REQUIRED[method]
    if field is None:
        assert parse_params(method, []) in (StartParams(), ShutdownParams())
    else:
        expect_error(field, parse_params, method, [])


def test_progress_keeps_number_types() -> None:
    result = parse_params("jobProgress", ["a", "r", 1, 4.0])
    assert isinstance(result, ProgressParams)
    assert type(result.completed) is int
    assert type(result.total) is float


def test_results_are_frozen() -> None:
    result = parse_params("shutdownJobServer", [{"timeout": 5}])
    with pytest.raises(AttributeError):
        result.timeout = 6  # type: ignore[misc, union-attr]


# ---- parse_ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a", (["a"], True)), (["a", "b"], (["a", "b"], False)), ([], ([], False))],
)
def test_parse_ids_valid(value: object, expected: tuple[list[str], bool]) -> None:
    assert parse_ids(value) == expected


@pytest.mark.parametrize(
    ("value", "field"),
    [(None, "depends"), ("", "depends"), (1, "depends"), (["x", ""], "depends[1]")],
)
def test_parse_ids_invalid(value: object, field: str) -> None:
    expect_error(field, parse_ids, value, "depends")


# ---- jobSave document: accepted and normalized ---------------------------------------------

DOC_NORMALIZED: list[tuple[dict[str, object], str, object]] = [
    ({"priority": -15.0}, "priority", -15),
    ({"priority": 2**31 - 1}, "priority", 2**31 - 1),
    ({"priority": -(2**31)}, "priority", -(2**31)),
    ({"retries": 3.0}, "retries", 3),
    ({"retries": FOREVER + 1}, "retries", FOREVER),
    ({"retries": 1e30}, "retries", FOREVER),
    ({"repeats": FOREVER * 3}, "repeats", FOREVER),
    ({"repeatRetries": FOREVER + 1}, "repeatRetries", FOREVER),
    ({"retried": 2.0}, "retried", 2),
    ({"repeated": 4.0}, "repeated", 4),
    ({"retryWait": 0}, "retryWait", 0),
    ({"retryWait": 10.0}, "retryWait", 10),
    ({"retryWait": timedelta(seconds=2)}, "retryWait", 2000),
    ({"repeatWait": 0}, "repeatWait", 0),
    ({"repeatWait": 60000.0}, "repeatWait", 60000),
    ({"repeatWait": SCHEDULE}, "repeatWait", norm(SCHEDULE)),
    ({"repeatWait": DW_SCHEDULE}, "repeatWait", norm(DW_SCHEDULE)),
    ({"after": 5.0}, "after", 5),
    ({"after": Date(7)}, "after", 7),
    ({"after": datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}, "after", 1000),
    ({"after": -FOREVER_DATE}, "after", -FOREVER_DATE),
    ({"retryUntil": float(FOREVER_DATE)}, "retryUntil", FOREVER_DATE),
    ({"expiresAfter": NOW}, "expiresAfter", NOW),
    ({"workTimeout": 1.0}, "workTimeout", 1),
    ({"_id": "abc"}, "_id", "abc"),
    ({"runId": "run1"}, "runId", "run1"),
    ({"status": "paused"}, "status", "paused"),
    ({"retryBackoff": "exponential"}, "retryBackoff", "exponential"),
    ({"depends": ["a", "b"]}, "depends", ["a", "b"]),
    ({"resolved": ["c"]}, "resolved", ["c"]),
    (
        {"data": {"nested": {"x": [1, None, Date(1)]}}},
        "data",
        {"nested": {"x": [1, None, Date(1)]}},
    ),
    ({"result": {"ok": True}}, "result", {"ok": True}),
    ({"failures": [{"value": "x", "runId": "r"}]}, "failures", [{"value": "x", "runId": "r"}]),
    ({"failures": []}, "failures", []),
    ({"log": []}, "log", []),
    ({"log": [log_entry(time=1.0)]}, "log", [log_entry(time=1)]),
    (
        {"log": [log_entry(runId="r", level="danger")]},
        "log",
        [log_entry(runId="r", level="danger")],
    ),
    ({"log": [log_entry(data={"k": 1})]}, "log", [log_entry(data={"k": 1})]),
    ({"log": [log_entry(message="")]}, "log", [log_entry(message="")]),
    (
        {"progress": {"completed": 0.5, "total": 2, "percent": 25.0}},
        "progress",
        {"completed": 0.5, "total": 2, "percent": 25.0},
    ),
]


@pytest.mark.parametrize(("changes", "key", "expected"), DOC_NORMALIZED)
def test_doc_normalized(changes: dict[str, object], key: str, expected: object) -> None:
    doc = make_doc(**changes)
    before = copy.deepcopy(doc)
    result = validate_job_doc(doc)
    assert result[key] == expected
    assert type(result[key]) is type(expected)
    assert doc == before  # input untouched


def test_default_meteor_job_doc_is_accepted_and_saved() -> None:
    doc = make_doc()
    result = parse_params("jobSave", [doc, {"cancelRepeats": True}])
    assert result == SaveParams(doc, cancel_repeats=True)
    assert isinstance(result, SaveParams)
    assert result.doc is not doc


@pytest.mark.parametrize(
    "key", ["_id", "result", "failures", "workTimeout", "expiresAfter", "log", "repeatRetries"]
)
def test_doc_optional_fields_may_be_absent(key: str) -> None:
    assert key not in validate_job_doc(make_doc(**{key: DELETE}))


def test_doc_null_id_is_removed() -> None:
    result = validate_job_doc(make_doc(_id=None))
    assert "_id" not in result


def test_doc_result_is_a_new_dict_with_new_containers() -> None:
    doc = make_doc(depends=["a"])
    result = validate_job_doc(doc)
    assert result == doc
    for key in ("data", "depends", "log", "progress"):
        assert result[key] is not doc[key]


# ---- jobSave document: rejected ------------------------------------------------------------

REQUIRED_DOC_FIELDS = [
    "runId",
    "type",
    "status",
    "data",
    "priority",
    "depends",
    "resolved",
    "after",
    "updated",
    "progress",
    "retries",
    "retried",
    "retryUntil",
    "retryWait",
    "retryBackoff",
    "repeats",
    "repeated",
    "repeatUntil",
    "repeatWait",
    "created",
]


@pytest.mark.parametrize("key", REQUIRED_DOC_FIELDS)
def test_doc_required_field_missing(key: str) -> None:
    expect_error(f"doc.{key}", validate_job_doc, make_doc(**{key: DELETE}))


def _progress(**changes: object) -> dict[str, object]:
    progress: dict[str, object] = {"completed": 0, "total": 1, "percent": 0}
    for key, value in changes.items():
        if value is DELETE:
            progress.pop(key, None)
        else:
            progress[key] = value
    return progress


DOC_INVALID: list[tuple[dict[str, object], str]] = [
    # closed key set
    ({"_private": {}}, "doc._private"),
    ({"extra": 1}, "doc.extra"),
    ({"Type": "x"}, "doc.Type"),
    # ids
    ({"_id": ""}, "doc._id"),
    ({"_id": 5}, "doc._id"),
    ({"runId": ""}, "doc.runId"),
    ({"runId": 1}, "doc.runId"),
    # type, status
    ({"type": ""}, "doc.type"),
    ({"type": None}, "doc.type"),
    ({"type": ["a"]}, "doc.type"),
    ({"status": None}, "doc.status"),
    ({"status": "Waiting"}, "doc.status"),
    # user data
    ({"data": None}, "doc.data"),
    ({"data": [1]}, "doc.data"),
    ({"data": "x"}, "doc.data"),
    ({"result": None}, "doc.result"),
    ({"result": 1}, "doc.result"),
    ({"failures": None}, "doc.failures"),
    ({"failures": {}}, "doc.failures"),
    ({"failures": [{}, "x"]}, "doc.failures[1]"),
    # priority
    ({"priority": None}, "doc.priority"),
    ({"priority": "high"}, "doc.priority"),
    ({"priority": True}, "doc.priority"),
    ({"priority": 1.5}, "doc.priority"),
    ({"priority": NAN}, "doc.priority"),
    ({"priority": 2**31}, "doc.priority"),
    ({"priority": -(2**31) - 1}, "doc.priority"),
    # depends / resolved
    ({"depends": None}, "doc.depends"),
    ({"depends": "a"}, "doc.depends"),
    ({"depends": ["a", 2]}, "doc.depends[1]"),
    ({"resolved": ["a", "b", ""]}, "doc.resolved[2]"),
    ({"resolved": {}}, "doc.resolved"),
    # times
    ({"after": None}, "doc.after"),
    ({"after": "now"}, "doc.after"),
    ({"after": True}, "doc.after"),
    ({"after": 0.5}, "doc.after"),
    ({"after": INF}, "doc.after"),
    ({"after": NAN}, "doc.after"),
    ({"after": FOREVER_DATE + 1}, "doc.after"),
    ({"updated": NAIVE}, "doc.updated"),
    ({"created": -FOREVER_DATE - 1}, "doc.created"),
    ({"retryUntil": None}, "doc.retryUntil"),
    ({"repeatUntil": 1e300}, "doc.repeatUntil"),
    ({"expiresAfter": None}, "doc.expiresAfter"),
    # workTimeout
    ({"workTimeout": 0}, "doc.workTimeout"),
    ({"workTimeout": None}, "doc.workTimeout"),
    ({"workTimeout": True}, "doc.workTimeout"),
    # counters
    ({"retries": -1}, "doc.retries"),
    ({"retries": None}, "doc.retries"),
    ({"retries": True}, "doc.retries"),
    ({"retries": 1.5}, "doc.retries"),
    ({"retries": INF}, "doc.retries"),
    ({"retried": -1}, "doc.retried"),
    ({"retried": FOREVER + 1}, "doc.retried"),
    ({"repeatRetries": None}, "doc.repeatRetries"),
    ({"repeatRetries": -2}, "doc.repeatRetries"),
    ({"repeats": -1}, "doc.repeats"),
    ({"repeats": "forever"}, "doc.repeats"),
    ({"repeated": False}, "doc.repeated"),
    # retry / repeat settings
    ({"retryWait": -1}, "doc.retryWait"),
    ({"retryWait": None}, "doc.retryWait"),
    ({"retryWait": True}, "doc.retryWait"),
    ({"retryWait": timedelta(seconds=-1)}, "doc.retryWait"),
    ({"retryBackoff": "linear"}, "doc.retryBackoff"),
    ({"retryBackoff": None}, "doc.retryBackoff"),
    ({"repeatWait": None}, "doc.repeatWait"),
    ({"repeatWait": -1}, "doc.repeatWait"),
    ({"repeatWait": True}, "doc.repeatWait"),
    ({"repeatWait": "every 5 mins"}, "doc.repeatWait"),
    ({"repeatWait": [SCHEDULE]}, "doc.repeatWait"),
    ({"repeatWait": NAN}, "doc.repeatWait"),
    ({"repeatWait": {}}, "doc.repeatWait.schedules"),
    ({"repeatWait": {"schedules": [], "every": 5}}, "doc.repeatWait.every"),
    # progress
    ({"progress": None}, "doc.progress"),
    ({"progress": [0, 1, 0]}, "doc.progress"),
    ({"progress": _progress(completed=-1)}, "doc.progress.completed"),
    ({"progress": _progress(total=True)}, "doc.progress.total"),
    ({"progress": _progress(percent=NAN)}, "doc.progress.percent"),
    ({"progress": _progress(percent=None)}, "doc.progress.percent"),
    ({"progress": _progress(total=DELETE)}, "doc.progress.total"),
    ({"progress": _progress(extra=1)}, "doc.progress.extra"),
    # log
    ({"log": None}, "doc.log"),
    ({"log": {}}, "doc.log"),
    ({"log": ["x"]}, "doc.log[0]"),
    ({"log": [log_entry(), log_entry(), log_entry(level="debug")]}, "doc.log[2].level"),
    ({"log": [log_entry(level=None)]}, "doc.log[0].level"),
    ({"log": [log_entry(level=DELETE)]}, "doc.log[0].level"),
    ({"log": [log_entry(time=None)]}, "doc.log[0].time"),
    ({"log": [log_entry(time=DELETE)]}, "doc.log[0].time"),
    ({"log": [log_entry(time="now")]}, "doc.log[0].time"),
    ({"log": [log_entry(runId=DELETE)]}, "doc.log[0].runId"),
    ({"log": [log_entry(runId="")]}, "doc.log[0].runId"),
    ({"log": [log_entry(message=None)]}, "doc.log[0].message"),
    ({"log": [log_entry(message=DELETE)]}, "doc.log[0].message"),
    ({"log": [log_entry(data=None)]}, "doc.log[0].data"),
    ({"log": [log_entry(data=[1])]}, "doc.log[0].data"),
    ({"log": [log_entry(echo=True)]}, "doc.log[0].echo"),
]


@pytest.mark.parametrize(("changes", "field"), DOC_INVALID)
def test_doc_invalid(changes: dict[str, object], field: str) -> None:
    doc = make_doc(**changes)
    expect_error(field, validate_job_doc, doc)
    expect_error(field, parse_params, "jobSave", [doc])


def test_doc_must_be_a_plain_object() -> None:
    values: list[object] = [None, [], "doc", 1]
    for value in values:
        expect_error("doc", validate_job_doc, value)


def test_doc_unknown_key_reported_before_missing_ones() -> None:
    expect_error("doc.bogus", validate_job_doc, {"bogus": 1})


def test_save_status_rule_applies_after_doc_pattern() -> None:
    error = expect_error("doc.status", parse_params, "jobSave", [make_doc(status="failed")])
    assert "waiting" in error.problem
    assert "paused" in error.problem
    assert validate_job_doc(make_doc(status="failed"))["status"] == "failed"


# ---- to_ms / to_duration_ms ----------------------------------------------------------------

TO_MS_VALID: list[tuple[object, int]] = [
    (0, 0),
    (NOW, NOW),
    (float(NOW), NOW),
    (-1, -1),
    (FOREVER_DATE, FOREVER_DATE),
    (-FOREVER_DATE, -FOREVER_DATE),
    (Date(NOW), NOW),
    (datetime(1970, 1, 1, tzinfo=UTC), 0),
    (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), NOW),
    (datetime(1970, 1, 1, 1, 0, 0, 1500, tzinfo=timezone(timedelta(hours=1))), 1),
    (datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC), -1),
]


@pytest.mark.parametrize(("value", "expected"), TO_MS_VALID)
def test_to_ms_valid(value: object, expected: int) -> None:
    result = to_ms(value, "t")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [None, True, False, "0", 0.5, NAN, INF, -INF, FOREVER_DATE + 1, -FOREVER_DATE - 1, [0], {}],
)
def test_to_ms_invalid(value: object) -> None:
    expect_error("options.until", to_ms, value, "options.until")


def test_to_ms_naive_datetime_says_timezone_aware() -> None:
    error = expect_error("after", to_ms, NAIVE, "after")
    assert "timezone-aware" in error.problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (5, 5),
        (5.0, 5),
        (FOREVER, FOREVER),
        (timedelta(0), 0),
        (timedelta(minutes=5), 300000),
        (timedelta(microseconds=1500), 1),
    ],
)
def test_to_duration_ms_valid(value: object, expected: int) -> None:
    result = to_duration_ms(value, "wait")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value", [None, True, -1, 0.5, NAN, INF, "5", timedelta(milliseconds=-1), FOREVER + 1]
)
def test_to_duration_ms_invalid(value: object) -> None:
    expect_error("wait", to_duration_ms, value, "wait")


# ---- properties ----------------------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
METHODS = st.sampled_from(sorted({m for m, _, _ in VALID}))


@given(method=METHODS, params=st.lists(JSONISH, max_size=5))
def test_arbitrary_params_only_raise_validation_errors(method: str, params: list[object]) -> None:
    error: JobValidationError | None = None
    try:
        parse_params(method, params)
    except JobValidationError as caught:
        error = caught
    if error is not None:
        assert error.field
        assert error.problem


@given(value=st.integers(min_value=0, max_value=2**53))
def test_integral_float_equals_int(value: int) -> None:
    as_int = parse_params("jobRestart", ["a", {"retries": value}])
    as_float = parse_params("jobRestart", ["a", {"retries": float(value)}])
    assert as_int == as_float


@given(value=st.integers(min_value=-FOREVER_DATE, max_value=FOREVER_DATE))
def test_time_ints_round_trip(value: int) -> None:
    assert to_ms(value, "t") == value
    assert to_ms(Date(value), "t") == value
