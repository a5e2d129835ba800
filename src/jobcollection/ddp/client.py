"""One DDP connection seen from a client: the handshake, outstanding methods, subscriptions.

`Handshake` sends `connect` and reads the answer: `connected`, or `failed` proposing a version
(retried once per version we speak, on a new connection, as Meteor's client does), or an
error. `ClientConnection` then routes every incoming message to an event: a pong to send,
methods completed, subscriptions ready or ended, a data message for the cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProtocolError
from .messages import VERSIONS, connect, is_not_applied, method, pong, sub

# -- the handshake ----------------------------------------------------------------------------


@dataclass(slots=True)
class Accepted:
    session: str
    version: str


@dataclass(slots=True)
class Retry:
    """The server proposed a version we also speak: connect again (a new socket) with it."""

    version: str


class Handshake:
    """The client's side of version negotiation, across the connections it may take."""

    def __init__(self, support: tuple[str, ...] = VERSIONS) -> None:
        if not support:
            raise ValueError("a DDP client must speak at least one version")
        self.support = support
        self.version = support[0]
        self._tried = {self.version}

    def connect_message(self) -> str:
        return connect(self.version, self.support)

    def receive(self, message: dict[str, Any]) -> Accepted | Retry | None:
        """None while the answer has not come (a `server_id`, anything else); raises
        `ProtocolError` when the server refuses every version we speak."""
        kind = message.get("msg")
        if kind == "connected":
            return Accepted(str(message.get("session", "")), self.version)
        if kind == "failed":
            proposed = message.get("version")
            if isinstance(proposed, str) and proposed in self.support:
                if proposed not in self._tried:
                    self._tried.add(proposed)
                    self.version = proposed
                    return Retry(proposed)
            raise ProtocolError(
                f"the server does not speak DDP version {self.version} "
                f"(it proposes version {proposed!r})"
            )
        if kind == "error":
            raise ProtocolError(f"the server refused the DDP handshake: {message.get('reason')}")
        return None


# -- after the handshake ----------------------------------------------------------------------


@dataclass(slots=True)
class MethodState:
    """An outstanding call: done once its `result` has come and, when ``wait_updated``, its
    `updated` too (its data messages have reached the cache)."""

    id: str
    method: str
    wait_updated: bool = False
    result: dict[str, Any] | None = None  # the `result` message
    updated: bool = False

    @property
    def not_applied(self) -> bool:
        """The server says it did not run the call (it is restarting): it may be sent again."""
        return self.result is not None and is_not_applied(self.result.get("error"))

    @property
    def done(self) -> bool:
        if self.result is None:
            return False
        return self.updated or not self.wait_updated or self.not_applied


@dataclass(slots=True)
class SendPong:
    message: dict[str, Any]


@dataclass(slots=True)
class MethodsDone:
    """These calls are complete (each reported once, then forgotten)."""

    calls: list[MethodState]


@dataclass(slots=True)
class SubsReady:
    ids: list[str]


@dataclass(slots=True)
class SubEnded:
    id: str
    error: dict[str, Any] | None


@dataclass(slots=True)
class Data:
    """An `added`, `changed` or `removed` (apply it with `cache.Cache.apply`)."""

    message: dict[str, Any]


@dataclass(slots=True)
class ServerError:
    reason: object


@dataclass(slots=True)
class Ignored:
    """A pong (hearing it is all that counts), `server_id`, or a message we do not know."""


_DATA = frozenset(("added", "changed", "removed"))
ClientEvent = SendPong | MethodsDone | SubsReady | SubEnded | Data | ServerError | Ignored
IGNORED = Ignored()


@dataclass
class ClientConnection:
    """Outstanding methods and subscriptions of one connection, and the routing of messages."""

    session: str = ""
    calls: dict[str, MethodState] = field(default_factory=dict)
    subs: set[str] = field(default_factory=set)  # sent and not ended
    _next_id: int = 0

    def call(
        self, call_id: str, name: str, params: list[Any], wait_updated: bool
    ) -> dict[str, Any]:
        """Track a call and return its message to send."""
        self.calls[call_id] = MethodState(call_id, name, wait_updated)
        return method(call_id, name, params)

    def forget(self, call_id: str) -> None:
        self.calls.pop(call_id, None)

    def subscribe(self, sub_id: str, name: str, params: list[Any]) -> dict[str, Any]:
        self.subs.add(sub_id)
        return sub(sub_id, name, params)

    def lost(self) -> list[MethodState]:
        """The connection is gone: every call still outstanding, forgotten."""
        calls, self.calls = list(self.calls.values()), {}
        self.subs.clear()
        return calls

    def receive(self, message: dict[str, Any]) -> ClientEvent:
        kind = message.get("msg")
        if kind in _DATA:  # the most frequent, first
            return Data(message)
        if kind == "result":
            return self._result(message)
        if kind == "updated":
            return self._updated(message.get("methods") or ())
        if kind == "ready":
            subs = message.get("subs") or ()
            return SubsReady([s for s in subs if isinstance(s, str) and s in self.subs])
        if kind == "nosub":
            sub_id = message.get("id")
            if not isinstance(sub_id, str) or sub_id not in self.subs:
                return IGNORED
            self.subs.discard(sub_id)
            error = message.get("error")
            return SubEnded(sub_id, error if "error" in message else None)
        if kind == "ping":
            return SendPong(pong(message))
        if kind == "error":
            return ServerError(message.get("reason"))
        return IGNORED

    def _result(self, message: dict[str, Any]) -> ClientEvent:
        call_id = message.get("id")
        if not isinstance(call_id, str) or (state := self.calls.get(call_id)) is None:
            return IGNORED
        if state.result is not None:
            return IGNORED  # a second result for the same call: the first one counts
        state.result = message
        return self._finish([state])

    def _updated(self, ids: Iterable[object]) -> ClientEvent:
        states = []
        for call_id in ids:
            state = self.calls.get(call_id) if isinstance(call_id, str) else None
            if state is not None:
                state.updated = True
                states.append(state)
        return self._finish(states)

    def _finish(self, states: list[MethodState]) -> ClientEvent:
        done = [s for s in states if s.done]
        for state in done:
            del self.calls[state.id]
        return MethodsDone(done) if done else IGNORED
