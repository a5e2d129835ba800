"""How a job document maps onto table columns (shared by the SQL adapters).

Scalars get their own columns so the engine can filter and order on them; structured values are
JSON text (user data as EJSON, so dates and bytes survive).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Final, Literal

from ..core import ejson
from .port import UNSET, JobDoc

Kind = Literal["plain", "json", "ejson"]

# (document key, column, kind); the order is the SELECT order.
FIELDS: Final[tuple[tuple[str, str, Kind], ...]] = (
    ("_id", "id", "plain"),
    ("type", "type", "plain"),
    ("status", "status", "plain"),
    ("runId", "run_id", "plain"),
    ("priority", "priority", "plain"),
    ("retryUntil", "retry_until", "plain"),
    ("after", "after", "plain"),
    ("updated", "updated", "plain"),
    ("created", "created", "plain"),
    ("expiresAfter", "expires_after", "plain"),
    ("workTimeout", "work_timeout", "plain"),
    ("retries", "retries", "plain"),
    ("retried", "retried", "plain"),
    ("repeatRetries", "repeat_retries", "plain"),
    ("retryWait", "retry_wait", "plain"),
    ("retryBackoff", "retry_backoff", "plain"),
    ("repeats", "repeats", "plain"),
    ("repeated", "repeated", "plain"),
    ("repeatUntil", "repeat_until", "plain"),
    ("repeatWait", "repeat_wait", "json"),
    ("progress", "progress", "json"),
    ("depends", "depends", "json"),
    ("resolved", "resolved", "json"),
    ("data", "data", "ejson"),
    ("result", "result", "ejson"),
    ("failures", "failures", "ejson"),
    ("_private", "private", "ejson"),
)
OPTIONAL: Final = frozenset(
    {"expiresAfter", "workTimeout", "repeatRetries", "result", "failures", "_private"}
)
COLUMN_OF: Final = {key: column for key, column, _ in FIELDS}
KIND_OF: Final = {key: kind for key, _, kind in FIELDS}
SELECT_LIST: Final = ", ".join(column for _, column, _ in FIELDS)
# The insert also stores the log entries that come with the new job (see sqlite_002.sql).
INSERT_COLUMNS: Final = ("collection", *(column for _, column, _ in FIELDS), "log")
NO_DEPENDS: Final = "[]"


_json_text = json.JSONEncoder(separators=(",", ":")).encode


def _plain(value: Any) -> Any:
    return value


_PROGRESS_KEYS: Final = ("completed", "total", "percent")


def _number_text(value: Any) -> str | None:
    """JSON for an int or a finite float (what json would write), else None."""
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return None


def _json(value: Any) -> str:
    """JSON text of a structured column; the usual shapes (empty list, integer wait, id list,
    progress) are written directly, the rest by the json encoder."""
    kind = type(value)
    if kind is list:
        if not value:
            return "[]"
        if all(type(item) is str for item in value):
            return "[" + ",".join(_quote(item) for item in value) + "]"
    elif kind is int:
        return repr(value)
    elif kind is dict and tuple(value) == _PROGRESS_KEYS:
        numbers = [_number_text(value[key]) for key in _PROGRESS_KEYS]
        if None not in numbers:
            c, t, p = numbers
            return f'{{"completed":{c},"total":{t},"percent":{p}}}'
    return _json_text(value)


_ENCODER_OF: Final = {"plain": _plain, "json": _json, "ejson": ejson.dumps}
_ENCODERS: Final = tuple((key, _ENCODER_OF[kind]) for key, _, kind in FIELDS)


def encode(key: str, value: Any) -> Any:
    """The column value for one document field (UNSET and absent optional fields are NULL)."""
    if value is UNSET:
        return None
    return _ENCODER_OF[KIND_OF[key]](value)


def _from_json(text: str) -> Any:
    """Column JSON to a value; `[]` and plain integers (the usual cases) skip the parser."""
    if text == "[]":
        return []
    if text.isdigit():
        return int(text)
    return json.loads(text)


_DECODER_OF: Final = {"plain": None, "json": _from_json, "ejson": ejson.loads}
_DECODERS: Final = tuple((key, _DECODER_OF[kind], key in OPTIONAL) for key, _, kind in FIELDS)


def row_to_doc(row: Sequence[Any]) -> JobDoc:
    """Rebuild a document from a row selected with SELECT_LIST."""
    doc: JobDoc = {}
    for (key, decode, optional), value in zip(_DECODERS, row, strict=True):
        if value is None:
            if not optional:
                doc[key] = None
        else:
            doc[key] = value if decode is None else decode(value)
    return doc


def insert_row(collection: str, doc: JobDoc) -> tuple[Any, ...]:
    """The INSERT parameters for a new document (its `log` goes into the row)."""
    get = doc.get
    log = get("log")
    return (
        collection,
        *[None if (value := get(key, UNSET)) is UNSET else enc(value) for key, enc in _ENCODERS],
        log_text(log) if log else None,
    )


_SERVER_ENTRY_KEYS: Final = frozenset(("time", "runId", "level", "message"))


def _entry_text(entry: dict[str, Any]) -> str:
    """JSON for one log entry. Server-made entries (time, runId, level, message; SPEC 3.5) are
    formatted directly — they are most of all writes — anything else goes through EJSON."""
    time, run_id = entry.get("time"), entry.get("runId")
    if (
        entry.keys() != _SERVER_ENTRY_KEYS
        or type(time) is not int
        or not (run_id is None or type(run_id) is str)
        or type(entry["level"]) is not str
        or type(entry["message"]) is not str
    ):
        return ejson.dumps(entry)
    run = "null" if run_id is None else _quote(run_id)
    level, message = _quote(entry["level"]), _quote(entry["message"])
    return f'{{"time":{time},"runId":{run},"level":{level},"message":{message}}}'


def log_text(entries: Sequence[dict[str, Any]]) -> str:
    """JSON array text of log entries."""
    return "[" + ",".join(_entry_text(entry) for entry in entries) + "]"


def log_row(job_id: str, entries: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The job_log row for entries appended by one write."""
    return (job_id, log_text(entries))


def log_entries(text: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ejson.loads(text)
    return entries
