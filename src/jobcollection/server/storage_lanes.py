"""Storage work off the event loop: one thread per database for writes, one for reads.

A SQLite write waits up to the busy timeout while another process holds the write lock (a
CLI bulk remove, a backup). Run on the server's event loop, that wait would freeze every
connection: pings unanswered, clients dropping. So the server never calls the engine on its
loop: each call goes to a *lane*, a thread that runs calls one after another in the order
they came, and the loop awaits the outcome.

A database has two lanes: writes (and whatever touches the worker registry) on one, reads
(`getJob`, pages, counts) on the other, so reads go on while a write waits for the lock (in
WAL mode a reader never waits for a writer; the SQLite adapter reads on its own connection).

A thread hop costs about as much as a short SQLite statement, so a lane takes everything
queued when it wakes and hands the outcomes back to the loop in one wake-up (at most
`_SETTLE_AFTER_S` late), and the session still batches a connection's pipelined writes into
one call (one transaction).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Final, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_SETTLE_AFTER_S: Final = 0.001  # outcomes held back at most this long to share a wake-up
_STOP: Final = object()

_Outcome = tuple["asyncio.Future[Any]", bool, Any]


class Lane:
    """One thread running calls in order; `run` awaits one (see the module doc)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on the lane's thread, after every call submitted before it."""
        future: asyncio.Future[T] = self.submit(function, *args)
        return await future

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `function(*args)`; the future (of the running loop) gets its outcome. A
        cancelled future does not cancel the call: it runs, and its outcome is dropped."""
        self._ensure_started()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((future, function, args))
        return future

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                    thread.start()
                    self._thread = thread

    def close(self, timeout: float = 5.0) -> None:
        """Run what is queued, then end the thread (waiting up to `timeout` s)."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)
        self._thread = None  # a later call starts a new thread

    def _serve(self) -> None:
        queue = self._queue
        while True:
            item = queue.get()
            outcomes: list[_Outcome] = []
            held_since = 0.0
            while True:
                if item is _STOP:
                    _hand_back(outcomes)
                    return
                future, function, args = item
                try:
                    outcome: _Outcome = (future, True, function(*args))
                except BaseException as error:
                    outcome = (future, False, error)
                # Hold nothing of a call done (a closed connection is freed at once).
                item = future = function = args = None
                if not outcomes:
                    held_since = time.monotonic()
                outcomes.append(outcome)
                if queue.empty() or time.monotonic() - held_since >= _SETTLE_AFTER_S:
                    _hand_back(outcomes)
                    outcomes = []
                outcome = None  # type: ignore[assignment]
                if queue.empty():
                    break
                item = queue.get()


def _hand_back(outcomes: list[_Outcome]) -> None:
    """Settle the futures on their loop, in one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # the loop closed: nobody waits any more
            log.debug("storage lane: outcomes for a closed event loop dropped")


def _settle(outcomes: list[_Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller was cancelled (e.g. its connection closed)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Lanes:
    """The lanes of each database (by storage object), made on first use."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[int, str], Lane] = {}
        self._keep: list[object] = []  # the storages, so their ids stay theirs
        self._lock = threading.Lock()

    def writes(self, storage: object) -> Lane:
        return self._lane(storage, "write")

    def reads(self, storage: object) -> Lane:
        return self._lane(storage, "read")

    def _lane(self, storage: object, kind: str) -> Lane:
        key = (id(storage), kind)
        lane = self._lanes.get(key)
        if lane is None:
            with self._lock:
                lane = self._lanes.get(key)
                if lane is None:
                    number = len(self._lanes) + 1
                    lane = self._lanes[key] = Lane(f"jobcollection-{kind}s-{number}")
                    self._keep.append(storage)
        return lane

    def close(self) -> None:
        for lane in list(self._lanes.values()):
            lane.close()
