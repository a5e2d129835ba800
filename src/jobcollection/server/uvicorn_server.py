"""How `Server.serve` runs on uvicorn: its settings, its signal handling and guarded protocols.

uvicorn's HTTP protocol (h11) and websocket protocol (websockets' sans-I/O) are subclassed
only to report each connection's state to a `ConnectionGuard` (admitted or refused, waiting
for a request, idle, busy, closed) and to act on its verdicts: a request not received within
the handshake deadline gets a 408 (a websocket without its DDP `connect`, a close frame
1008), a connection over the cap gets a 503 saying so. uvicorn offers no such deadline (its
keep-alive timer runs only between requests) and its `limit_concurrency` refuses requests,
not idle connections.

The websocket protocol also gives the application a handle to drop its connection at once
(scope extension ``jobcollection.connection``, see `transport.py`), for a peer that does not
read and so would never take a close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, Final, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .guard import ConnectionGuard
from .limits import Limits
from .transport import EXTENSION

log = logging.getLogger(__name__)

_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
REFUSAL_LINGER_S: Final = 1.0  # a refused connection stays open this long for its 503 to be read


def uvicorn_options(host: str, port: int, limits: Limits, log_level: str) -> dict[str, Any]:
    """uvicorn settings for a DDP server: the websocket frame limit sits above ours, so an
    oversized message gets a DDP error reply rather than a dropped connection."""
    return {
        "host": host,
        "port": port,
        "log_level": log_level,
        "ws": "websockets-sansio",
        "ws_max_size": max(limits.max_message_size * 4, 1 << 20),
        "ws_ping_interval": None,  # DDP has its own heartbeat
        # DDP messages are small JSON: compressing each costs both ends more time than the
        # bytes it saves (jobSave round trip 1.44 -> 1.31 ms with a deflate-offering client).
        "ws_per_message_deflate": False,
        "lifespan": "off",
        "access_log": False,
    }


def guarded_config(app: Any, options: dict[str, Any], guard: ConnectionGuard) -> uvicorn.Config:
    """A uvicorn configuration whose protocols report to ``guard``."""
    http, ws = guarded_protocols(guard)
    return uvicorn.Config(app, **{**options, "http": http, "ws": ws})


class QuietStopServer(uvicorn.Server):
    """uvicorn's server, except that SIGINT/SIGTERM end `serve()` normally, and that
    ``before_shutdown`` runs before uvicorn's shutdown closes any connection (see drain.py).

    uvicorn re-raises the captured signal once it has shut down, which kills the process
    before the caller's cleanup (closing the collections) can run.
    """

    before_shutdown: Callable[[QuietStopServer], Awaitable[None]] | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            try:
                await self.before_shutdown(self)
            except Exception:
                log.exception("the graceful stop failed; stopping at once")
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:  # a second signal: stop waiting for connections
            self.force_exit = True
        self.should_exit = True


# -- the guarded protocols ---------------------------------------------------------------------


def _reply(status: str, reason: str, details: str) -> bytes:
    """A complete HTTP/1.1 response carrying a Meteor-shaped error, then closing."""
    code = int(status.split()[0])
    error = {"error": code, "reason": reason, "details": details, "message": f"{reason} [{code}]"}
    body = json.dumps({"error": {"isClientSafe": True, **error}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    )
    if code == 503:
        head += "retry-after: 1\r\n"
    return (head + "\r\n").encode() + body


def guarded_protocols(guard: ConnectionGuard) -> tuple[type[Any], type[Any]]:
    """uvicorn protocol classes (HTTP, websocket) reporting to ``guard``."""
    timeout = f"{guard.handshake_timeout:g} s"

    def on_deadline(transport: asyncio.Transport) -> None:
        protocol = transport.get_protocol()
        if isinstance(protocol, (GuardedH11, GuardedWebSocket)):
            protocol.deadline_passed()
        else:
            transport.abort()

    class GuardedH11(H11Protocol):
        refused = False  # over the cap: answered 503 once its request head has come
        _refused_tail = b""
        _refusal_sent = False
        _lingering = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not guard.admit(transport, lambda: on_deadline(transport)):
                self._refuse()

        def _refuse(self) -> None:
            self.refused = True
            guard.log_refusal()
            if not guard.may_linger():
                self.transport.close()  # too many refusals at once: no answer
                return
            # Answer once the request's head is in (a client may not expect a response
            # before its request), drain the rest, then close: closing with their request
            # unread would reset the connection and could lose the 503.
            guard.lingering += 1
            self._lingering = True
            self.loop.call_later(REFUSAL_LINGER_S, self.transport.close)

        def _refused_data(self, data: bytes) -> None:
            if self._refusal_sent:
                return
            window = self._refused_tail + data
            if b"\r\n\r\n" not in window:
                self._refused_tail = window[-3:]
                return
            self._refusal_sent = True
            limit = guard.max_connections
            self.transport.write(
                _reply(
                    "503 Service Unavailable",
                    "Server busy",
                    f"{limit} connections are open, the server's limit; try again shortly",
                )
            )

        def data_received(self, data: bytes) -> None:
            if self.refused:
                self._refused_data(data)
                return
            if self.conn.their_state is h11.IDLE:
                guard.waiting(self.transport)  # a new request starts: its deadline too
            super().data_received(data)
            self._report()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._report()

        def _report(self) -> None:
            """Tell the guard where the request on this connection stands."""
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or upgraded: the websocket protocol reports from now on
            state = self.conn.their_state
            if state in (h11.DONE, h11.MUST_CLOSE):
                guard.busy(transport)  # the whole request is in: it is being answered
            elif state is h11.IDLE and self.cycle is not None and self.cycle.response_complete:
                if self.conn.trailing_data[0]:
                    guard.waiting(transport)  # the next request has begun
                else:
                    guard.idle(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._lingering:
                guard.lingering -= 1
            elif not self.refused:
                guard.closed(self.transport)
            super().connection_lost(exc)

        def deadline_passed(self) -> None:
            started = self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]
            if started:  # a slow request: say why it ends (a silent peer just sees it close)
                self.transport.write(
                    _reply(
                        "408 Request Timeout",
                        "Request not received in time",
                        f"a request's headers and body must arrive within {timeout}",
                    )
                )
            self.transport.close()

    class GuardedWebSocket(WebSocketsSansIOProtocol):
        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            if self.transport.is_closing():
                return
            extensions = cast(dict[str, Any], self.scope["extensions"])
            extensions[EXTENSION] = _Control(self.transport, guard)

        def connection_lost(self, exc: Exception | None) -> None:
            guard.closed(self.transport)
            super().connection_lost(exc)

        def deadline_passed(self) -> None:
            if self.handshake_complete and not self.close_sent:
                self.conn.send_close(1008, f"DDP connect not received within {timeout}")
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.close_sent = True
            self.transport.close()

    return GuardedH11, GuardedWebSocket


class _Control:
    """The scope extension a websocket application gets (see `transport.ConnectionControl`)."""

    __slots__ = ("_guard", "_transport")

    def __init__(self, transport: asyncio.Transport, guard: ConnectionGuard) -> None:
        self._transport, self._guard = transport, guard

    def settled(self) -> None:
        self._guard.busy(self._transport)

    def abort(self) -> None:
        self._guard.closed(self._transport)
        self._transport.abort()
