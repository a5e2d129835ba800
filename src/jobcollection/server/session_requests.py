"""`InOrder`: the requests of one DDP connection, run one at a time, in order (as DDP requires).

The base of `Session` (which owns the connection and its I/O): the *processor* task takes
the queued methods and subscriptions one by one; each method's `result`, then the data
messages it caused, then its `updated`. Consecutive job-writing calls share a transaction.
Job methods run off the event loop (`Dispatcher.call_async`): the processor awaits each, so
the connection's next request starts only after its predecessor's answer, but not after its
`updated`, which follows once the live queries have published its changes (`updates.py`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.permissions import ANONYMOUS, Caller
from ..ddp import messages as protocol
from ..ddp.messages import BadMessage
from .limits import Limits
from .login_throttle import host_of
from .meteor_error import MeteorError, as_meteor_error
from .outbox import Outbox
from .session_ports import ConnectionView, LoginService, SessionServices
from .updates import PendingUpdates

_MAX_BATCH = 64
_TOO_MANY_SUBS = MeteorError(429, "Too many subscriptions")

# Methods whose result hands the caller work to start (`<root>_getWork`, our batch form).
_WORK_METHODS = ("_getWork", "_jobDoneAndGetWork")


class InOrder(ABC):
    """Runs a connection's requests in order (see the module doc); `Session` provides the
    state below and the ways out (`send`, `_reply`)."""

    id: str
    client_address: str
    services: SessionServices
    limits: Limits
    caller: Caller
    token: str | None
    _view: ConnectionView
    _outbox: Outbox
    _work: deque[dict[str, Any]]
    _work_ready: asyncio.Event
    _room: asyncio.Event
    _pending_calls: int
    _answering: int
    _subs: set[str]
    _updates: PendingUpdates

    @abstractmethod
    def send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the client (data, `updated`, errors): `Session.send`."""

    @abstractmethod
    async def _reply(self, message: dict[str, Any], now: bool = True) -> None:
        """Send a method's answer (see `Session._reply`)."""

    async def _processor(self) -> None:
        while True:
            while not self._work:
                self._work_ready.clear()
                await self._work_ready.wait()
            await self._outbox.wait_below_soft()  # answers wait for a client that reads
            message = self._work.popleft()
            self._answering += 1
            try:
                await self._process(message)
            except BadMessage as bad:
                self.send(bad.reply())
            finally:
                self._answering -= 1
            if self._work:
                # A request served without waiting (e.g. a refused call): let the other
                # connections (and this one's reader and writer) have their turn.
                await asyncio.sleep(0)

    async def _process(self, message: dict[str, Any]) -> None:
        kind = message["msg"]
        if kind == "stop":
            await self._updates.sent()
            self._outbox.close(protocol.CLOSE_SERVICE_RESTART)  # after every answer queued
        elif kind == "refused":
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
                self._room.set()

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
        self._outbox.hold()  # the results go ahead of the data the calls cause
        try:
            await self._answer_many(calls)
        finally:
            self._outbox.release()
        self._updates.add(call.id for call in calls)

    async def _answer_many(self, calls: list[protocol.MethodCall]) -> None:
        outcomes = await self.services.dispatcher.call_many_async(
            [(call.method, call.params) for call in calls], self.caller, self
        )
        for call, (ok, value) in zip(calls, outcomes, strict=True):
            if ok or not isinstance(value, Exception):
                await self._reply(protocol.result(call.id, value))
            else:
                error = as_meteor_error(value).to_wire()
                await self._reply(protocol.error_result(call.id, error))

    async def _method(self, call: protocol.MethodCall) -> None:
        if call.method.endswith(_WORK_METHODS):
            # A worker waits for this result: it goes out first, then the changes it caused
            # (whose news may reach the loop before the call's outcome: held back till then).
            self._outbox.hold()
            try:
                await self._reply(await self._outcome(call))
            finally:
                self._outbox.release()
        else:
            # Others (a jobSave...) let the changes go first: a waiting worker hears of its job
            # one socket write sooner (the saver waits one message longer).
            reply = await self._outcome(call)
            await self._view.flush()
            await self._reply(reply, now=False)
        self._updates.add((call.id,))

    def _send_updated(self, ids: list[str]) -> None:
        """`updated` for ``ids`` (from `PendingUpdates`): an answer, like the results."""
        self._answering += 1
        try:
            self.send(protocol.updated(*ids))
        finally:
            self._answering -= 1

    async def _outcome(self, call: protocol.MethodCall) -> dict[str, Any]:
        """Run one call (off the loop, unless it is the session's own); its result message."""
        handler = self._SESSION_METHODS.get(call.method)
        try:
            if handler is not None:
                has_value, value = await handler(self, call.params)
            else:
                dispatcher = self.services.dispatcher
                value = await dispatcher.call_async(call.method, call.params, self.caller, self)
                has_value = True
        except Exception as error:  # every failure becomes a Meteor error for the client
            return protocol.error_result(call.id, as_meteor_error(error).to_wire())
        return protocol.result(call.id, value, has_value=has_value)

    async def _login(self, params: list[Any]) -> tuple[bool, object]:
        accounts = self._accounts("login")
        options = params[0] if params else None
        outcome = await accounts.login(options, address=host_of(self.client_address))
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
            self.send(protocol.nosub(sub_id, as_meteor_error(error).to_wire()))

    def _accounts(self, method: str) -> LoginService:
        if self.services.accounts is None:
            raise MeteorError(404, f"Method '{method}' not found")
        return self.services.accounts

    _SESSION_METHODS: dict[str, Callable[[InOrder, list[Any]], Awaitable[tuple[bool, object]]]] = {
        "login": _login,
        "logout": _logout,
    }

    async def _sub(self, request: protocol.SubRequest) -> None:
        if request.id in self._subs:
            return  # duplicate id: ignored (as DDP requires)
        if len(self._subs) >= self.limits.max_subscriptions:
            self.send(protocol.nosub(request.id, _TOO_MANY_SUBS.to_wire()))
            return
        self._subs.add(request.id)
        try:
            await self._view.subscribe(request.id, request.name, request.params, self.caller)
        except Exception as error:
            self._subs.discard(request.id)
            self._view.unsubscribe(request.id)
            self.send(protocol.nosub(request.id, as_meteor_error(error).to_wire()))
        else:
            self.send(protocol.ready(request.id))

    def _unsub(self, sub_id: str) -> None:
        if sub_id in self._subs:
            self._subs.discard(sub_id)
            self._view.unsubscribe(sub_id)
        self.send(protocol.nosub(sub_id))
