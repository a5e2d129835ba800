"""Row encoding shortcuts of the SQLite adapter must store exactly what the general path does."""

from __future__ import annotations

import math
from typing import Any

import pytest

from jobcollection.core import ejson
from jobcollection.core.constants import FOREVER_DATE
from jobcollection.core.ejson import CustomType, Date
from jobcollection.storage import _columns as cols

NOW = 1_700_000_000_000


def stored_doc(**changes: object) -> dict[str, Any]:
    """A new job as the engine hands it to storage (saved from the Job builder's document)."""
    entry = {"time": NOW, "runId": None, "level": "info", "message": "Constructed"}
    doc: dict[str, Any] = {
        "_id": "abcdefghijkmnopqr", "runId": None, "status": "ready", "type": "email",
        "data": {"to": "a@b.c"}, "updated": NOW, "created": NOW, "priority": 0, "retries": 1,
        "repeatRetries": 1, "retryWait": 300000, "retried": 0, "retryBackoff": "constant",
        "retryUntil": FOREVER_DATE, "repeats": 0, "repeatWait": 300000, "repeated": 0,
        "repeatUntil": FOREVER_DATE, "after": NOW,
        "progress": {"completed": 0, "total": 1, "percent": 0},
        "depends": [], "resolved": [],
        "log": [entry, {**entry, "message": "Job Submitted"}],
    }  # fmt: skip
    doc.update(changes)
    return doc


def as_columns(columns: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    full = dict.fromkeys(cols.INSERT_COLUMNS)
    full.update(zip(columns, row, strict=True))
    return full


DOCS = [
    stored_doc(),
    stored_doc(data={"when": Date(5), "b": b"\x00", "x": math.inf, "$date": 1}),
    stored_doc(data={"s": "é\u2028", "l": [1, 2.5, None, True], "o": CustomType("oid", "ab")}),
    stored_doc(progress={"total": 2, "completed": 0.5, "percent": 25.0}),
    stored_doc(progress={"completed": True, "total": 1, "percent": 0}),
    stored_doc(repeatWait={"schedules": [{"h": [10]}], "exceptions": []}),
    stored_doc(depends=["a", "b"], resolved=["c"], status="waiting"),
    stored_doc(log=[{"time": NOW, "runId": "r", "level": "info", "message": "m", "data": {}}]),
    stored_doc(log=[{"message": "m", "level": "info", "runId": None, "time": NOW}]),
    stored_doc(log=[]),
    stored_doc(runId="r1"),
    stored_doc(workTimeout=5, expiresAfter=NOW),
    stored_doc(result={"ok": True}, failures=[{"value": "x"}], _private={"p": 1}),
]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: repr(d)[:80])
def test_every_row_stores_what_the_general_encoding_stores(doc: dict[str, Any]) -> None:
    ((columns, rows),) = cols.insert_rows("q", [doc])
    assert as_columns(columns, rows[0]) == as_columns(
        cols.INSERT_COLUMNS, cols.insert_row("q", doc)
    )


def test_usual_rows_leave_out_only_columns_that_are_null() -> None:
    runs = cols.insert_rows("q", [stored_doc(), stored_doc(_id="x2"), stored_doc(runId="r")])
    assert [(columns, len(rows)) for columns, rows in runs] == [
        (cols.USUAL_COLUMNS, 2),
        (cols.INSERT_COLUMNS, 1),
    ]
    full = cols.insert_row("q", stored_doc())
    left_out = [v for c, v in zip(cols.INSERT_COLUMNS, full, strict=True) if c not in runs[0][0]]
    assert left_out == [None] * len(left_out)


def test_entries_shared_by_a_batch_are_formatted_like_separate_ones() -> None:
    shared = {"time": NOW, "runId": None, "level": "info", "message": "Job Submitted"}
    docs = [stored_doc(_id=f"id{n}", log=[{**shared, "message": str(n)}, shared]) for n in range(3)]
    ((_, rows),) = cols.insert_rows("q", docs)
    assert [row[-1] for row in rows] == [cols.log_text(doc["log"]) for doc in docs]
    assert rows[0][-1] == (
        f'[{{"time":{NOW},"runId":null,"level":"info","message":"0"}},'
        f'{{"time":{NOW},"runId":null,"level":"info","message":"Job Submitted"}}]'
    )


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"a": 1},
        {"nested": {"$date": 3}},
        {"d": Date(-5), "b": b"xy", "n": math.nan, "i": -math.inf},
        {"s": 'quote " and \\ and \u00e9 and \U0001f600'},
        {1: "int key", None: "none key"},
        [1, {"$binary": "eHk="}],
        "text",
    ],
    ids=repr,
)
def test_user_data_text_is_ejson_dumps(value: object) -> None:
    assert cols._ejson(value) == ejson.dumps(value)


def test_user_data_that_cannot_be_stored_fails_as_before() -> None:
    for value in ({(1, 2): "tuple key"}, {"o": object()}):
        with pytest.raises(TypeError):
            ejson.dumps(value)
        with pytest.raises(TypeError):
            cols._ejson(value)
    circular: dict[str, object] = {}
    circular["self"] = circular
    with pytest.raises(RecursionError):
        cols._ejson(circular)
