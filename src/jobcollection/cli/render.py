"""Plain-text output: aligned tables, ISO times, JSON lines and the `show` view of a job."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core import ejson
from ..core.constants import FOREVER, FOREVER_DATE, JOB_PRIORITIES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIME_FIELDS = frozenset(
    ("after", "updated", "created", "retryUntil", "repeatUntil", "expiresAfter")
)
_PRIORITY_NAMES = {value: name for name, value in JOB_PRIORITIES.items()}


def iso(ms: object, *, precise: bool = False) -> str:
    """A time in ms as ISO 8601 UTC (`2030-01-31T12:00:00Z`); `forever` for foreverDate."""
    if isinstance(ms, ejson.Date):
        ms = ms.ms
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return str(ms)
    if ms >= FOREVER_DATE:
        return "forever"
    try:
        moment = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return str(ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if precise:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def to_json(value: Any, *, indent: int | None = None) -> str:
    """EJSON text of a value (dates as {"$date": ms}); one line unless `indent`."""
    return json.dumps(ejson.to_ejson(value), indent=indent, ensure_ascii=False, allow_nan=False)


def columns(rows: Iterable[Sequence[object]], right: Iterable[int] = ()) -> list[str]:
    """Rows as aligned lines, columns separated by two spaces; `right` columns right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    align_right = set(right)
    return [
        "  ".join(
            cell.rjust(width) if i in align_right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()
) -> str:
    """Rows under a header line, aligned (see `columns`)."""
    return "\n".join(columns([headers, *rows], right))


def percent(doc: Mapping[str, Any]) -> str:
    progress = doc.get("progress")
    value = progress.get("percent", 0) if isinstance(progress, dict) else 0
    if not isinstance(value, int | float):
        return "?"
    return f"{value:.0f}%"


def count(value: object) -> str:
    return "forever" if value == FOREVER else str(value)


def priority(value: object) -> object:
    """A priority by its name when it has one (`high` for -10), else the number."""
    return _PRIORITY_NAMES.get(value, value) if type(value) is int else value


def job_row(doc: Mapping[str, Any]) -> list[object]:
    """One `ls` row: id, type, status, priority, runs so far, runs left, updated, progress."""
    return [
        doc.get("_id", ""),
        doc.get("type", ""),
        doc.get("status", ""),
        priority(doc.get("priority", "")),
        doc.get("retried", 0),
        count(doc.get("retries", 0)),
        iso(doc.get("updated")),
        percent(doc),
    ]


# RUNS: the runs the job has had (retried); RUNS LEFT: how many more it may get (retries).
JOB_HEADERS = ("ID", "TYPE", "STATUS", "PRIORITY", "RUNS", "RUNS LEFT", "UPDATED", "PROGRESS")
JOB_RIGHT = (4, 5, 7)


def cut_note(shown: int, total: int, order: str, at_most: int) -> str:
    """What `ls` says under a list its limit cut short."""
    of = f"{at_most:,} or more" if total >= at_most else f"{total:,}"
    return f"showing the {order} {shown:,} of {of} jobs; --limit N for more"


_SHOW_ORDER = (
    "_id",
    "type",
    "status",
    "priority",
    "data",
    "result",
    "progress",
    "retried",
    "retries",
    "retryWait",
    "retryBackoff",
    "retryUntil",
    "repeats",
    "repeated",
    "repeatRetries",
    "repeatWait",
    "repeatUntil",
    "after",
    "depends",
    "resolved",
    "runId",
    "workTimeout",
    "expiresAfter",
    "created",
    "updated",
)


def _field(key: str, value: Any) -> str:
    if key in TIME_FIELDS:
        text = iso(value, precise=True)
        return text if text == "forever" else f"{text} ({value})"
    if key == "priority" and value in _PRIORITY_NAMES:
        return f"{value} ({_PRIORITY_NAMES[value]})"
    if key in ("retries", "repeats", "repeatRetries"):
        return count(value)
    if key in ("retryWait", "workTimeout") or (key == "repeatWait" and isinstance(value, int)):
        return f"{value} ms"
    if key == "progress" and isinstance(value, dict):
        return f"{percent({'progress': value})} ({value.get('completed')}/{value.get('total')})"
    if key == "runId" and value is None:
        return "-"
    if isinstance(value, str):
        return value
    return to_json(value)


_FAILURE_ORDER = ("type", "value", "message")
_FAILURE_INDENT = "     "


def _labelled(label: str, value: object) -> list[str]:
    """`label: value`; a string is printed as text (its later lines indented under the first),
    anything else as JSON."""
    text = value if isinstance(value, str) else to_json(value)
    first, *more = text.rstrip("\n").split("\n")
    under = " " * (len(_FAILURE_INDENT) + len(label) + 2)
    return [f"{_FAILURE_INDENT}{label}: {first}", *(under + line for line in more)]


def show_failure(number: int, failure: object) -> list[str]:
    """One failure for `show`: its run, then its fields, text as text (a traceback under its
    own heading) and anything else as JSON. A `message` equal to the `value` (how a worker's
    exception is stored) is shown once."""
    if not isinstance(failure, dict):
        return [f"  {number}. {to_json(failure)}"]
    lines = [f"  {number}. run {failure.get('runId') or '-'}"]
    keys = [k for k in _FAILURE_ORDER if k in failure]
    keys += [k for k in failure if k not in keys and k not in ("runId", "traceback")]
    if "value" in failure and failure.get("message") == failure["value"]:
        keys.remove("message")
    for key in keys:
        lines.extend(_labelled(key, failure[key]))
    trace = failure.get("traceback")
    if isinstance(trace, str):
        lines.append(f"{_FAILURE_INDENT}traceback:")
        lines.extend(f"{_FAILURE_INDENT}  {line}" for line in trace.rstrip("\n").split("\n"))
    elif "traceback" in failure:
        lines.extend(_labelled("traceback", trace))
    return lines


def show_job(doc: Mapping[str, Any]) -> str:
    """The readable view of a job: its fields, its failures and its log."""
    keys = [k for k in _SHOW_ORDER if k in doc]
    keys += [k for k in doc if k not in keys and k not in ("log", "failures")]
    lines = columns([f"{key}:", _field(key, doc[key])] for key in keys)
    failures = doc.get("failures") or []
    if failures:
        lines.append("")
        lines.append(f"failures ({len(failures)}):")
        for number, failure in enumerate(failures, 1):
            lines.extend(show_failure(number, failure))
    log = doc.get("log") or []
    lines.append("")
    lines.append(f"log ({len(log)}):")
    if log:
        lines.extend("  " + line for line in _log_lines(log))
    return "\n".join(lines)


def _log_lines(log: Sequence[Mapping[str, Any]]) -> list[str]:
    """The log as a table; a message of several lines continues under its first line."""
    texts = [
        str(entry.get("message", "")) + (f"  {to_json(entry['data'])}" if entry.get("data") else "")
        for entry in log
    ]
    rows = [
        [iso(entry.get("time"), precise=True), entry.get("level", ""), entry.get("runId") or "-"]
        for entry in log
    ]
    heads = columns([[*row, text.split("\n")[0]] for row, text in zip(rows, texts, strict=True)])
    indent = " " * (len(columns([[*row, "x"] for row in rows])[0]) - 1)
    lines: list[str] = []
    for head, text in zip(heads, texts, strict=True):
        lines.append(head)
        lines.extend(indent + more for more in text.split("\n")[1:])
    return lines
