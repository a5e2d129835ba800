"""`AsgiWebSocket`: a DDP session's transport over an ASGI websocket.

Reading is on demand: uvicorn's sans-I/O websocket protocol stops reading the socket after
each message until the application asks for the next one, so a session that does not call
`receive_text` applies backpressure to its client all the way down to TCP.

Closing sends a close frame after everything sent before it. A peer that does not read may
never let that frame out, so `abort` drops the connection at once: through the
``jobcollection.connection`` scope extension our uvicorn protocols provide (see
`uvicorn_server.py`); mounted in another server, it falls back to an orderly close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EXTENSION = "jobcollection.connection"
CLOSE_TIMEOUT_S = 5.0  # a close frame that cannot be written in this time: drop the connection


@runtime_checkable
class ConnectionControl(Protocol):
    """What our uvicorn protocols offer a websocket application (scope extension)."""

    def settled(self) -> None:
        """The DDP handshake is done: no handshake deadline, not an idle connection."""

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake."""


def connection_control(scope: MutableMapping[str, Any]) -> ConnectionControl | None:
    control = (scope.get("extensions") or {}).get(EXTENSION)
    return control if isinstance(control, ConnectionControl) else None


class AsgiWebSocket:
    """The session's transport over an ASGI websocket."""

    def __init__(self, receive: Receive, send: Send, control: ConnectionControl | None) -> None:
        self._receive, self._send = receive, send
        self.control = control
        self.closed = False
        self._closer: asyncio.Task[None] | None = None

    async def receive_text(self) -> str | None:
        while not self.closed:
            event = await self._receive()
            kind = event["type"]
            if kind == "websocket.receive":
                text = event.get("text")
                if text is None:
                    data = event.get("bytes") or b""
                    text = data.decode("utf-8", errors="replace")
                return str(text)
            if kind == "websocket.disconnect":
                self.closed = True
        return None

    async def send_text(self, text: str) -> None:
        if not self.closed:
            try:
                await self._send({"type": "websocket.send", "text": text})
            except Exception:  # the peer went away mid-send (uvicorn raises on a dead socket)
                self.closed = True

    async def close(self, code: int = 1000) -> None:
        """Send a close frame (after what was sent before); drop the connection if that frame
        cannot be written within `CLOSE_TIMEOUT_S` (a peer that does not read)."""
        if self.closed:
            return
        self.closed = True
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._send({"type": "websocket.close", "code": code})
        except TimeoutError:
            self.abort()
        except Exception:
            log.debug("websocket already closed", exc_info=True)

    def abort(self) -> None:
        """Drop the connection at once (when the server offers that), else close it soon."""
        self.closed = True
        if self.control is not None:
            self.control.abort()
            return
        with contextlib.suppress(RuntimeError):
            self._closer = asyncio.get_running_loop().create_task(self._close_quietly())

    async def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": 1011})

    def settled(self) -> None:
        if self.control is not None:
            self.control.settled()
