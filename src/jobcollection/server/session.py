"""One DDP connection: handshake, heartbeats, methods and subscriptions, in order.

The transport is abstract (the ASGI websocket handler in `app.py` provides it). Three tasks
per connection:

- the *reader* answers what needs no ordering at once (pings, the handshake, malformed
  frames) and queues methods and subscriptions;
- the *processor* runs the queued messages one at a time, in order (SPEC 8): each method's
  `result`, then the data messages it caused, then its `updated`;
- the *writer* sends every outgoing message in the order it was produced.

A heartbeat watchdog pings a quiet client and closes a connection that stays silent, once the
handshake has chosen a DDP version that has heartbeats (every version but `pre1`, as Meteor).
Before the handshake it only closes a connection that stays silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.ids import random_id
from ..core.permissions import ANONYMOUS, Caller
from . import protocol
from .dispatch import Dispatcher
from .meteor_error import MeteorError, as_meteor_error
from .protocol import BadMessage, BadParams

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits; exceeding one gets a DDP error reply, never a crash."""

    max_message_size: int = 1 << 20
    max_subscriptions: int = 100
    max_pending_calls: int = 100
    heartbeat_interval: float = 15.0  # seconds of silence before we ping
    heartbeat_timeout: float = 15.0  # seconds after our ping before we close


class Transport(Protocol):
    async def receive_text(self) -> str | None:
        """The next text frame, or None once the peer has gone."""

    async def send_text(self, text: str) -> None: ...

    async def close(self) -> None: ...


class ConnectionView(Protocol):
    """What the session needs from the publications (see `publications.py`)."""

    async def subscribe(self, sub_id: str, name: str, params: list[Any], caller: Caller) -> None:
        """Send the subscription's initial documents; raises MeteorError if refused."""

    def unsubscribe(self, sub_id: str) -> None: ...

    async def rerun(self, caller: Caller) -> dict[str, Exception]:
        """Re-run every subscription for a new user; returns those that now fail (ended)."""

    async def flush(self) -> None: ...

    def close(self) -> None: ...


class LoginService(Protocol):
    """What the session needs from the accounts (see `accounts.py`)."""

    def login(self, options: object, *, connection_key: str) -> Any:
        """Blocking (bcrypt); returns an object with user_id, username, token, to_wire()."""

    def logout(self, token: str | None) -> None: ...


ViewFactory = Callable[[Callable[[dict[str, Any]], None]], ConnectionView]


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What a session serves: job methods, accounts (optional) and publications."""

    dispatcher: Dispatcher
    accounts: LoginService | None
    views: ViewFactory
    limits: Limits


_TOO_MANY_CALLS = MeteorError(429, "Too many pending method calls")
_MAX_BATCH = 64
_TOO_MANY_SUBS = MeteorError(429, "Too many subscriptions")


# Methods whose result hands the caller work to start (`<root>_getWork`, our batch form).
_WORK_METHODS = ("_getWork", "_jobDoneAndGetWork")


class Session:
    """The server side of one DDP connection; also the `connection` handle events carry."""

    def __init__(self, services: SessionServices, transport: Transport, client: str = "") -> None:
        self.services = services
        self.limits = services.limits
        self.transport = transport
        self.client_address = client
        self.id = random_id()
        self.caller: Caller = ANONYMOUS
        self.token: str | None = None
        self.connected = False
        self.version: str | None = None  # the DDP version the handshake chose
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer_busy = False
        self._work: deque[dict[str, Any]] = deque()
        self._work_ready = asyncio.Event()
        self._pending_calls = 0
        self._subs: set[str] = set()
        self._view = services.views(self.send)
        self._last_heard = time.monotonic()
        self._closing = False

    # -- outgoing ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the client (any code on the loop may call this)."""
        self._outgoing.put_nowait(protocol.encode(message))

    async def _writer(self) -> None:
        while (text := await self._outgoing.get()) is not None:
            self._writer_busy = True
            try:
                await self.transport.send_text(text)
            finally:
                self._writer_busy = False

    async def _reply(self, message: dict[str, Any], now: bool = True) -> None:
        """Send a method's result now when nothing is queued before it (it then overtakes
        the re-reads a change just scheduled, so a waiting worker starts sooner); else, or
        unless ``now``, queue it behind what is waiting, keeping the order."""
        try:
            text = protocol.encode(message)
        except (TypeError, ValueError, RecursionError):  # a result JSON cannot carry
            log.exception("DDP method %s: its result cannot be sent", message.get("id"))
            failure = MeteorError(500, "Internal server error").to_wire()
            text = protocol.encode(protocol.error_result(message["id"], failure))
        if now and self._outgoing.empty() and not self._writer_busy:
            await self.transport.send_text(text)
        else:
            self._outgoing.put_nowait(text)

    # -- the connection's life --------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client leaves or the heartbeat gives up."""
        self._outgoing.put_nowait(protocol.SERVER_ID_MESSAGE)
        tasks = [
            asyncio.create_task(self._writer(), name=f"ddp-writer-{self.id}"),
            asyncio.create_task(self._processor(), name=f"ddp-processor-{self.id}"),
            asyncio.create_task(self._heartbeat(), name=f"ddp-heartbeat-{self.id}"),
        ]
        try:
            await self._reader()
        finally:
            self._closing = True
            self._view.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _close_soon(self) -> None:
        """Flush what is queued, then close (after `failed`)."""
        self._closing = True
        self._outgoing.put_nowait(None)
        await asyncio.sleep(0)
        await self.transport.close()

    async def _reader(self) -> None:
        while not self._closing and (text := await self.transport.receive_text()) is not None:
            self._last_heard = time.monotonic()
            try:
                await self._on_frame(text)
            except BadMessage as bad:
                self.send(bad.reply())

    async def _on_frame(self, text: str) -> None:
        if len(text) > self.limits.max_message_size:
            limit = self.limits.max_message_size
            raise BadMessage(f"Message too large ({len(text)} characters; the limit is {limit})")
        try:
            message = protocol.parse(text)
        except BadMessage as bad:
            if bad.reason == "Bad request" and bad.offending is None:
                bad.offending = protocol.offending(text)
            raise
        except BadParams as bad:
            if not self.connected:
                raise BadMessage("Must connect first", protocol.offending(text)) from None
            self._queue_work({"msg": "refused", "replies": bad.replies()})  # answered in turn
            return
        kind = message["msg"]
        if not self.connected:
            if kind != "connect":
                raise BadMessage("Must connect first", message)
            await self._connect(message)
        elif kind == "ping":
            self.send(protocol.pong(message))
        elif kind == "pong":
            pass
        elif kind == "connect":
            raise BadMessage("Already connected", message)
        elif kind == "method":
            self._queue_method(protocol.method_call(message))
        elif kind in ("sub", "unsub"):
            self._queue_work(message)
        else:
            raise BadMessage("Bad request", message)

    async def _connect(self, message: dict[str, Any]) -> None:
        outcome = protocol.negotiate(message)
        if outcome.ok:
            self.connected = True
            self.version = outcome.version
            self.send({"msg": "connected", "session": self.id})
        else:
            self.send({"msg": "failed", "version": outcome.version})
            await self._close_soon()

    def _queue_method(self, call: protocol.MethodCall) -> None:
        if self._pending_calls >= self.limits.max_pending_calls:
            self.send(protocol.error_result(call.id, _TOO_MANY_CALLS.to_wire()))
            self.send(protocol.updated(call.id))
            return
        self._pending_calls += 1
        self._queue_work({"msg": "method", "call": call})

    def _queue_work(self, message: dict[str, Any]) -> None:
        self._work.append(message)
        self._work_ready.set()

    async def _heartbeat(self) -> None:
        interval, timeout = self.limits.heartbeat_interval, self.limits.heartbeat_timeout
        while True:
            await asyncio.sleep(max(interval - (time.monotonic() - self._last_heard), 0.01))
            if self.connected and not protocol.has_heartbeat(self.version):
                return  # pre1 knows no ping: its clients would not answer one
            if time.monotonic() - self._last_heard < interval:
                continue
            if self.connected:
                self.send({"msg": "ping"})
            pinged = time.monotonic()
            await asyncio.sleep(timeout)
            if self._last_heard < pinged:
                log.info("closing DDP connection %s: no answer to ping", self.id)
                await self.transport.close()
                return

    # -- in-order processing ----------------------------------------------------------------

    async def _processor(self) -> None:
        while True:
            await self._work_ready.wait()
            self._work_ready.clear()
            while self._work:
                message = self._work.popleft()
                try:
                    await self._process(message)
                except BadMessage as bad:
                    self.send(bad.reply())

    async def _process(self, message: dict[str, Any]) -> None:
        kind = message["msg"]
        if kind == "refused":
            for reply in message["replies"]:
                self.send(reply)
        elif kind == "sub":
            await self._sub(protocol.sub_request(message))
        elif kind == "unsub":
            self._unsub(protocol.unsub_id(message))
        else:
            batch = self._take_batch(message["call"])
            try:
                if len(batch) > 1:
                    await self._methods(batch)
                else:
                    await self._method(batch[0])
            finally:
                self._pending_calls -= len(batch)

    def _take_batch(self, first: protocol.MethodCall) -> list[protocol.MethodCall]:
        """``first`` and the queued calls right behind it that may share its transaction
        (e.g. a remote worker's payload of `jobDone`s): one commit serves them all."""
        batch = [first]
        key = self.services.dispatcher.batch_key(first.method)
        while key is not None and self._work and len(batch) < _MAX_BATCH:
            following = self._work[0]
            if following["msg"] != "method":
                break
            if self.services.dispatcher.batch_key(following["call"].method) != key:
                break
            batch.append(self._work.popleft()["call"])
        return batch

    async def _methods(self, calls: list[protocol.MethodCall]) -> None:
        outcomes = self.services.dispatcher.call_many(
            [(call.method, call.params) for call in calls], self.caller, self
        )
        for call, (ok, value) in zip(calls, outcomes, strict=True):
            if ok or not isinstance(value, Exception):
                await self._reply(protocol.result(call.id, value))
            else:
                await self._reply(protocol.error_result(call.id, as_meteor_error(value).to_wire()))
        await self._view.flush()
        self.send(protocol.updated(*(call.id for call in calls)))

    async def _method(self, call: protocol.MethodCall) -> None:
        handler = self._SESSION_METHODS.get(call.method)
        try:
            if handler is not None:
                has_value, value = await handler(self, call.params)
            else:
                has_value, value = (
                    True,
                    self.services.dispatcher.call(call.method, call.params, self.caller, self),
                )
        except Exception as error:  # every failure becomes a Meteor error for the client
            reply = protocol.error_result(call.id, as_meteor_error(error).to_wire())
        else:
            reply = protocol.result(call.id, value, has_value=has_value)
        if call.method.endswith(_WORK_METHODS):
            # A worker waits for this result: it goes out first, then the changes it caused.
            await self._reply(reply)
            await self._view.flush()
        else:
            # Others (a jobSave...) let the changes go first: a waiting worker hears of its job
            # one socket write sooner, and the caller gets its result in the same loop turn.
            await self._view.flush()
            await self._reply(reply, now=False)
        self.send(protocol.updated(call.id))

    async def _login(self, params: list[Any]) -> tuple[bool, object]:
        accounts = self._accounts("login")
        options = params[0] if params else None
        outcome = await asyncio.to_thread(accounts.login, options, connection_key=self.id)
        self.caller = Caller(outcome.user_id, outcome.username)
        self.token = outcome.token
        await self._rerun()
        return True, outcome.to_wire()

    async def _logout(self, params: list[Any]) -> tuple[bool, object]:
        accounts = self._accounts("logout")
        await asyncio.to_thread(accounts.logout, self.token)
        self.caller, self.token = ANONYMOUS, None
        await self._rerun()
        return False, None

    async def _rerun(self) -> None:
        """The user changed: subscriptions re-run, and those now refused end with `nosub`."""
        for sub_id, error in (await self._view.rerun(self.caller)).items():
            self._subs.discard(sub_id)
            self.send({"msg": "nosub", "id": sub_id, "error": as_meteor_error(error).to_wire()})

    def _accounts(self, method: str) -> LoginService:
        if self.services.accounts is None:
            raise MeteorError(404, f"Method '{method}' not found")
        return self.services.accounts

    _SESSION_METHODS: dict[str, Callable[[Session, list[Any]], Awaitable[tuple[bool, object]]]] = {
        "login": _login,
        "logout": _logout,
    }

    async def _sub(self, request: protocol.SubRequest) -> None:
        if request.id in self._subs:
            return  # duplicate id: ignored (SPEC 8)
        if len(self._subs) >= self.limits.max_subscriptions:
            self.send({"msg": "nosub", "id": request.id, "error": _TOO_MANY_SUBS.to_wire()})
            return
        self._subs.add(request.id)
        try:
            await self._view.subscribe(request.id, request.name, request.params, self.caller)
        except Exception as error:
            self._subs.discard(request.id)
            self._view.unsubscribe(request.id)
            self.send({"msg": "nosub", "id": request.id, "error": as_meteor_error(error).to_wire()})
        else:
            self.send({"msg": "ready", "subs": [request.id]})

    def _unsub(self, sub_id: str) -> None:
        if sub_id in self._subs:
            self._subs.discard(sub_id)
            self._view.unsubscribe(sub_id)
        self.send({"msg": "nosub", "id": sub_id})
