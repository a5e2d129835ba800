"""Argument converters: each turns one command-line string into a value or raises
`argparse.ArgumentTypeError` with a message that says what is wrong (argparse prefixes the
option name). They never touch the database.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..core import ejson
from ..core.constants import FOREVER, FOREVER_DATE, JOB_PRIORITIES

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_INTEGER = re.compile(r"[+-]?\d+")


def _integer(text: str) -> int | None:
    stripped = text.strip()
    return int(stripped) if _INTEGER.fullmatch(stripped) else None


def _bounded(text: str, minimum: int, maximum: int = FOREVER) -> int:
    value = _integer(text)
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"must be an integer <= {maximum}, got {text!r}")
    return value


def count(text: str) -> int:
    """An integer >= 0 (counts and durations in ms)."""
    return _bounded(text, 0)


def positive(text: str) -> int:
    """An integer >= 1."""
    return _bounded(text, 1)


def priority(text: str) -> int:
    """A priority name (low, normal, medium, high, critical) or a signed 32-bit integer."""
    name = text.strip().lower()
    if name in JOB_PRIORITIES:
        return JOB_PRIORITIES[name]
    value = _integer(text)
    if value is None:
        names = ", ".join(JOB_PRIORITIES)
        raise argparse.ArgumentTypeError(
            f"unknown priority {text!r} (use one of {names} or an integer)"
        )
    if not INT32_MIN <= value <= INT32_MAX:
        raise argparse.ArgumentTypeError(
            f"must be a 32-bit integer ({INT32_MIN}..{INT32_MAX}), got {text!r}"
        )
    return value


def time_ms(text: str) -> int:
    """A time: integer ms since the epoch, or ISO 8601 (a time without an offset is UTC)."""
    value = _integer(text)
    if value is None:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not an ISO 8601 time (e.g. 2030-01-31T12:00:00Z) or integer ms: {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = round(moment.timestamp() * 1000)
    if not -FOREVER_DATE <= value <= FOREVER_DATE:
        raise argparse.ArgumentTypeError(f"time out of range: {text!r}")
    return value


def json_object(text: str) -> dict[str, Any]:
    """A JSON object (EJSON forms such as {"$date": ms} are decoded)."""
    try:
        value = ejson.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {_short(text)}") from None
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(f"not valid EJSON ({error}): {_short(text)}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object like '{{\"key\": 1}}', got {ejson.json_type(value)}:"
            f" {_short(text)}"
        )
    return value


def worker_spec(text: str) -> tuple[str, str]:
    """`MODULE:FUNCTION` (module dotted, function may be a dotted attribute path)."""
    module, sep, function = text.partition(":")
    dotted = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
    if not sep or not dotted.fullmatch(module) or not dotted.fullmatch(function):
        raise argparse.ArgumentTypeError(
            f"expected MODULE:FUNCTION (e.g. tasks:work), got {text!r}"
        )
    return module, function


def server_url(text: str) -> str:
    """A server's URL, http(s):// or ws(s):// with a host (as `jobcollection serve` prints it)."""
    url = text.strip()
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https", "ws", "wss") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            f"expected an http(s):// or ws(s):// URL (e.g. ws://127.0.0.1:3000), got {text!r}"
        )
    return url


def non_empty(text: str) -> str:
    """A non-empty string (job types, collection names)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
