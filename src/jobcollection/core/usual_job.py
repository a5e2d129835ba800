"""The usual job document, recognised inline: the batch save's fast path (`UsualJob`).

Pure, like `document` (whose checker table alone explains a rejection).
"""

from __future__ import annotations

import operator
import sys
from typing import Any, Final, NamedTuple

from jobcollection.core.constants import (
    FOREVER,
    FOREVER_DATE,
    INT32_MAX,
    INT32_MIN,
    JOB_LOG_LEVELS,
    JOB_RETRY_BACKOFF_METHODS,
    JOB_STATUSES,
)

# -- the usual document, checked inline---------------------------------------------------
#
# Nearly every saved document is what the Job builder makes: the 22 keys below, exact `int`s and
# `str`s, a numeric `repeatWait`, log entries without `data`. `usual_values` recognises that
# shape with inline checks (a third of the cost of the checker table above); such a document
# needs no normalization, so a copy of it is what the table would return. Anything else, valid
# or not, goes through the table, which alone reports errors: both paths accept exactly the same
# documents, the fast one never has to explain a rejection. Subclasses of bool, int, str, list
# or dict always take the table path.

_USUAL_TIMES: Final = ("after", "updated", "created", "retryUntil", "repeatUntil")
# Integers in 0..FOREVER. Above FOREVER `retries`/`repeats`/`repeatRetries` are clamped and the
# others rejected: both are left to the table.
_USUAL_COUNTS: Final = (
    "retries", "retried", "repeatRetries", "retryWait", "repeats", "repeated", "repeatWait"
)  # fmt: skip
_USUAL_OTHERS: Final = (
    "runId", "type", "status", "priority", "retryBackoff", "data", "progress", "depends",
    "resolved", "log",
)  # fmt: skip
USUAL_FIELDS: Final = (*_USUAL_TIMES, *_USUAL_COUNTS, *_USUAL_OTHERS)
"""The document keys of `UsualJob`'s values, in order."""


class UsualJob(NamedTuple):
    """A new job of the usual shape (what `usual_values` recognises), its 22 values by name
    in `USUAL_FIELDS` order: the row a batch save hands the storage (`insert_ready`) without
    building a document. A named tuple, so reading it costs no more than a plain one."""

    after: int
    updated: int
    created: int
    retry_until: int
    repeat_until: int
    retries: int
    retried: int
    repeat_retries: int
    retry_wait: int
    repeats: int
    repeated: int
    repeat_wait: int
    run_id: str | None
    type: str
    status: str
    priority: int
    retry_backoff: str
    data: dict[str, Any]
    progress: dict[str, Any]
    depends: list[str]
    resolved: list[str]
    log: list[dict[str, Any]]


_make_usual = UsualJob._make
_USUAL_KEYS: Final = frozenset(USUAL_FIELDS)
assert len(_USUAL_KEYS) == 22
_usual_of = operator.itemgetter(*USUAL_FIELDS)
_STATUSES: Final = frozenset(JOB_STATUSES)
_BACKOFFS: Final = frozenset(JOB_RETRY_BACKOFF_METHODS)
_LEVELS: Final = frozenset(JOB_LOG_LEVELS)
_ENTRY_KEYS: Final = frozenset(("time", "runId", "level", "message"))
_entry_values = operator.itemgetter("time", "runId", "level", "message")
_MAX_FLOAT: Final = sys.float_info.max


def usual_values(doc: object) -> UsualJob | None:
    """The values of `doc` as a `UsualJob` if it has the usual shape and `_JOB_DOC` accepts
    it without changing a value, else None (which says nothing about its validity).

    A batch save reads the values straight from this row: one lookup of the 22 keys serves
    both the check and the stored row.
    """
    if type(doc) is not dict or len(doc) != len(_USUAL_KEYS):
        return None
    try:  # 22 keys, and each of the 22 usual ones found: exactly the usual key set
        values: tuple[Any, ...] = _usual_of(doc)
    except KeyError:
        return None
    (
        after, updated, created, retry_until, repeat_until,
        retries, retried, repeat_retries, retry_wait, repeats, repeated, repeat_wait,
        run_id, job_type, status, priority, backoff, data, progress, depends, resolved, log,
    ) = values  # fmt: skip
    # One chained comparison and four C calls check the 13 integers (this runs per saved job).
    if not (
        type(after)
        is type(updated)
        is type(created)
        is type(retry_until)
        is type(repeat_until)
        is type(retries)
        is type(retried)
        is type(repeat_retries)
        is type(retry_wait)
        is type(repeats)
        is type(repeated)
        is type(repeat_wait)
        is type(priority)
        is int
    ):
        return None
    times, counts = values[:5], values[5:12]
    if (
        min(times) < -FOREVER_DATE
        or max(times) > FOREVER_DATE
        or min(counts) < 0
        or max(counts) > FOREVER
        or not INT32_MIN <= priority <= INT32_MAX
    ):
        return None
    if (
        (run_id is None or (type(run_id) is str and run_id and "\x00" not in run_id))
        and (type(job_type) is str and job_type and "\x00" not in job_type)
        and (type(status) is str and status in _STATUSES)
        and (type(backoff) is str and backoff in _BACKOFFS)
        and type(data) is dict
        and _is_usual_progress(progress)
        and type(depends) is list
        and (not depends or _are_usual_ids(depends))
        and type(resolved) is list
        and (not resolved or _are_usual_ids(resolved))
        and _is_usual_log(log)
    ):
        return _make_usual(values)
    return None


def usual_doc(values: UsualJob) -> dict[str, Any]:
    """What `validate_job_doc(doc, share=True)` returns for the document `usual_values` read
    `values` from."""
    return copy_usual_doc(dict(zip(USUAL_FIELDS, values, strict=True)), share=True)


def copy_usual_doc(doc: dict[str, Any], share: bool) -> dict[str, object]:
    """The table's result for a usual document: a copy, `progress` in the table's key order."""
    result = dict(doc)
    progress = doc["progress"]
    result["progress"] = {
        "completed": progress["completed"],
        "total": progress["total"],
        "percent": progress["percent"],
    }
    if not share:
        result["data"] = dict(doc["data"])
        result["depends"] = list(doc["depends"])
        result["resolved"] = list(doc["resolved"])
        entries = map(_entry_values, doc["log"])
        result["log"] = [
            {"time": t, "runId": run, "level": level, "message": m} for t, run, level, m in entries
        ]
    return result


def _is_usual_number(value: object) -> bool:
    """What `check_number` accepts, for exact ints and floats."""
    if type(value) is int:
        return value >= 0
    return type(value) is float and 0 <= value <= _MAX_FLOAT  # NaN fails both comparisons


def _is_usual_progress(value: object) -> bool:
    if type(value) is not dict or len(value) != 3:
        return False
    try:
        completed, total, percent = value["completed"], value["total"], value["percent"]
    except KeyError:
        return False
    if type(completed) is int and type(total) is int and type(percent) is int:
        return completed >= 0 and total >= 0 and percent >= 0  # the usual case, without calls
    return _is_usual_number(completed) and _is_usual_number(total) and _is_usual_number(percent)


def _are_usual_ids(value: object) -> bool:
    if type(value) is not list:
        return False
    for item in value:
        if type(item) is not str or not item or "\x00" in item:
            return False
    return True


def _is_usual_log(value: object) -> bool:
    """Log entries without `data`, as clients make them."""
    if type(value) is not list:
        return False
    for entry in value:
        if type(entry) is not dict or entry.keys() != _ENTRY_KEYS:
            return False
        time, run_id, level, message = _entry_values(entry)
        if not (
            (type(time) is int and -FOREVER_DATE <= time <= FOREVER_DATE)
            and (run_id is None or (type(run_id) is str and run_id))
            and (type(level) is str and level in _LEVELS)
            and type(message) is str
        ):
            return False
    return True
