"""Value checks and the closed job-document pattern (docs/jobs.md, "The job document").

Owns the primitive validators shared by `params` (ids, JS-style numbers and integers, times,
durations, plain objects) and `validate_job_doc`. Pure: imports only the standard library,
`errors` and sibling `core` modules. Every failure is a `JobValidationError(field, problem)`
whose `field` is the dotted path of the bad value, e.g. `doc.log[2].level`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from jobcollection.core.constants import (
    FOREVER,
    FOREVER_DATE,
    INT32_MAX,
    INT32_MIN,
    JOB_LOG_LEVELS,
    JOB_RETRY_BACKOFF_METHODS,
    JOB_STATUSES,
)
from jobcollection.core.ejson import Date
from jobcollection.core.schedule import validate_schedule
from jobcollection.core.usual_job import copy_usual_doc, usual_values
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
    """A job or run id: a non-empty string without NUL characters."""
    if not isinstance(value, str) or not value:
        raise JobValidationError(field, f"must be a non-empty string id, got {show(value)}")
    return _no_nul(value, field)


def _no_nul(value: str, field: str) -> str:
    """Names and ids never hold a NUL character (PostgreSQL's text cannot store one, and a
    name that holds one is a mistake on any storage)."""
    if "\x00" in value:
        raise JobValidationError(field, f"must not contain a NUL character, got {show(value)}")
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


def check_type(value: object, field: str) -> str:
    """A job type: a non-empty string without NUL characters."""
    if not isinstance(value, str) or not value:
        raise JobValidationError(field, f"must be a non-empty string, got {show(value)}")
    return _no_nul(value, field)


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
        "type": (check_type, True),
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
        return copy_usual_doc(doc, share)
    result = _JOB_DOC(doc, "doc")
    assert isinstance(result, dict)
    if result.get("_id", "") is None:
        del result["_id"]
    return result
