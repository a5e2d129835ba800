"""The inline check of the usual job document must agree with the checker table exactly.

`validate_job_doc` takes a shortcut for documents shaped like the Job builder's; the checker
table (`_JOB_DOC`) is the reference. For every document both must accept with identical values
(types included) or both reject, and the shortcut must never be the one to reject.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobcollection.core import document
from jobcollection.core.constants import FOREVER, FOREVER_DATE
from jobcollection.core.ejson import Date
from jobcollection.core.params import check_save_doc, validate_job_doc
from jobcollection.errors import JobValidationError

NOW = 1_700_000_000_000


class MyInt(int):
    pass


class MyStr(str):
    __slots__ = ()


class MyDict(dict[str, Any]):
    pass


def usual_doc(**changes: object) -> dict[str, Any]:
    """The document `Job(jc, "email", {...})` builds, with changes."""
    doc: dict[str, Any] = {
        "runId": None, "status": "waiting", "type": "email", "data": {"to": "a@b.c"},
        "updated": NOW, "created": NOW, "priority": 0, "retries": 1, "repeatRetries": 1,
        "retryWait": 300000, "retried": 0, "retryBackoff": "constant",
        "retryUntil": FOREVER_DATE, "repeats": 0, "repeatWait": 300000, "repeated": 0,
        "repeatUntil": FOREVER_DATE, "after": 0,
        "progress": {"completed": 0, "total": 1, "percent": 0},
        "depends": [], "resolved": [],
        "log": [{"time": NOW, "runId": None, "level": "info", "message": "Constructed"}],
    }  # fmt: skip
    doc.update(changes)
    return doc


def strict(value: object, top: bool = False) -> object:
    """A form of `value` in which 1, 1.0 and True differ, as do nested key orders (a top-level
    key order is not kept by the table either, and nothing depends on it)."""
    if isinstance(value, dict):
        items = [(k, strict(v)) for k, v in value.items()]
        return (type(value).__name__, tuple(sorted(items) if top else items))
    if isinstance(value, list):
        return ("list", tuple(strict(v) for v in value))
    return (type(value).__name__, repr(value))


def by_table(doc: object) -> dict[str, object]:
    result = document._JOB_DOC(doc, "doc")
    assert isinstance(result, dict)
    if result.get("_id", "") is None:
        del result["_id"]
    return result


def outcome(check: Any, doc: object) -> tuple[str, object]:
    try:
        return "ok", strict(check(doc), top=True)
    except JobValidationError as error:
        return "error", (error.field, error.problem)


def entries_sorted(result: dict[str, Any]) -> dict[str, Any]:
    """A shared log keeps its entries as they are, in their own key order (storage formats a
    plain entry in one fixed order, so the order is never seen)."""
    if isinstance(result.get("log"), list):
        result["log"] = [dict(sorted(entry.items())) for entry in result["log"]]
    return result


def assert_agree(doc: object) -> None:
    reference = outcome(by_table, doc)
    assert outcome(validate_job_doc, doc) == reference
    shared = outcome(lambda d: entries_sorted(validate_job_doc(d, share=True)), doc)
    assert shared == outcome(lambda d: entries_sorted(by_table(d)), doc)


ODD_VALUES: list[object] = [
    None, True, False, 0, 1, -1, 1.0, 0.5, -0.0, math.nan, math.inf, -math.inf, 2**31, -(2**31),
    2**31 - 1, -(2**31) - 1, FOREVER, FOREVER + 1, FOREVER_DATE, FOREVER_DATE + 1, -FOREVER_DATE,
    -FOREVER_DATE - 1, 2**70, "", "x", "waiting", "paused", "ready", "exponential", "info",
    MyInt(3), MyStr("waiting"), [], ["a"], [""], [1], {}, MyDict(), Date(5),
    datetime(2020, 1, 1, tzinfo=UTC), timedelta(seconds=1), {"schedules": [{"h": [1]}]},
    {"completed": 0, "total": 1, "percent": 0},
]  # fmt: skip
FIELDS = sorted(usual_doc())


def test_the_usual_document_takes_the_shortcut() -> None:
    doc = usual_doc()
    assert document.usual_values(doc) is not None
    assert validate_job_doc(doc) == by_table(doc)
    assert_agree(doc)


@pytest.mark.parametrize("key", FIELDS)
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_every_field_with_odd_values_agrees_with_the_table(key: str, value: object) -> None:
    assert_agree(usual_doc(**{key: value}))


@pytest.mark.parametrize("key", FIELDS)
def test_a_missing_or_extra_key_agrees_with_the_table(key: str) -> None:
    doc = usual_doc()
    del doc[key]
    assert_agree(doc)
    assert_agree({**doc, "surprise": 1})  # 22 keys again, one of them unknown
    assert_agree(usual_doc(_id="abc"))
    assert_agree(usual_doc(_id=None))


@pytest.mark.parametrize(
    "progress",
    [
        {"total": 1, "completed": 0, "percent": 0},  # another key order
        {"completed": 0.5, "total": 2, "percent": 25.0},
        {"completed": 0, "total": 1},
        {"completed": 0, "total": 1, "percent": 0, "x": 1},
        {"completed": True, "total": 1, "percent": 0},
        {"completed": -1, "total": 1, "percent": 0},
        {"completed": math.nan, "total": 1, "percent": 0},
        {"completed": MyInt(0), "total": 1, "percent": 0},
    ],
    ids=repr,
)
def test_progress_variants_agree(progress: dict[str, object]) -> None:
    assert_agree(usual_doc(progress=progress))


ENTRY = {"time": NOW, "runId": None, "level": "info", "message": "m"}


@pytest.mark.parametrize(
    "log",
    [
        [],
        [ENTRY, ENTRY],
        [{"message": "m", "level": "info", "runId": None, "time": NOW}],  # another key order
        [{**ENTRY, "runId": "r"}],
        [{**ENTRY, "runId": ""}],
        [{**ENTRY, "level": "debug"}],
        [{**ENTRY, "time": 1.0}],
        [{**ENTRY, "time": True}],
        [{**ENTRY, "message": MyStr("m")}],
        [{**ENTRY, "data": {"k": 1}}],
        [{k: v for k, v in ENTRY.items() if k != "runId"}],
        [ENTRY, "x"],
        ({**ENTRY},),
        None,
    ],
    ids=repr,
)
def test_log_variants_agree(log: object) -> None:
    assert_agree(usual_doc(log=log))


def test_the_result_is_a_copy_and_the_input_is_untouched() -> None:
    doc = usual_doc(depends=["a"])
    for share in (False, True):
        result = validate_job_doc(doc, share=share)
        assert result is not doc
        assert result["progress"] is not doc["progress"]
        result["status"] = "changed"
        assert doc["status"] == "waiting"
    fresh = validate_job_doc(doc)
    for key in ("data", "depends", "resolved", "log"):
        assert fresh[key] is not doc[key]
    assert fresh["log"][0] is not doc["log"][0]


def test_a_save_shares_what_it_only_reads() -> None:
    doc = usual_doc()
    saved = check_save_doc(doc)
    assert saved["data"] is doc["data"]
    assert saved["log"] is doc["log"]
    with pytest.raises(JobValidationError) as error:
        check_save_doc(usual_doc(status="ready"))
    assert error.value.field == "doc.status"


field_values = st.sampled_from(ODD_VALUES) | st.integers() | st.floats() | st.text(max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=4))
def test_random_changes_agree_with_the_table(changes: dict[str, object]) -> None:
    assert_agree(usual_doc(**changes))
