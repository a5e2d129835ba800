"""Per-collection events (`call`, `error`, and one per method) and the call log stream."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ..core import ejson
from ..errors import ValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """What happened in one method call (docs/jobs.md, "Events and the call log")."""

    method: str
    params: list[Any]
    user_id: str | None
    connection: object | None
    error: BaseException | None = None
    return_value: Any = None


Listener = Callable[[CallEvent], None]


class LogStream(Protocol):
    def write(self, text: str, /) -> Any: ...


class Events:
    """A tiny thread-safe emitter; listeners must not block."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._lock = threading.Lock()
        self.active = False  # fast check on the hot path

    def on(self, name: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` for event `name`; returns a function that removes it."""
        with self._lock:
            self._listeners.setdefault(name, []).append(listener)
            self.active = True

        def off() -> None:
            with self._lock:
                if listener in self._listeners.get(name, []):
                    self._listeners[name].remove(listener)

        return off

    def emit(self, name: str, event: CallEvent) -> None:
        for listener in list(self._listeners.get(name, ())):
            try:
                listener(event)
            except Exception:
                log.exception("listener for %r failed", name)


def _json(value: Any) -> str:
    try:
        return json.dumps(ejson.to_ejson(value), default=repr)
    except ValueError:
        return repr(value)


class CallLog:
    """Writes one line per call and result to a user-supplied stream."""

    def __init__(self) -> None:
        self.stream: LogStream | None = None

    def set(self, stream: LogStream) -> None:
        if self.stream is not None:
            raise ValidationError("log stream already set; it is cleared by shutdown_job_server")
        if not callable(getattr(stream, "write", None)):
            raise ValidationError("log stream must have a write(text) method")
        self.stream = stream

    def close(self) -> None:
        stream, self.stream = self.stream, None
        end = getattr(stream, "end", None) or getattr(stream, "close", None)
        if callable(end):
            end()

    def record(self, event: CallEvent) -> None:
        if self.stream is None:
            return
        stamp = datetime.now(UTC).isoformat()
        if event.connection is None:  # a call made by server-side code
            user = "[SERVER]"
        else:
            user = event.user_id or "[UNAUTHENTICATED]"
        head = f"{stamp}, {user}, {event.method}"
        if event.error is not None:
            self.stream.write(f"{head}, {event.error}\n")
            return
        self.stream.write(f"{head}, params: {_json(event.params)}\n")
        self.stream.write(f"{head}, returned: {_json(event.return_value)}\n")
