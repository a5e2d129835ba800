"""Pure lifecycle rules: log entries, retry backoff, repeats and rerun copies.

Every function takes `now` (integer ms) and returns new values; nothing here reads a clock.
"""

from __future__ import annotations

import copy
from typing import Any

from .constants import FOREVER, FOREVER_DATE, SCHEDULE_GUARD_MS, Status
from .schedule import is_schedule, next_occurrence

Doc = dict[str, Any]


def entry(now: int, message: str, level: str = "info", run_id: str | None = None) -> Doc:
    """A server-generated log entry: exactly time, runId, level, message."""
    return {"time": now, "runId": run_id, "level": level, "message": message}


def fresh_progress() -> Doc:
    return {"completed": 0, "total": 1, "percent": 0}


def retry_after(doc: Doc, now: int) -> int:
    """When the next attempt may start: constant wait, or doubling per run already made."""
    wait = int(doc["retryWait"])
    if doc["retryBackoff"] == "exponential":
        wait *= 2 ** max(int(doc["retried"]) - 1, 0)
    return now + wait


def fail_outcome(doc: Doc, now: int, fatal: bool) -> tuple[Status, int]:
    """The status and `after` of a failed run. An `after` past the last JS date means failed."""
    after = retry_after(doc, now)
    if after > FOREVER_DATE:
        return Status.FAILED, FOREVER_DATE
    retry = not fatal and doc["retries"] > 0 and doc["retryUntil"] >= after
    return (Status.WAITING if retry else Status.FAILED), after


def fail_message(err: Doc, fatal_status: bool) -> str:
    value = err.get("value")
    fatal = " Fatal" if fatal_status else ""
    detail = f": {value}" if isinstance(value, str) else ""
    return f"Job Failed with{fatal} Error{detail}."


def wait_after(wait: int | Doc, now: int) -> int | None:
    """Start time for a repeat/rerun waiting `wait`: ms, or the next schedule occurrence."""
    if is_schedule(wait):
        assert isinstance(wait, dict)
        return next_occurrence(wait, now + SCHEDULE_GUARD_MS)
    assert isinstance(wait, int)
    return min(now + wait, FOREVER_DATE)


def repeat_after(doc: Doc, now: int) -> int | None:
    """When the automatic repeat of a completed job starts, or None for no repeat."""
    if doc["repeats"] <= 0:
        return None
    after = wait_after(doc["repeatWait"], now)
    if after is None or after > doc["repeatUntil"]:
        return None
    return after


def rerun_copy(doc: Doc, new_id: str, now: int, repeats: int, until: int, after: int) -> Doc:
    """A new waiting job copied from a completed one (rerun and automatic repeat)."""
    new = {
        k: copy.deepcopy(v)
        for k, v in doc.items()
        if k not in ("_id", "result", "failures", "expiresAfter", "workTimeout", "log")
    }
    repeat_retries = doc.get("repeatRetries")
    if repeat_retries is None:
        repeat_retries = doc["retries"] + doc["retried"]
    new.update(
        _id=new_id,
        runId=None,
        status=Status.WAITING.value,
        repeatRetries=repeat_retries,
        retries=min(repeat_retries, FOREVER),
        retried=0,
        retryUntil=until,
        repeatUntil=until,
        repeats=min(repeats, FOREVER),
        repeated=doc["repeated"] + 1,
        created=now,
        updated=now,
        progress=fresh_progress(),
        log=[entry(now, "Rerunning job")],
        after=after,
    )
    return new


def clamp_new_doc(doc: Doc, now: int, *, copy: bool = True) -> Doc | None:
    """Save-time clamping: times up to now; a schedule moves `after` to its next occurrence.

    Returns None when a scheduled job has no occurrence before its `repeatUntil`. With
    `copy=False` a document the caller owns (a fresh validated copy) is changed in place.
    """
    if copy:
        doc = dict(doc)
    for key in ("after", "retryUntil", "repeatUntil"):
        if doc[key] < now:
            doc[key] = now
    for key in ("repeats", "retries"):
        if doc[key] > FOREVER:
            doc[key] = FOREVER
    if is_schedule(doc["repeatWait"]):
        after = next_occurrence(doc["repeatWait"], doc["after"])
        if after is None or after > doc["repeatUntil"]:
            return None
        doc["after"] = after
    return doc
