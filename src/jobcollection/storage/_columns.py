"""How a job document maps onto table columns (shared by the SQL adapters).

Scalars get their own columns so the engine can filter and order on them; structured values are
JSON text (user data as EJSON, so dates and bytes survive).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
INSERT_COLUMNS: Final = ("collection", *(column for _, column, _ in FIELDS))
NO_DEPENDS: Final = "[]"


_json_text = json.JSONEncoder(separators=(",", ":")).encode


def _plain(value: Any) -> Any:
    return value


def _json(value: Any) -> str:
    return "[]" if value == [] else _json_text(value)


_ENCODER_OF: Final = {"plain": _plain, "json": _json, "ejson": ejson.dumps}
_ENCODERS: Final = tuple((key, _ENCODER_OF[kind]) for key, _, kind in FIELDS)


def encode(key: str, value: Any) -> Any:
    """The column value for one document field (UNSET and absent optional fields are NULL)."""
    if value is UNSET:
        return None
    return _ENCODER_OF[KIND_OF[key]](value)


def row_to_doc(row: Sequence[Any]) -> JobDoc:
    """Rebuild a document from a row selected with SELECT_LIST."""
    doc: JobDoc = {}
    for (key, _, kind), value in zip(FIELDS, row, strict=True):
        if value is None:
            if key in OPTIONAL:
                continue
            doc[key] = None
        elif kind == "plain":
            doc[key] = value
        elif kind == "json":
            doc[key] = json.loads(value)
        else:
            doc[key] = ejson.loads(value)
    return doc


def insert_row(collection: str, doc: JobDoc) -> tuple[Any, ...]:
    """The INSERT parameters for a new document."""
    get = doc.get
    return (
        collection,
        *[None if (value := get(key, UNSET)) is UNSET else enc(value) for key, enc in _ENCODERS],
    )


def log_row(job_id: str, entries: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The job_log row for entries appended by one write."""
    return (job_id, ejson.dumps(list(entries)))


def log_entries(text: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ejson.loads(text)
    return entries
