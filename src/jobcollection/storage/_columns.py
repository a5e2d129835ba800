"""How a job document maps onto table columns (shared by the SQL adapters).

Scalars get their own columns so the engine can filter and order on them; structured values are
JSON text (user data as EJSON, so dates and bytes survive).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Final, Literal

from ..core import ejson
from ..core.usual_job import UsualJob
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
_plain_default = json.JSONEncoder().default  # raises TypeError: not JSON
_make_c_encoder: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)


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
        c, t, p = value.values()
        if type(c) is not int or type(t) is not int or type(p) is not int:
            c, t, p = _number_text(c), _number_text(t), _number_text(p)
        if c is not None and t is not None and p is not None:
            return f'{{"completed":{c},"total":{t},"percent":{p}}}'
    return _json_text(value)


# `JSONEncoder.encode` builds a new C encoder on every call, which costs twice the encoding of
# a small dict; this one is built once (same settings as `ejson.dumps`). It has no circular-
# reference check: a circular value fails with RecursionError, as `ejson.dumps` does too.
_c_encoder: Callable[[Any, int], Sequence[str]] | None = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(None, _plain_default, _quote, None, ":", ",", False, False, False)
)


def _ejson(value: Any) -> str:
    """`ejson.dumps(value)`, sooner for plain JSON (no EJSON form in it, nothing to convert)."""
    if _c_encoder is not None:
        try:
            text = "".join(_c_encoder(value, 0))
        except (TypeError, ValueError):  # dates, bytes, non-finite floats...: the EJSON walk
            return ejson.dumps(value)
        if '"$' not in text:
            return text
    return ejson.dumps(value)


_ENCODER_OF: Final = {"plain": _plain, "json": _json, "ejson": _ejson}
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
    """The INSERT parameters (INSERT_COLUMNS) for a new document (its `log` goes into the row)."""
    get = doc.get
    log = get("log")
    return (
        collection,
        *[None if (value := get(key, UNSET)) is UNSET else enc(value) for key, enc in _ENCODERS],
        log_text(log) if log else None,
    )


# A new job as the Job builder makes it leaves runId, expiresAfter, workTimeout, result,
# failures and _private NULL. Binding None costs the sqlite3 module a failed adapter lookup per
# value (a quarter of the insert), so such rows go through a statement without those columns.
_USUAL_PLAIN: Final = (
    "_id", "type", "status", "priority", "retryUntil", "after", "updated", "created", "retries",
    "retried", "repeatRetries", "retryWait", "retryBackoff", "repeats", "repeated", "repeatUntil",
)  # fmt: skip
_USUAL_OTHERS: Final = (
    "runId", "repeatWait", "progress", "depends", "resolved", "data", "log"
)  # fmt: skip
USUAL_COLUMNS: Final = (
    "collection",
    *(COLUMN_OF[key] for key in _USUAL_PLAIN),
    *(COLUMN_OF[key] for key in _USUAL_OTHERS[1:-1]),
    "log",
)
_plain_of = operator.itemgetter(*_USUAL_PLAIN)
_others_of = operator.itemgetter(*_USUAL_OTHERS)
_USUAL_SIZE: Final = len(_USUAL_PLAIN) + len(_USUAL_OTHERS)


def _usual_row(collection: str, doc: JobDoc, memo: dict[int, str]) -> tuple[Any, ...] | None:
    """The USUAL_COLUMNS parameters of a new document of the usual shape, else None."""
    if len(doc) != _USUAL_SIZE:
        return None
    try:  # as many keys as the usual ones, and every usual one found: the usual key set
        plain = _plain_of(doc)
        run_id, wait, progress, depends, resolved, data, log = _others_of(doc)
    except KeyError:
        return None
    if run_id is not None or not log:
        return None
    return (
        collection,
        *plain,
        _json(wait),
        _json(progress),
        _json(depends),
        _json(resolved),
        _ejson(data),
        log_text(log, memo),
    )


def insert_rows(
    collection: str, docs: Sequence[JobDoc]
) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """INSERT parameters for new documents, as (columns, rows) runs in document order."""
    runs: list[tuple[tuple[str, ...], list[tuple[Any, ...]]]] = []
    memo: dict[int, str] = {}
    for doc in docs:
        row, columns = _usual_row(collection, doc, memo), USUAL_COLUMNS
        if row is None:
            row, columns = insert_row(collection, doc), INSERT_COLUMNS
        if runs and runs[-1][0] is columns:
            runs[-1][1].append(row)
        else:
            runs.append((columns, [row]))
    return runs


_FRESH_PROGRESS: Final = {"completed": 0, "total": 1, "percent": 0}
_FRESH_PROGRESS_TEXT: Final = '{"completed":0,"total":1,"percent":0}'


def ready_rows(
    collection: str,
    jobs: Sequence[UsualJob],
    ids: Sequence[str],
    now: int,
    entries: Sequence[dict[str, Any]],
) -> list[tuple[Any, ...]]:
    """USUAL_COLUMNS parameters for `Transaction.insert_ready`: new jobs as
    `core.document.UsualJob` rows, stored ready at `now`.

    The batch save's hot loop: the values are already checked, so each row is read off its
    tuple; log entries (a batch's jobs mostly share their "Constructed" time) are formatted
    once per distinct entry.
    """
    tail = "".join(["," + _entry_text(entry) for entry in entries]) + "]"
    texts: dict[tuple[Any, ...], str] = {}
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for values, job_id in zip(jobs, ids, strict=True):
        (
            _, _, _, retry_until, repeat_until,
            retries, retried, repeat_retries, retry_wait, repeats, repeated, repeat_wait,
            _, job_type, _, priority, backoff, data, progress, _, resolved, log,
        ) = values  # fmt: skip
        head = [
            texts.get(key) or _remember_entry(texts, key) for key in map(_server_entry_values, log)
        ]
        append((
            collection, job_id, job_type, "ready", priority,
            retry_until if retry_until > now else now, now, now, now,
            retries, retried, repeat_retries, retry_wait, backoff, repeats, repeated,
            repeat_until if repeat_until > now else now,
            str(repeat_wait),
            _FRESH_PROGRESS_TEXT if _is_fresh(progress) else _progress_text(progress),
            "[]",
            _json(resolved),
            _ejson(data) if data else "{}",
            "[" + ",".join(head) + tail if head else "[" + tail[1:],
        ))  # fmt: skip
    return rows


def _is_fresh(progress: dict[str, Any]) -> bool:
    """Exactly the fresh progress, integers included: ``0.0 == 0``, but a job saved with
    ``percent: 0.0`` must keep its float, as a single save stores it."""
    return progress == _FRESH_PROGRESS and all(type(value) is int for value in progress.values())


def _progress_text(progress: dict[str, Any]) -> str:
    """The column text of a checked progress object, its keys in the usual order."""
    return _json({key: progress[key] for key in _PROGRESS_KEYS})


def _remember_entry(texts: dict[tuple[Any, ...], str], key: tuple[Any, ...]) -> str:
    time, run_id, level, message = key
    text = texts[key] = _entry_text(
        {"time": time, "runId": run_id, "level": level, "message": message}
    )
    return text


_SERVER_ENTRY_KEYS: Final = frozenset(("time", "runId", "level", "message"))
_server_entry_values = operator.itemgetter("time", "runId", "level", "message")


def _entry_text(entry: dict[str, Any]) -> str:
    """JSON for one log entry. Server-made entries (time, runId, level, message) are
    formatted directly — they are most of all writes — anything else goes through EJSON."""
    if entry.keys() == _SERVER_ENTRY_KEYS:
        time, run_id, level, message = _server_entry_values(entry)
        if (
            type(time) is int
            and (run_id is None or type(run_id) is str)
            and type(level) is str
            and type(message) is str
        ):
            run = "null" if run_id is None else _quote(run_id)
            return (
                f'{{"time":{time},"runId":{run},"level":{_quote(level)},'
                f'"message":{_quote(message)}}}'
            )
    return ejson.dumps(entry)


def log_text(entries: Sequence[dict[str, Any]], memo: dict[int, str] | None = None) -> str:
    """JSON array text of log entries. With `memo` (entry texts by `id(entry)`, to be used only
    while every entry it has seen is alive) an entry object shared by many jobs — the engine
    gives a batch of new jobs the same server entries — is formatted once."""
    if memo is None:
        return f"[{','.join([_entry_text(entry) for entry in entries])}]"
    known = memo.get
    return f"[{','.join([known(id(entry)) or _remember(memo, entry) for entry in entries])}]"


def _remember(memo: dict[int, str], entry: dict[str, Any]) -> str:
    text = memo[id(entry)] = _entry_text(entry)
    return text


def log_row(job_id: str, entries: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The job_log row for entries appended by one write."""
    return (job_id, log_text(entries))


def log_entries(text: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ejson.loads(text)
    return entries
