"""Job documents as they travel over DDP: times become EJSON dates.

Inside, every time is integer milliseconds (so year 275760 round-trips); on the wire Meteor
clients expect `{"$date": ms}`. Incoming dates need no conversion: the parameter checks accept
EJSON `Date` values wherever a time is expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .ejson import Date

JOB_TIME_FIELDS: Final = (
    "after",
    "retryUntil",
    "repeatUntil",
    "updated",
    "created",
    "expiresAfter",
)


def _entry_to_wire(entry: Any) -> Any:
    if isinstance(entry, dict) and type(entry.get("time")) is int:
        return {**entry, "time": Date(entry["time"])}
    return entry


def doc_to_wire(doc: dict[str, Any]) -> dict[str, Any]:
    """A job document with its times (including log entry times) as EJSON dates."""
    wire = dict(doc)
    times_to_wire(wire)
    return wire


def times_to_wire(fields: dict[str, Any]) -> None:
    """Turn the job times among ``fields`` (and its log's entry times) into EJSON dates, in
    place (the other fields are left as they are)."""
    for name in JOB_TIME_FIELDS:
        value = fields.get(name)
        if type(value) is int:
            fields[name] = Date(value)
    log = fields.get("log")
    if isinstance(log, list):
        fields["log"] = [_entry_to_wire(entry) for entry in log]


def _map_docs(method: str, result: Any, convert: Callable[[Any], Any]) -> Any:
    """Apply ``convert`` to the job documents in a getJob/getWork result (one or a list)."""
    if method not in ("getJob", "getWork") or result is None:
        return result
    if isinstance(result, list):
        return [convert(doc) for doc in result]
    return convert(result)


def result_to_wire(method: str, result: Any) -> Any:
    """A method's result as sent to clients: documents from getJob/getWork get wire times."""
    return _map_docs(method, result, doc_to_wire)


def _entry_from_wire(entry: Any) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("time"), Date):
        return {**entry, "time": entry["time"].ms}
    return entry


def doc_from_wire(doc: dict[str, Any]) -> dict[str, Any]:
    """A job document received from a server, with its times back as integer ms."""
    converted: dict[str, Any] = {}
    for name, value in doc.items():
        if name in JOB_TIME_FIELDS and isinstance(value, Date):
            value = value.ms
        elif name == "log" and isinstance(value, list):
            value = [_entry_from_wire(entry) for entry in value]
        converted[name] = value
    return converted


def result_from_wire(method: str, result: Any) -> Any:
    """The inverse of `result_to_wire`, for clients."""
    return _map_docs(method, result, doc_from_wire)
