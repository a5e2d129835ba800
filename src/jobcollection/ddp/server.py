"""One DDP connection seen from the server: what each incoming frame asks of the driver.

`ServerConnection.receive` takes one text frame and returns one event: a reply to send at
once (pong, error, a refused handshake), the handshake's outcome, or a request to run in order
(method, sub, unsub). Requests are the driver's to run; so are the session id, the queues and
the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import framing
from .messages import (
    NOT_APPLIED_ERROR,
    VERSIONS,
    BadMessage,
    BadParams,
    MethodCall,
    error_result,
    method_call,
    pong,
    updated,
)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome of `connect`: `connected` when ``ok``, else `failed` with ``version``."""

    ok: bool
    version: str


def negotiate(message: dict[str, Any], supported: tuple[str, ...] = VERSIONS) -> Negotiated:
    """Pick the protocol version for a `connect` message (as Meteor's server picks it)."""
    version, support = message.get("version"), message.get("support")
    if (
        not isinstance(version, str)
        or not isinstance(support, list)
        or not all(isinstance(v, str) for v in support)
        or version not in support
    ):
        return Negotiated(False, supported[0])
    chosen = next((v for v in support if v in supported), supported[0])
    return Negotiated(chosen == version, chosen)


# -- events -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    """Send these at once, ahead of queued requests (pong, error, a call refused while
    stopping)."""

    messages: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class Connected:
    """The handshake succeeded with ``version``: answer `connected` with the session id."""

    version: str


@dataclass(slots=True)
class Failed:
    """No common version: send ``reply`` (`failed`), then close."""

    reply: dict[str, Any]


@dataclass(slots=True)
class Call:
    """A method call to run in order."""

    call: MethodCall


@dataclass(slots=True)
class Request:
    """A `sub` or `unsub` to run in order (its fields are checked when it runs)."""

    message: dict[str, Any]


@dataclass(slots=True)
class Refused:
    """A call or subscription with unusable params: send ``replies`` in its turn."""

    replies: list[dict[str, Any]]


@dataclass(slots=True)
class Nothing:
    """A frame that needs no answer (a pong)."""


Event = Reply | Connected | Failed | Call | Request | Refused | Nothing
NOTHING = Nothing()


class ServerConnection:
    """The handshake state and the routing of incoming frames of one connection.

    States: awaiting `connect` → connected (with a version), or failed (closing). After
    `stop()` (a graceful restart) calls are answered as not applied instead of run.
    """

    def __init__(self, max_message_size: int, supported: tuple[str, ...] = VERSIONS) -> None:
        self.max_message_size = max_message_size
        self.supported = supported
        self.connected = False
        self.failed = False
        self.version: str | None = None  # the DDP version the handshake chose
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    def receive(self, text: str) -> Event:
        try:
            return self._receive(text)
        except BadMessage as bad:
            return Reply((bad.reply(),))

    def _receive(self, text: str) -> Event:
        if len(text) > self.max_message_size:
            limit = self.max_message_size
            raise BadMessage(f"Message too large ({len(text)} characters; the limit is {limit})")
        try:
            message = framing.parse(text)
        except BadMessage as bad:
            if bad.reason == "Bad request" and bad.offending is None:
                bad.offending = framing.offending(text)
            raise
        except BadParams as bad:
            if not self.connected:
                raise BadMessage("Must connect first", framing.offending(text)) from None
            return Refused(bad.replies())  # answered in turn
        kind = message["msg"]
        if not self.connected:
            if kind != "connect" or self.failed:
                raise BadMessage("Must connect first", message)
            return self._connect(message)
        if kind == "ping":
            return Reply((pong(message),))
        if kind == "pong":
            return NOTHING
        if kind == "connect":
            raise BadMessage("Already connected", message)
        if self.stopping:
            return self._while_stopping(kind, message)
        if kind == "method":
            return Call(method_call(message))
        if kind in ("sub", "unsub"):
            return Request(message)
        raise BadMessage("Bad request", message)

    def _connect(self, message: dict[str, Any]) -> Event:
        outcome = negotiate(message, self.supported)
        if outcome.ok:
            self.connected = True
            self.version = outcome.version
            return Connected(outcome.version)
        self.failed = True
        return Failed({"msg": "failed", "version": outcome.version})

    def _while_stopping(self, kind: str, message: dict[str, Any]) -> Event:
        """A request read after `stop`: a call is answered as not applied (the client may
        send it again to the next server); a subscription change is left to the reconnect."""
        if kind == "method":
            call_id = method_call(message).id
            return Reply((error_result(call_id, NOT_APPLIED_ERROR), updated(call_id)))
        if kind not in ("sub", "unsub"):
            raise BadMessage("Bad request", message)
        return NOTHING
