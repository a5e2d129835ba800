"""An asyncio DDP client (docs/protocol.md): methods, login, subscriptions, reconnects.

::

    async with DdpClient("ws://localhost:3000") as ddp:
        await ddp.login(username="ada", password="secret")
        job_id = await ddp.call("queue_jobSave", doc)
        sub = await ddp.subscribe("queue.jobs")
        ddp.collections["queue.jobs"][job_id]      # the local cache, kept live

Design. The protocol is `jobcollection.ddp` (sans I/O); this is its asyncio driver. One *reader*
task per websocket connection decodes every incoming frame and hands it to the connection's
`ddp.client.ClientConnection`, then acts on the event: a completed method completes the caller's
future (calls are matched by id, so any number may be outstanding), data messages update
``collections`` (a `ddp.cache.Cache`) and feed observers and change streams (`changes.py`),
server pings are answered at once. Sends go straight to the websocket. A *heartbeat* task pings
a silent server and drops the connection when the ping goes unanswered (`connection.py`).

Reconnecting (`reconnect.py`). When a connection is lost (and ``reconnect`` is on) a background
task opens a new one with exponential backoff and jitter, resumes the login with the stored
token, re-sends every active subscription and, once they are all ready, replaces the cache with
what the server sent, emitting the difference (documents removed while away are removed, and
so on). Only then is the client ``connected`` again and calls that waited for the connection
are sent.

Calls are resent only when they provably were not applied. A server restarting gracefully
(ours, on SIGTERM) answers every call it has read, answers calls arriving after that with
error 503 "... the call was not applied", and then closes the websocket with code 1012
(service restart): such calls, and the calls still unanswered at that close frame, are sent
again after the reconnect (once logged in again and resubscribed), transparently to the
caller. A call whose result had not arrived when its connection was lost any other way (no
close frame, or any other code) fails with `ConnectionClosed` saying that its outcome is
unknown (it may or may not have been applied). A call that provably never left (the websocket
was already closing) waits for the next connection like any call made while disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import websockets.exceptions as wsexc

from ..core import ejson
from ..ddp.cache import Cache, Collections
from ..errors import (
    AuthenticationFailed,
    ConnectionClosed,
    ProtocolError,
    RemoteError,
)
from . import reader, reconnect
from .changes import Callback, ChangeEvent, ChangesOverflow, ChangeStream, Emitter, ObserveHandle
from .connection import (
    Connection,
    Pending,
    heartbeat,
    open_connection,
    password_digest,
    remote_error,
    websocket_url,
)
from .reconnect import NotApplied, NotSent
from .subscription import Subscription

log = logging.getLogger(__name__)


class DdpClient:
    """An asyncio DDP client; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval: float | None = 15.0,
        heartbeat_timeout: float = 15.0,
        reconnect: bool = True,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        connect_timeout: float = 10.0,
        max_in_flight: int = 100,
    ) -> None:
        """``heartbeat_interval``: seconds of silence before we ping (None: never);
        ``heartbeat_timeout``: seconds to wait for any answer before dropping the connection;
        ``max_in_flight``: calls outstanding at once (more wait here; the server itself takes
        any number, reading them as fast as it answers them)."""
        self.url = websocket_url(url)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self._cache = Cache()
        self.collections: Collections = self._cache.collections
        self.on_reconnect: list[Callable[[], object]] = []
        self.user_id: str | None = None
        self.token: str | None = None
        self.session: str | None = None
        self.resume_error: RemoteError | None = None  # why the last resume login failed
        self.reconnects = 0  # successful reconnects so far
        self._conn: Connection | None = None
        self._connected = False
        self._started = False
        self._closed = False
        self._close_error: BaseException | None = None
        self._reconnecting = False
        self._background: set[asyncio.Task[None]] = set()
        self._subs: dict[str, Subscription] = {}
        self._changes = Emitter()
        self._shadow: Collections | None = None  # the cache being rebuilt during a resync
        self._limiter = asyncio.Semaphore(max_in_flight)
        self._state = asyncio.Event()  # replaced and set on every state change (`_pulse`)
        self._next_id = 0

    # -- state --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Connected, logged in again and resubscribed: calls go out at once."""
        return self._connected

    @property
    def closed(self) -> bool:
        return self._closed

    def _pulse(self) -> None:
        """Wake everything waiting in `_wait_until`."""
        event, self._state = self._state, asyncio.Event()
        event.set()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._state.wait()

    def _new_id(self, prefix: str = "") -> str:
        self._next_id += 1
        return f"{prefix}{self._next_id}"

    def _closed_error(self, what: str) -> ConnectionClosed:
        error = ConnectionClosed(f"the DDP client is closed; {what}")
        error.__cause__ = self._close_error
        return error

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until `connected`; TimeoutError after ``timeout`` seconds, ConnectionClosed
        if the client closes (or gives up) first."""
        if self._connected:
            return
        if not self._started:
            raise ConnectionClosed("not connected: call connect() first")
        async with asyncio.timeout(timeout):
            await self._wait_until(lambda: self._connected or self._closed)
        if not self._connected:
            raise self._closed_error("it is not connected")

    # -- connecting ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection (the DDP handshake); raises ConnectionClosed if the server
        cannot be reached and ProtocolError if it refuses our DDP version."""
        if self._started:
            raise RuntimeError("connect() was already called")
        if self._closed:
            raise self._closed_error("it cannot connect again")
        self._started = True
        try:
            conn = await self._open()
            await reconnect.resync(self, conn)
        except BaseException:
            self._started = False  # no reconnecting: the caller is told
            if self._conn is not None:
                self._conn.ws.transport.abort()
            raise

    async def _open(self) -> Connection:
        """A new websocket, handshaken, with its reader and heartbeat running."""
        conn = await open_connection(self.url, self.connect_timeout)
        self._conn = conn
        self.session = session = conn.session
        loop = asyncio.get_running_loop()
        conn.reader = loop.create_task(self._read(conn), name=f"ddp-reader-{session}")
        if self.heartbeat_interval:
            conn.pinger = loop.create_task(
                heartbeat(
                    conn,
                    self.heartbeat_interval,
                    self.heartbeat_timeout,
                    lambda: self._new_id("ping-"),
                    self.url,
                ),
                name=f"ddp-ping-{session}",
            )
        return conn

    async def _send_sub(self, conn: Connection, sub: Subscription) -> None:
        sub._conn = conn
        sub.ready = False
        message = conn.ddp.subscribe(sub.id, sub.name, sub.params)
        if conn.can_send():
            with contextlib.suppress(wsexc.ConnectionClosed):  # the next resync sends it
                await conn.ws.send(ejson.dumps(message))

    def _connection_lost(self, conn: Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.pinger is not None:
            conn.pinger.cancel()
        if self._conn is conn:
            self._conn = None
        self._connected = False
        reconnect.settle_lost_calls(conn, self._closed)
        for sub in list(self._subs.values()):
            sub.ready = False
            if not sub.active:
                self._subs.pop(sub.id, None)
        self._pulse()
        if self._closed or not self._started:
            return
        if not self.reconnect:
            self._terminate(ConnectionClosed("the connection was lost (reconnect is off)"))
        elif not self._reconnecting:
            self._reconnecting = True
            self._spawn(reconnect.reconnect_loop(self), "ddp-reconnect")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _terminate(self, error: BaseException) -> None:
        """Give up for good: the client is closed and every waiter is told why."""
        log.error("DDP client: giving up on %s: %s", self.url, error)
        self._close_error = error
        self._closed = True
        self._connected = False
        self._changes.end_streams()
        self._pulse()

    async def close(self) -> None:
        """Close the connection and stop reconnecting. Calls still waiting for their result
        fail with ConnectionClosed (outcome unknown); change streams end."""
        if self._closed:
            return
        self._closed = True
        self._connected = False
        current = asyncio.current_task()
        background = [task for task in self._background if task is not current]
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(BaseException):
                await task
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.ws.close()
            if conn.reader is not None and conn.reader is not current:
                with contextlib.suppress(BaseException):
                    await conn.reader
            self._connection_lost(conn)
        self._changes.end_streams()
        self._pulse()

    async def __aenter__(self) -> DdpClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _read(self, conn: Connection) -> None:
        await reader.read(self, conn)

    def observe(
        self,
        collection: str,
        *,
        added: Callback | None = None,
        changed: Callback | None = None,
        removed: Callback | None = None,
    ) -> ObserveHandle:
        """Call ``added(id, fields)``, ``changed(id, fields, cleared)``, ``removed(id)`` as the
        cached ``collection`` changes (sync functions or coroutine functions)."""
        handle = ObserveHandle(self._changes.observers, collection, added, changed, removed)
        self._changes.observers.setdefault(collection, []).append(handle)
        return handle

    def changes(self, collection: str, *, maxsize: int = 10_000) -> ChangeStream:
        """An async iterator of the cached ``collection``'s changes from now on. At most
        ``maxsize`` unread events are buffered; beyond that the iterator raises
        `ChangesOverflow` once the buffer is consumed. Ends when the client closes."""
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        stream = ChangeStream(self._changes.streams, collection, maxsize)
        if self._closed:
            stream._end()
        else:
            self._changes.streams.setdefault(collection, []).append(stream)
        return stream

    # -- methods ------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        *params: Any,
        wait_updated: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Call a server method; returns its (EJSON-decoded) result.

        A Meteor error raises `RemoteError`. Completes on `result`; with ``wait_updated``
        also waits for `updated` (the call's data messages have reached the cache). While
        disconnected the call waits for the reconnect, at most ``timeout`` seconds (then
        `ConnectionClosed`: it was not sent). A call the server did not apply because it was
        restarting is sent again after the reconnect; a call already sent when its connection
        is lost otherwise fails with `ConnectionClosed` (outcome unknown), never resent.
        """
        async with self._limiter:
            deadline: float | None = None
            stale: Connection | None = None  # a connection closing for a restart
            while True:
                conn = self._conn
                if self._connected and conn is not None and conn is not stale:
                    try:
                        return await self._invoke(conn, method, list(params), wait_updated)
                    except NotSent:
                        pass  # sent once connected
                    except NotApplied:
                        stale = conn  # sent again on the next connection
                if deadline is None and timeout is not None:
                    deadline = asyncio.get_running_loop().time() + timeout
                await self._wait_for_connection(method, deadline, stale)

    def _can_call(self) -> bool:
        return self._connected and self._conn is not None and self._conn.can_send()

    async def _wait_for_connection(
        self, method: str, deadline: float | None, stale: Connection | None = None
    ) -> None:
        """Wait until calls can be sent on a connection other than ``stale`` (``deadline`` in
        loop time), else ConnectionClosed."""
        if not self._started and not self._closed:
            raise ConnectionClosed(f"not connected (call connect() first); {method!r} not sent")
        try:
            async with asyncio.timeout_at(deadline):
                await self._wait_until(
                    lambda: (self._can_call() and self._conn is not stale) or self._closed
                )
        except TimeoutError as error:
            raise ConnectionClosed(
                f"not connected within the timeout; {method!r} was not sent"
            ) from error
        if self._closed:
            raise self._closed_error(f"{method!r} was not sent")

    async def _invoke(
        self, conn: Connection, method: str, params: list[Any], wait_updated: bool
    ) -> Any:
        """Send one call on ``conn`` and wait for its result. Raises `NotSent` when the
        websocket was no longer open (nothing was written)."""
        if not conn.can_send():
            raise NotSent
        self._next_id += 1
        call_id = str(self._next_id)
        text = ejson.dumps(conn.ddp.call(call_id, method, params, wait_updated))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.waiters[call_id] = Pending(future, method)
        try:
            try:
                await conn.ws.send(text)
            except wsexc.ConnectionClosed:
                pass  # written (the state was OPEN) but the connection died: outcome unknown
            return await future
        finally:
            conn.waiters.pop(call_id, None)
            conn.ddp.forget(call_id)

    # -- accounts -----------------------------------------------------------------------------

    async def login(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        password: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Log in with ``username``/``email`` and ``password``, or resume with ``token``.
        Returns the server's result (``id``, ``token``, ``tokenExpires``, ``type``); the token
        is kept to log in again after a reconnect. A refusal raises `AuthenticationFailed`
        (the server's `RemoteError` is its ``__cause__``)."""
        options: dict[str, Any]
        if token is not None:
            if username is not None or email is not None or password is not None:
                raise ValueError("login: give either a token or a user and password")
            options = {"resume": token}
        else:
            if password is None or (username is None) == (email is None):
                raise ValueError("login: give exactly one of username/email, and a password")
            user = {"username": username} if username is not None else {"email": email}
            options = {"user": user, "password": password_digest(password)}
        try:
            result = await self.call("login", options)
        except RemoteError as error:
            raise AuthenticationFailed(error.reason or str(error)) from error
        if not isinstance(result, dict):
            raise ProtocolError(f"login answered {result!r}, not an object")
        self._logged_in(result)
        return result

    def _logged_in(self, result: Any) -> None:
        if isinstance(result, dict) and isinstance(result.get("token"), str):
            self.user_id = result.get("id")
            self.token = result["token"]
            self.resume_error = None

    async def logout(self) -> None:
        """Log out (the server forgets the token); later reconnects stay logged out."""
        self.user_id = self.token = None
        await self.call("logout")

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, name: str, *params: Any) -> Subscription:
        """Subscribe and wait until the server has sent the initial documents (`ready`).
        A refusal raises `RemoteError`. While disconnected it waits for the reconnect."""
        if self._closed:
            raise self._closed_error("cannot subscribe")
        if not self._started:
            raise ConnectionClosed("not connected: call connect() first")
        sub = Subscription(self, self._new_id("sub-"), name, list(params))
        self._subs[sub.id] = sub
        conn = self._conn
        if self._connected and conn is not None:
            await self._send_sub(conn, sub)
        try:
            await self._wait_until(lambda: sub.ready or not sub.active or self._closed)
        except BaseException:  # cancelled: unsubscribe without waiting for the server
            if sub.active and not self._closed:
                self._spawn(sub.stop(), f"ddp-unsub-{sub.id}")
            raise
        if sub.error is not None:
            raise sub.error
        if not sub.ready:
            raise self._closed_error(f"subscription {name!r} not ready")
        return sub


__all__ = [
    "ChangeEvent",
    "ChangeStream",
    "ChangesOverflow",
    "DdpClient",
    "ObserveHandle",
    "Subscription",
    "password_digest",
    "remote_error",
    "websocket_url",
]
