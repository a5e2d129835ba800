"""Observers and change streams of the DDP client's cache (`DdpClient.observe`, `.changes`)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..ddp.cache import Change
from ..errors import JobCollectionError

log = logging.getLogger("jobcollection.client.ddp")

Callback = Callable[..., object]
ChangeEvent = Change  # one change of a cached document, as `DdpClient.changes` yields it


class ChangesOverflow(JobCollectionError):
    """A change stream's consumer fell behind: its buffer filled and later changes were lost."""


def run_callback(callback: Callback, args: tuple[Any, ...], what: str) -> object:
    """Call a user callback; its failure is logged, never raised into the client."""
    try:
        return callback(*args)
    except Exception:
        log.exception("DDP client: %s callback failed", what)
        return None


class ObserveHandle:
    """Callbacks on one cached collection; `stop()` ends them.

    Sync callbacks run inline, as each message is read. A callback that returns an awaitable
    (a coroutine function) has it awaited in a task of its own handle, in order.
    """

    def __init__(
        self,
        registry: dict[str, list[ObserveHandle]],
        collection: str,
        added: Callback | None,
        changed: Callback | None,
        removed: Callback | None,
    ) -> None:
        self._registry = registry
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
        outcome = run_callback(callback, args, kind)
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
        observers = self._registry.get(self.collection)
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

    def __init__(
        self, registry: dict[str, list[ChangeStream]], collection: str, maxsize: int
    ) -> None:
        self._registry = registry
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
        streams = self._registry.get(self.collection)
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


class Emitter:
    """The observers and change streams of every collection, and the delivery of changes."""

    def __init__(self) -> None:
        self.observers: dict[str, list[ObserveHandle]] = {}
        self.streams: dict[str, list[ChangeStream]] = {}

    def listening(self) -> bool:
        """Whether any observer or stream was ever registered (else `emit` has nothing to do)."""
        return bool(self.observers or self.streams)

    def emit(self, change: Change) -> None:
        observers = self.observers.get(change.collection)
        if observers:
            if change.kind == "added":
                args: tuple[Any, ...] = (change.id, change.fields)
            elif change.kind == "changed":
                args = (change.id, change.fields, change.cleared)
            else:
                args = (change.id,)
            for observer in list(observers):
                observer._deliver(change.kind, args)
        streams = self.streams.get(change.collection)
        if streams:
            for stream in list(streams):
                stream._push(change)

    def end_streams(self) -> None:
        for streams in list(self.streams.values()):
            for stream in list(streams):
                stream._end()
