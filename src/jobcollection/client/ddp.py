"""An asyncio DDP client (docs/protocol.md): methods, login, subscriptions, reconnects.

::

    async with DdpClient("ws://localhost:3000") as ddp:
        await ddp.login(username="ada", password="secret")
        job_id = await ddp.call("queue_jobSave", doc)
        sub = await ddp.subscribe("queue.jobs")
        ddp.collections["queue.jobs"][job_id]      # the local cache, kept live

Design. One *reader* task per websocket connection decodes every incoming frame and dispatches
it: a method's `result` completes the caller's future (calls are matched by id, so any number may
be outstanding), data messages update ``collections`` and feed observers and change streams,
server pings are answered at once. Sends go straight to the websocket. A *heartbeat* task pings
a silent server and drops the connection when the ping goes unanswered.

Reconnecting. When a connection is lost (and ``reconnect`` is on) a background task opens a new
one with exponential backoff and jitter, resumes the login with the stored token, re-sends every
active subscription and, once they are all ready, replaces the cache with what the server sent,
emitting the difference (documents removed while away are removed, and so on). Only then is the
client ``connected`` again and calls that waited for the connection are sent.

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
import hashlib
import inspect
import json
import logging
import random
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import websockets.exceptions as wsexc
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.protocol import State

from ..core import ejson
from ..errors import (
    AuthenticationFailed,
    ConnectionClosed,
    JobCollectionError,
    ProtocolError,
    RemoteError,
)

log = logging.getLogger(__name__)

DDP_VERSIONS: Final = ("1", "pre2", "pre1")
_CONNECT: Final = json.dumps({"msg": "connect", "version": "1", "support": list(DDP_VERSIONS)})
_CLOSE_TIMEOUT: Final = 2.0
_MAX_BACKOFF_EXPONENT: Final = 30

Callback = Callable[..., object]
Collections = defaultdict[str, dict[str, dict[str, Any]]]
ChangeKind = Literal["added", "changed", "removed"]


class ChangesOverflow(JobCollectionError):
    """A change stream's consumer fell behind: its buffer filled and later changes were lost."""


class _NotSent(Exception):
    """The call never reached the wire; it may safely be sent on the next connection."""


class _NotApplied(Exception):
    """The server says the call was not applied (it is restarting), or closed for a restart
    (code 1012) before answering it: it may safely be sent on the next connection."""


CLOSE_SERVICE_RESTART: Final = 1012


def _not_applied(error: object) -> bool:
    """Whether a call's error says that the server did not run it (a graceful restart)."""
    if not isinstance(error, dict) or error.get("error") != 503:
        return False
    reason = error.get("reason")
    return isinstance(reason, str) and "not applied" in reason


# -- small value types -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change of a cached document, as `DdpClient.changes` yields it.

    ``fields`` holds the whole document for ``added``, the new values for ``changed`` and
    nothing for ``removed``; ``cleared`` names the fields a ``changed`` removed.
    """

    kind: ChangeKind
    collection: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    cleared: list[str] = field(default_factory=list)


class _Pending:
    """An outstanding method call."""

    __slots__ = ("future", "has_result", "is_error", "method", "updated", "value", "wait_updated")

    def __init__(self, future: asyncio.Future[Any], method: str, wait_updated: bool) -> None:
        self.future = future
        self.method = method
        self.wait_updated = wait_updated
        self.has_result = False
        self.is_error = False
        self.updated = False
        self.value: Any = None

    def finish(self) -> None:
        if self.future.done():
            return
        if self.is_error:
            self.future.set_exception(self.value)
        else:
            self.future.set_result(self.value)


class _Connection:
    """One websocket and what belongs to it: its calls in flight and its tasks."""

    def __init__(self, ws: ClientConnection, session: str) -> None:
        self.ws = ws
        self.session = session
        self.calls: dict[str, _Pending] = {}
        self.closed = False
        self.restarting = False  # the server closed it for a restart (code 1012)
        self.last_heard = time.monotonic()
        self.reader: asyncio.Task[None] | None = None
        self.heartbeat: asyncio.Task[None] | None = None

    def can_send(self) -> bool:
        return not self.closed and self.ws.state is State.OPEN


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


def _run_callback(callback: Callback, args: tuple[Any, ...], what: str) -> object:
    """Call a user callback; its failure is logged, never raised into the client."""
    try:
        return callback(*args)
    except Exception:
        log.exception("DDP client: %s callback failed", what)
        return None


# -- subscriptions, observers, change streams --------------------------------------------------


class Subscription:
    """An active subscription; `DdpClient.subscribe` returns it once the server is ready.

    ``ready`` is True while the current connection has delivered its documents; after a
    reconnect the client subscribes again by itself. ``error`` is set when the server ended it.
    """

    def __init__(self, client: DdpClient, sub_id: str, name: str, params: list[Any]) -> None:
        self.client = client
        self.id = sub_id
        self.name = name
        self.params = params
        self.ready = False
        self.active = True  # False once stopped (by us or by the server)
        self.error: RemoteError | None = None
        self._conn: _Connection | None = None  # the connection it was last sent on
        self._ended = False  # the server's `nosub` arrived

    async def stop(self) -> None:
        """Unsubscribe and wait for the server to confirm (its documents are removed)."""
        if not self.active:
            return
        self.active = False
        self.ready = False
        conn = self._conn
        if conn is None or not conn.can_send():
            self.client._subs.pop(self.id, None)
            return
        try:
            await conn.ws.send(ejson.dumps({"msg": "unsub", "id": self.id}))
        except wsexc.ConnectionClosed:
            self.client._subs.pop(self.id, None)
            return
        await self.client._wait_until(lambda: self._ended or conn.closed)
        self.client._subs.pop(self.id, None)

    def __repr__(self) -> str:
        state = "ready" if self.ready else ("active" if self.active else "stopped")
        return f"<Subscription {self.name!r} {self.id} {state}>"


class ObserveHandle:
    """Callbacks on one cached collection; `stop()` ends them.

    Sync callbacks run inline, as each message is read. A callback that returns an awaitable
    (a coroutine function) has it awaited in a task of its own handle, in order.
    """

    def __init__(
        self,
        client: DdpClient,
        collection: str,
        added: Callback | None,
        changed: Callback | None,
        removed: Callback | None,
    ) -> None:
        self.client = client
        self.collection = collection
        self._callbacks: dict[str, Callback | None] = {
            "added": added,
            "changed": changed,
            "removed": removed,
        }
        self._pending: deque[Awaitable[object]] = deque()
        self._task: asyncio.Task[None] | None = None
        self.stopped = False

    def _deliver(self, kind: str, args: tuple[Any, ...]) -> None:
        callback = self._callbacks[kind]
        if callback is None or self.stopped:
            return
        outcome = _run_callback(callback, args, kind)
        if inspect.isawaitable(outcome):
            self._pending.append(outcome)
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                try:
                    await self._pending.popleft()
                except Exception:
                    log.exception("DDP client: observe callback failed")
        finally:
            self._task = None

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        observers = self.client._observers.get(self.collection)
        if observers is not None and self in observers:
            observers.remove(self)
        if self._task is not None:
            self._task.cancel()
        while self._pending:
            awaitable = self._pending.popleft()
            if inspect.iscoroutine(awaitable):
                awaitable.close()


class ChangeStream:
    """An async iterator of a collection's `ChangeEvent`s (see `DdpClient.changes`)."""

    def __init__(self, client: DdpClient, collection: str, maxsize: int) -> None:
        self.client = client
        self.collection = collection
        self.maxsize = maxsize
        self._items: deque[ChangeEvent] = deque()
        self._wake = asyncio.Event()
        self._ended = False
        self._overflowed = False

    def _push(self, event: ChangeEvent) -> None:
        if self._overflowed or self._ended:
            return
        if len(self._items) >= self.maxsize:
            self._overflowed = True  # what is buffered is delivered, then ChangesOverflow
            self._detach()
        else:
            self._items.append(event)
        self._wake.set()

    def _end(self) -> None:
        self._ended = True
        self._detach()
        self._wake.set()

    def _detach(self) -> None:
        streams = self.client._streams.get(self.collection)
        if streams is not None and self in streams:
            streams.remove(self)

    def close(self) -> None:
        """Stop receiving changes; the iteration ends after what is buffered."""
        self._end()

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> ChangeEvent:
        while not self._items:
            if self._overflowed:
                self._overflowed = False
                self._ended = True
                raise ChangesOverflow(
                    f"more than {self.maxsize} unread changes of {self.collection!r}; "
                    "later changes were dropped (the cache itself is complete)"
                )
            if self._ended:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        return self._items.popleft()

    async def __aenter__(self) -> ChangeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# -- the client --------------------------------------------------------------------------------


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
        self.collections: Collections = defaultdict(dict)
        self.on_reconnect: list[Callable[[], object]] = []
        self.user_id: str | None = None
        self.token: str | None = None
        self.session: str | None = None
        self.resume_error: RemoteError | None = None  # why the last resume login failed
        self.reconnects = 0  # successful reconnects so far
        self._conn: _Connection | None = None
        self._connected = False
        self._started = False
        self._closed = False
        self._close_error: BaseException | None = None
        self._reconnecting = False
        self._background: set[asyncio.Task[None]] = set()
        self._subs: dict[str, Subscription] = {}
        self._observers: dict[str, list[ObserveHandle]] = {}
        self._streams: dict[str, list[ChangeStream]] = {}
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
            await self._resync(conn)
        except BaseException:
            self._started = False  # no reconnecting: the caller is told
            if self._conn is not None:
                self._conn.ws.transport.abort()
            raise

    async def _open(self) -> _Connection:
        """A new websocket, handshaken, with its reader and heartbeat running."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                ws = await ws_connect(
                    self.url,
                    ping_interval=None,  # DDP has its own heartbeat
                    compression=None,
                    max_size=None,
                    open_timeout=None,  # bounded by connect_timeout
                    close_timeout=_CLOSE_TIMEOUT,
                )
                try:
                    session = await _handshake(ws)
                except BaseException:
                    ws.transport.abort()
                    raise
        except TimeoutError as error:
            raise ConnectionClosed(
                f"could not connect to {self.url} within {self.connect_timeout} s"
            ) from error
        except (OSError, wsexc.WebSocketException) as error:
            raise ConnectionClosed(f"could not connect to {self.url}: {error}") from error
        conn = _Connection(ws, session)
        self._conn = conn
        self.session = session
        loop = asyncio.get_running_loop()
        conn.reader = loop.create_task(self._read(conn), name=f"ddp-reader-{session}")
        if self.heartbeat_interval:
            conn.heartbeat = loop.create_task(self._heartbeat(conn), name=f"ddp-ping-{session}")
        return conn

    async def _resync(self, conn: _Connection) -> None:
        """Log in again, resubscribe, and bring the cache up to date; then `connected`."""
        self._shadow = defaultdict(dict)
        try:
            if self.token is not None:
                await self._resume(conn, self.token)
            while unsent := [s for s in self._subs.values() if s.active and s._conn is not conn]:
                for sub in unsent:
                    await self._send_sub(conn, sub)
                await self._wait_until(
                    lambda: conn.closed or all(s.ready or not s.active for s in unsent)
                )
                if conn.closed:
                    raise ConnectionClosed("connection lost while resubscribing")
            shadow, self._shadow = self._shadow, None
            self._reconcile(shadow)
            self._connected = True
            self._pulse()
        finally:
            self._shadow = None

    async def _resume(self, conn: _Connection, token: str) -> None:
        try:
            result = await self._invoke(conn, "login", [{"resume": token}], False)
        except RemoteError as error:
            log.warning("DDP client: resuming the login failed (%s); now logged out", error)
            self.resume_error = error
            self.user_id = self.token = None
        except (_NotSent, _NotApplied):
            raise ConnectionClosed("connection lost while logging in again") from None
        else:
            self._logged_in(result)

    async def _send_sub(self, conn: _Connection, sub: Subscription) -> None:
        sub._conn = conn
        sub.ready = False
        message: dict[str, Any] = {"msg": "sub", "id": sub.id, "name": sub.name}
        if sub.params:
            message["params"] = sub.params
        if conn.can_send():
            with contextlib.suppress(wsexc.ConnectionClosed):  # the next resync sends it
                await conn.ws.send(ejson.dumps(message))

    def _connection_lost(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.heartbeat is not None:
            conn.heartbeat.cancel()
        if self._conn is conn:
            self._conn = None
        self._connected = False
        calls, conn.calls = conn.calls, {}
        for call_id, pending in calls.items():
            if pending.has_result:  # only `updated` was missing: the outcome is known
                pending.finish()
            elif pending.future.done():
                continue
            elif conn.restarting and not self._closed:
                pending.future.set_exception(_NotApplied())  # unanswered at a clean 1012
            else:
                cause = "the client was closed" if self._closed else "the connection was lost"
                pending.future.set_exception(
                    ConnectionClosed(
                        f"{cause} before the result of {pending.method!r} (call {call_id}) "
                        "arrived: its outcome is unknown, it may or may not have been applied "
                        "(it is not resent)"
                    )
                )
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
            self._spawn(self._reconnect_loop(), "ddp-reconnect")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reconnect_loop(self) -> None:
        attempt = 0
        try:
            while not self._closed:
                exponent = min(attempt, _MAX_BACKOFF_EXPONENT)
                delay = min(self.backoff_max, self.backoff_initial * 2**exponent)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                attempt += 1
                try:
                    conn = await self._open()
                except ProtocolError as error:
                    self._terminate(error)
                    return
                except ConnectionClosed as error:
                    log.info("DDP client: reconnect attempt %d failed: %s", attempt, error)
                    continue
                except Exception:
                    log.exception("DDP client: reconnect attempt %d failed", attempt)
                    continue
                try:
                    await self._resync(conn)
                except ConnectionClosed as error:
                    log.info("DDP client: connection lost while resynchronizing: %s", error)
                    conn.ws.transport.abort()
                    continue
                except Exception:
                    log.exception("DDP client: resynchronizing failed; reconnecting")
                    conn.ws.transport.abort()
                    continue
                break
        finally:
            self._reconnecting = False
        if self._connected:
            self.reconnects += 1
            log.info("DDP client: reconnected to %s (session %s)", self.url, self.session)
            for callback in list(self.on_reconnect):
                outcome = _run_callback(callback, (), "on_reconnect")
                if inspect.isawaitable(outcome):
                    try:
                        await outcome
                    except Exception:
                        log.exception("DDP client: on_reconnect callback failed")

    def _terminate(self, error: BaseException) -> None:
        """Give up for good: the client is closed and every waiter is told why."""
        log.error("DDP client: giving up on %s: %s", self.url, error)
        self._close_error = error
        self._closed = True
        self._connected = False
        self._end_streams()
        self._pulse()

    def _end_streams(self) -> None:
        for streams in list(self._streams.values()):
            for stream in list(streams):
                stream._end()

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
        self._end_streams()
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

    # -- reading ------------------------------------------------------------------------------

    async def _read(self, conn: _Connection) -> None:
        ws = conn.ws
        try:
            async for frame in ws:
                conn.last_heard = time.monotonic()
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                try:
                    message = ejson.loads(text)
                except ValueError:
                    log.warning("DDP client: ignoring a frame that is not JSON: %.200s", text)
                    continue
                if not isinstance(message, dict):
                    continue
                kind = message.get("msg")
                if kind == "ping":
                    pong: dict[str, Any] = {"msg": "pong"}
                    if "id" in message:
                        pong["id"] = message["id"]
                    await ws.send(ejson.dumps(pong))
                    continue
                try:
                    self._dispatch(conn, kind, message)
                except Exception:
                    log.exception("DDP client: failed to handle %.200s", text)
        except wsexc.ConnectionClosed:
            pass
        except Exception:
            log.exception("DDP client: the reader failed")
            conn.ws.transport.abort()
        finally:
            closing = conn.ws.protocol.close_rcvd
            if closing is not None and closing.code == CLOSE_SERVICE_RESTART:
                conn.restarting = True
                log.info("DDP client: %s is restarting; unanswered calls will be resent", self.url)
            self._connection_lost(conn)

    def _dispatch(self, conn: _Connection, kind: object, message: dict[str, Any]) -> None:
        if kind == "result":
            self._on_result(conn, message)
        elif kind == "updated":
            for call_id in message.get("methods") or ():
                pending = conn.calls.get(call_id)
                if pending is not None:
                    pending.updated = True
                    if pending.has_result:
                        del conn.calls[call_id]
                        pending.finish()
        elif kind in ("added", "changed", "removed"):
            self._on_data(kind, message)
        elif kind == "ready":
            for sub_id in message.get("subs") or ():
                sub = self._subs.get(sub_id)
                if sub is not None and sub.active:
                    sub.ready = True
            self._pulse()
        elif kind == "nosub":
            self._on_nosub(message)
        elif kind == "error":
            log.warning("DDP client: the server refused a message: %s", message.get("reason"))
        # pong (last_heard is updated already), server_id and unknown messages: nothing to do

    def _on_result(self, conn: _Connection, message: dict[str, Any]) -> None:
        call_id = message.get("id")
        if not isinstance(call_id, str) or (pending := conn.calls.get(call_id)) is None:
            return
        if "error" in message and _not_applied(message["error"]):
            del conn.calls[call_id]
            if not pending.future.done():
                pending.future.set_exception(_NotApplied())
            return
        pending.has_result = True
        if "error" in message:
            pending.is_error = True
            pending.value = remote_error(message["error"])
        else:
            pending.value = message.get("result")
        if not pending.wait_updated or pending.updated:
            del conn.calls[call_id]
            pending.finish()

    def _on_nosub(self, message: dict[str, Any]) -> None:
        sub_id = message.get("id")
        if not isinstance(sub_id, str) or (sub := self._subs.get(sub_id)) is None:
            return
        del self._subs[sub.id]
        sub._ended = True
        sub.active = False
        sub.ready = False
        if "error" in message:
            sub.error = remote_error(message["error"])
            log.warning("DDP client: subscription %r ended: %s", sub.name, sub.error)
        self._pulse()

    # -- the local cache ----------------------------------------------------------------------

    def _on_data(self, kind: str, message: dict[str, Any]) -> None:
        collection, doc_id = message.get("collection"), message.get("id")
        if not isinstance(collection, str) or not isinstance(doc_id, str):
            return
        shadow = self._shadow
        docs = (self.collections if shadow is None else shadow)[collection]
        if kind == "added":
            fields = message.get("fields") or {}
            docs[doc_id] = dict(fields)
            if shadow is None:
                self._emit(collection, "added", doc_id, fields, [])
        elif kind == "changed":
            doc = docs.get(doc_id)
            if doc is None:
                log.debug("DDP client: change of unknown document %s/%s", collection, doc_id)
                return
            fields = message.get("fields") or {}
            cleared = message.get("cleared") or []
            doc.update(fields)
            for name in cleared:
                doc.pop(name, None)
            if shadow is None:
                self._emit(collection, "changed", doc_id, fields, list(cleared))
        elif docs.pop(doc_id, None) is not None and shadow is None:
            self._emit(collection, "removed", doc_id, {}, [])

    def _reconcile(self, fresh: Collections) -> None:
        """Make the cache equal to ``fresh``, emitting the difference."""
        for collection in set(self.collections) | set(fresh):
            old = self.collections[collection]
            new = fresh.get(collection, {})
            for doc_id in [d for d in old if d not in new]:
                del old[doc_id]
                self._emit(collection, "removed", doc_id, {}, [])
            for doc_id, doc in new.items():
                before = old.get(doc_id)
                old[doc_id] = doc
                if before is None:
                    self._emit(collection, "added", doc_id, dict(doc), [])
                    continue
                changed = {k: v for k, v in doc.items() if k not in before or before[k] != v}
                cleared = [k for k in before if k not in doc]
                if changed or cleared:
                    self._emit(collection, "changed", doc_id, changed, cleared)

    def _emit(
        self,
        collection: str,
        kind: ChangeKind,
        doc_id: str,
        fields: dict[str, Any],
        cleared: list[str],
    ) -> None:
        observers = self._observers.get(collection)
        if observers:
            if kind == "added":
                args: tuple[Any, ...] = (doc_id, fields)
            elif kind == "changed":
                args = (doc_id, fields, cleared)
            else:
                args = (doc_id,)
            for observer in list(observers):
                observer._deliver(kind, args)
        streams = self._streams.get(collection)
        if streams:
            event = ChangeEvent(kind, collection, doc_id, fields, cleared)
            for stream in list(streams):
                stream._push(event)

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
        handle = ObserveHandle(self, collection, added, changed, removed)
        self._observers.setdefault(collection, []).append(handle)
        return handle

    def changes(self, collection: str, *, maxsize: int = 10_000) -> ChangeStream:
        """An async iterator of the cached ``collection``'s changes from now on. At most
        ``maxsize`` unread events are buffered; beyond that the iterator raises
        `ChangesOverflow` once the buffer is consumed. Ends when the client closes."""
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        stream = ChangeStream(self, collection, maxsize)
        if self._closed:
            stream._end()
        else:
            self._streams.setdefault(collection, []).append(stream)
        return stream

    # -- heartbeat ----------------------------------------------------------------------------

    async def _heartbeat(self, conn: _Connection) -> None:
        interval, timeout = self.heartbeat_interval or 0.0, self.heartbeat_timeout
        while not conn.closed:
            silent = time.monotonic() - conn.last_heard
            if silent < interval:
                await asyncio.sleep(interval - silent)
                continue
            pinged = time.monotonic()
            try:
                await conn.ws.send(ejson.dumps({"msg": "ping", "id": self._new_id("ping-")}))
            except wsexc.ConnectionClosed:
                return
            await asyncio.sleep(timeout)
            if conn.last_heard < pinged and not conn.closed:
                log.warning(
                    "DDP client: no answer from %s for %.1f s; dropping the connection",
                    self.url,
                    time.monotonic() - conn.last_heard,
                )
                conn.ws.transport.abort()  # the reader sees the loss and reconnects
                return

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
            stale: _Connection | None = None  # a connection closing for a restart
            while True:
                conn = self._conn
                if self._connected and conn is not None and conn is not stale:
                    try:
                        return await self._invoke(conn, method, list(params), wait_updated)
                    except _NotSent:
                        pass  # sent once connected
                    except _NotApplied:
                        stale = conn  # sent again on the next connection
                if deadline is None and timeout is not None:
                    deadline = asyncio.get_running_loop().time() + timeout
                await self._wait_for_connection(method, deadline, stale)

    def _can_call(self) -> bool:
        return self._connected and self._conn is not None and self._conn.can_send()

    async def _wait_for_connection(
        self, method: str, deadline: float | None, stale: _Connection | None = None
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
        self, conn: _Connection, method: str, params: list[Any], wait_updated: bool
    ) -> Any:
        """Send one call on ``conn`` and wait for its result. Raises `_NotSent` when the
        websocket was no longer open (nothing was written)."""
        if not conn.can_send():
            raise _NotSent
        self._next_id += 1
        call_id = str(self._next_id)
        text = ejson.dumps({"msg": "method", "id": call_id, "method": method, "params": params})
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.calls[call_id] = _Pending(future, method, wait_updated)
        try:
            try:
                await conn.ws.send(text)
            except wsexc.ConnectionClosed:
                pass  # written (the state was OPEN) but the connection died: outcome unknown
            return await future
        finally:
            conn.calls.pop(call_id, None)

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


async def _handshake(ws: ClientConnection) -> str:
    """Send `connect` and wait for `connected`; returns the session id."""
    await ws.send(_CONNECT)
    while True:
        frame = await ws.recv()
        try:
            message = json.loads(frame)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        kind = message.get("msg")
        if kind == "connected":
            return str(message.get("session", ""))
        if kind == "failed":
            raise ProtocolError(
                "the server does not speak DDP version 1 "
                f"(it proposes version {message.get('version')!r})"
            )
        if kind == "error":
            raise ProtocolError(f"the server refused the DDP handshake: {message.get('reason')}")


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
