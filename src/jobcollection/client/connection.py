"""One websocket of the DDP client: opening it through the handshake, its calls, its heartbeat.

The protocol decisions are `jobcollection.ddp`'s (`Handshake`, `ClientConnection`,
`Heartbeat`); this module does the I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import websockets.exceptions as wsexc
from websockets.asyncio.client import ClientConnection as WebSocket
from websockets.asyncio.client import connect as ws_connect
from websockets.protocol import State

from ..core import ejson
from ..ddp.client import Accepted, ClientConnection, Handshake, MethodState
from ..ddp.heartbeat import Heartbeat
from ..ddp.messages import ping
from ..errors import ConnectionClosed, RemoteError

log = logging.getLogger("jobcollection.client.ddp")

_CLOSE_TIMEOUT: Final = 2.0


class Pending:
    """An outstanding method call's waiter (its protocol state is the connection's)."""

    __slots__ = ("future", "method")

    def __init__(self, future: asyncio.Future[Any], method: str) -> None:
        self.future = future
        self.method = method

    def finish(self, state: MethodState) -> None:
        """Complete the waiter with the call's result (or its error)."""
        if self.future.done() or state.result is None:
            return
        if "error" in state.result:
            self.future.set_exception(remote_error(state.result["error"]))
        else:
            self.future.set_result(state.result.get("result"))


class Connection:
    """One websocket and what belongs to it: its calls in flight and its tasks."""

    def __init__(self, ws: WebSocket, accepted: Accepted) -> None:
        self.ws = ws
        self.session = accepted.session
        self.version = accepted.version
        self.ddp = ClientConnection(accepted.session)
        self.waiters: dict[str, Pending] = {}
        self.closed = False
        self.restarting = False  # the server closed it for a restart (code 1012)
        self.last_heard = time.monotonic()  # the reader's; the heartbeat task reads it
        self.reader: asyncio.Task[None] | None = None
        self.pinger: asyncio.Task[None] | None = None

    def can_send(self) -> bool:
        return not self.closed and self.ws.state is State.OPEN


async def open_connection(url: str, connect_timeout: float) -> Connection:
    """A new websocket to ``url``, handshaken (retrying with a version the server proposes)."""
    handshake = Handshake()
    while True:
        try:
            async with asyncio.timeout(connect_timeout):
                ws = await ws_connect(
                    url,
                    ping_interval=None,  # DDP has its own heartbeat
                    compression=None,
                    max_size=None,
                    open_timeout=None,  # bounded by connect_timeout
                    close_timeout=_CLOSE_TIMEOUT,
                )
                try:
                    accepted = await _handshake(ws, handshake)
                except BaseException:
                    ws.transport.abort()
                    raise
        except TimeoutError as error:
            raise ConnectionClosed(
                f"could not connect to {url} within {connect_timeout} s"
            ) from error
        except (OSError, wsexc.WebSocketException) as error:
            raise ConnectionClosed(f"could not connect to {url}: {error}") from error
        if accepted is not None:
            return Connection(ws, accepted)
        ws.transport.abort()  # the server closes after `failed`: connect again


async def _handshake(ws: WebSocket, handshake: Handshake) -> Accepted | None:
    """Send `connect` and wait for the answer; None when we should retry (another version)."""
    await ws.send(handshake.connect_message())
    while True:
        frame = await ws.recv()
        try:
            message = json.loads(frame)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        outcome = handshake.receive(message)
        if isinstance(outcome, Accepted):
            return outcome
        if outcome is not None:
            log.info("DDP client: retrying the handshake with version %s", outcome.version)
            return None


async def heartbeat(
    conn: Connection, interval: float, timeout: float, new_id: Callable[[], str], url: str
) -> None:
    """Ping a silent server; drop the connection when the ping goes unanswered."""
    beat = Heartbeat(interval, timeout, conn.last_heard)
    while not conn.closed:
        beat.heard(conn.last_heard)
        wait = beat.until_ping(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        beat.pinged(time.monotonic())
        try:
            await conn.ws.send(ejson.dumps(ping(new_id())))
        except wsexc.ConnectionClosed:
            return
        await asyncio.sleep(timeout)
        beat.heard(conn.last_heard)
        if beat.unanswered() and not conn.closed:
            log.warning(
                "DDP client: no answer from %s for %.1f s; dropping the connection",
                url,
                time.monotonic() - beat.last_heard,
            )
            conn.ws.transport.abort()  # the reader sees the loss and reconnects
            return


def remote_error(error: object) -> RemoteError:
    """A serialized Meteor.Error (`{"error", "reason", "details", ...}`) as a `RemoteError`."""
    if not isinstance(error, dict):
        return RemoteError(500, str(error))
    reason = error.get("reason")
    if reason is None and "message" in error and "error" not in error:
        reason = error.get("message")
    details = error.get("details")
    return RemoteError(
        error.get("error"),
        None if reason is None else str(reason),
        None if details is None else str(details),
    )


def websocket_url(url: str) -> str:
    """``http[s]://host[:port][/path]`` or ``ws[s]://...`` → the DDP websocket URL
    (``ws[s]://host[:port][/path]/websocket``)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not an http(s):// or ws(s):// URL: {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/websocket"):
        path += "/websocket"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def password_digest(password: str) -> dict[str, str]:
    """The password as Meteor clients send it: the SHA-256 of its UTF-8 bytes, in hex."""
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    return {"digest": digest, "algorithm": "sha-256"}
