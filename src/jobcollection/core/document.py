"""Value checks and the closed job-document pattern (docs/jobs.md, "The job document").

Owns the primitive validators shared by `params` (ids, JS-style numbers and integers, times,
durations, plain objects) and `validate_job_doc`. Pure: imports only the standard library,
`errors` and sibling `core` modules. Every failure is a `JobValidationError(field, problem)`
whose `field` is the dotted path of the bad value, e.g. `doc.log[2].level`.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from jobcollection.core.constants import (
    FOREVER,
    FOREVER_DATE,
    JOB_LOG_LEVELS,
    JOB_RETRY_BACKOFF_METHODS,
    JOB_STATUSES,
)
from jobcollection.core.ejson import Date
from jobcollection.core.schedule import validate_schedule
from jobcollection.errors import JobValidationError

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "check_bool",
    "check_id",
    "check_integer",
    "check_number",
    "check_plain_object",
    "check_string",
    "check_wait",
    "one_of",
    "show",
    "to_duration_ms",
    "to_ms",
    "validate_job_doc",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

Checker = Callable[[object, str], object]


def show(value: object) -> str:
    """Short printable form of a rejected value for error texts."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _integral(value: object) -> int | None:
    """`value` as an int if it is a JS integer (int, or float with floor(v) == v), else None."""
    if type(value) is int:  # the usual case, first (bool is a subclass, not this type)
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def check_number(value: object, field: str, *, positive: bool = False) -> int | float:
    """A finite number (never bool) >= 0, or > 0 with `positive`; returned unchanged."""
    rule = "> 0" if positive else ">= 0"
    if not _is_number(value):
        raise JobValidationError(field, f"must be a number {rule}, got {show(value)}")
    assert isinstance(value, int | float)
    if value < 0 or (positive and value == 0):
        raise JobValidationError(field, f"must be a number {rule}, got {show(value)}")
    return value


def check_integer(
    value: object,
    field: str,
    minimum: int = 0,
    maximum: int = FOREVER,
    *,
    clamp: bool = False,
) -> int:
    """A JS integer (`3.0` counts as 3) >= `minimum`; above `maximum` clamp or reject."""
    if type(value) is int and minimum <= value <= maximum:  # fast path: runs on every save
        return value
    number = _integral(value)
    if number is None or number < minimum:
        raise JobValidationError(field, f"must be an integer >= {minimum}, got {show(value)}")
    if number > maximum:
        if clamp:
            return maximum
        raise JobValidationError(field, f"must be an integer <= {maximum}, got {show(value)}")
    return number


def check_bool(value: object, field: str) -> bool:
    """Exactly `True` or `False` (0 and 1 are not booleans)."""
    if not isinstance(value, bool):
        raise JobValidationError(field, f"must be a boolean, got {show(value)}")
    return value


def check_string(value: object, field: str) -> str:
    """Any string, including the empty one."""
    if not isinstance(value, str):
        raise JobValidationError(field, f"must be a string, got {show(value)}")
    return value


def check_id(value: object, field: str) -> str:
    """A job or run id: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise JobValidationError(field, f"must be a non-empty string id, got {show(value)}")
    return value


def _check_id_or_none(value: object, field: str) -> str | None:
    return None if value is None else check_id(value, field)


def check_plain_object(value: object, field: str) -> dict[str, object]:
    """A plain object (dict); a shallow copy is returned and its contents are not inspected."""
    if not isinstance(value, dict):
        raise JobValidationError(field, f"must be a plain object, got {show(value)}")
    return dict(value)


def to_ms(value: object, field: str) -> int:
    """A time as integer ms: int ms (or integral float), EJSON `Date`, or aware `datetime`."""
    if type(value) is int and -FOREVER_DATE <= value <= FOREVER_DATE:  # fast path
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise JobValidationError(field, f"must be a timezone-aware datetime, got {value!r}")
        value = (value - _EPOCH) // _ONE_MS
    elif isinstance(value, Date):
        value = value.ms
    ms = _integral(value)
    if ms is None or not -FOREVER_DATE <= ms <= FOREVER_DATE:
        raise JobValidationError(
            field,
            f"must be a time (integer ms between -{FOREVER_DATE} and {FOREVER_DATE}, or an aware"
            f" datetime), got {show(value)}",
        )
    return ms


def to_duration_ms(value: object, field: str) -> int:
    """A duration as integer ms >= 0 (at most `FOREVER`): int ms or `datetime.timedelta`."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise JobValidationError(field, f"must be a duration >= 0, got {value!r}")
        value = value // _ONE_MS
    return check_integer(value, field, 0)


def check_wait(value: object, field: str) -> int | dict[str, object]:
    """`repeatWait` / rerun `wait`: a duration in ms or a later.js schedule object."""
    if isinstance(value, dict):
        schedule: dict[str, object] = dict(validate_schedule(value, field))
        return schedule
    if isinstance(value, timedelta) or _is_number(value):
        return to_duration_ms(value, field)
    raise JobValidationError(
        field, f"must be an integer >= 0 or a schedule object, got {show(value)}"
    )


def one_of(choices: tuple[str, ...]) -> Callable[[object, str], str]:
    """A checker accepting exactly one of the given strings."""

    def check(value: object, field: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise JobValidationError(
                field, f"must be one of {', '.join(choices)}; got {show(value)}"
            )
        return value

    return check


def _list_of(item: Checker) -> Checker:
    def check(value: object, field: str) -> list[object]:
        if not isinstance(value, list):
            raise JobValidationError(field, f"must be a list, got {show(value)}")
        return [item(element, f"{field}[{i}]") for i, element in enumerate(value)]

    return check


def _closed_object(fields: dict[str, tuple[Checker, bool]]) -> Checker:
    """A plain object with exactly the given keys: name -> (checker, required)."""

    # Field paths ("doc.after", ...) per parent path, built once: this check runs on every save.
    plans: dict[str, list[tuple[str, str, Checker, bool]]] = {}

    def plan_for(field: str) -> list[tuple[str, str, Checker, bool]]:
        plan = plans.get(field)
        if plan is None:
            plan = [
                (name, f"{field}.{name}", c, required) for name, (c, required) in fields.items()
            ]
            if len(plans) < 64:  # log entries have a path per index; keep the cache small
                plans[field] = plan
        return plan

    def check(value: object, field: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise JobValidationError(field, f"must be a plain object, got {show(value)}")
        for key in value:
            if key not in fields:
                raise JobValidationError(f"{field}.{key}", "is not an allowed field")
        result: dict[str, object] = {}
        for name, path, checker, required in plan_for(field):
            if name in value:
                result[name] = checker(value[name], path)
            elif required:
                raise JobValidationError(path, "is required")
        return result

    return check


def _integer_from(minimum: int, *, clamp: bool = False) -> Checker:
    def check(value: object, field: str) -> int:
        return check_integer(value, field, minimum, clamp=clamp)

    return check


def _check_type(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise JobValidationError(field, f"must be a non-empty string, got {show(value)}")
    return value


def _check_priority(value: object, field: str) -> int:
    return check_integer(value, field, INT32_MIN, INT32_MAX)


_LOG_ENTRY = _closed_object(
    {
        "time": (to_ms, True),
        "runId": (_check_id_or_none, True),
        "level": (one_of(JOB_LOG_LEVELS), True),
        "message": (check_string, True),
        "data": (check_plain_object, False),
    }
)

_PROGRESS = _closed_object(dict.fromkeys(("completed", "total", "percent"), (check_number, True)))

# The job document, field by field: name -> (checker, required).
_JOB_DOC = _closed_object(
    {
        "_id": (_check_id_or_none, False),
        "runId": (_check_id_or_none, True),
        "type": (_check_type, True),
        "status": (one_of(JOB_STATUSES), True),
        "data": (check_plain_object, True),
        "result": (check_plain_object, False),
        "failures": (_list_of(check_plain_object), False),
        "priority": (_check_priority, True),
        "depends": (_list_of(check_id), True),
        "resolved": (_list_of(check_id), True),
        "after": (to_ms, True),
        "updated": (to_ms, True),
        "workTimeout": (_integer_from(1), False),
        "expiresAfter": (to_ms, False),
        "log": (_list_of(_LOG_ENTRY), False),
        "progress": (_PROGRESS, True),
        "retries": (_integer_from(0, clamp=True), True),
        "retried": (_integer_from(0), True),
        "repeatRetries": (_integer_from(0, clamp=True), False),
        "retryUntil": (to_ms, True),
        "retryWait": (to_duration_ms, True),
        "retryBackoff": (one_of(JOB_RETRY_BACKOFF_METHODS), True),
        "repeats": (_integer_from(0, clamp=True), True),
        "repeated": (_integer_from(0), True),
        "repeatUntil": (to_ms, True),
        "repeatWait": (check_wait, True),
        "created": (to_ms, True),
    }
)


def validate_job_doc(doc: object, *, share: bool = False) -> dict[str, object]:
    """Check a job document against the closed job-document pattern.

    Returns a new normalized dict (the input is untouched): times and integers as `int`,
    `retries`/`repeats`/`repeatRetries` clamped to `FOREVER`, `repeatWait` schedules normalized,
    and `_id: None` dropped. Whether the status suits `jobSave` is checked by `params`.
    Nested lists and dicts are new too, unless `share`: then a document that needs no
    normalization keeps its `data`, `depends`, `resolved` and `log` (entries in their own key
    order), for callers that only read them, such as a save that turns them into text at once.

    Raises:
        JobValidationError: naming the first bad field, e.g. `doc.log[2].level`.
    """
    if isinstance(doc, dict) and usual_values(doc) is not None:
        return _copy_usual_doc(doc, share)
    result = _JOB_DOC(doc, "doc")
    assert isinstance(result, dict)
    if result.get("_id", "") is None:
        del result["_id"]
    return result


# -- the usual document, checked inline ----------------------------------------------------
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
        (run_id is None or (type(run_id) is str and run_id))
        and (type(job_type) is str and job_type)
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
    return _copy_usual_doc(dict(zip(USUAL_FIELDS, values, strict=True)), share=True)


def _copy_usual_doc(doc: dict[str, Any], share: bool) -> dict[str, object]:
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
        if type(item) is not str or not item:
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
