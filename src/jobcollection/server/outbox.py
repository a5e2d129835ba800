"""`Outbox`: one connection's outgoing messages, in order, counted in bytes.

The count is what the queued texts occupy in memory (`sys.getsizeof`), so a limit in bytes
bounds the memory a slow reader can make us hold. Two limits: below ``soft`` the session
produces answers (results, pongs) and reads more requests; above ``hard`` a subscriber has
fallen too far behind on pushed data and is disconnected (see `Session`).
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Close:
    """The last item of an outbox: close the websocket with this code once all before it
    is sent."""

    code: int


class Outbox:
    """A FIFO of texts for the writer, with its size in bytes."""

    def __init__(self, soft: int, hard: int, on_room: Callable[[], None]) -> None:
        self.soft, self.hard = soft, hard
        self.size = 0
        self.answers = 0  # bytes of answers among them (see `over_hard`)
        self._items: deque[str | Close] = deque()
        self._filled = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._on_room = on_room  # called whenever the size drops below ``soft``
        self.closing: Close | None = None
        self._held: list[str] | None = None  # pushed data held back (see `hold`)

    def put(self, text: str, *, answer: bool, may_hold: bool = False) -> None:
        """Queue ``text``; an ``answer`` (to a request of the client's) never counts against
        the hard limit: answers are bounded by the client's own requests. ``may_hold``: a
        message `hold` holds back (not a pong, nor a result)."""
        if self.closing is not None:
            return  # the close is queued: nothing after it can be sent
        size = sys.getsizeof(text)
        self.size += size
        if answer:
            self.answers += size
        if self.size >= self.soft:
            self._room.clear()
        if self._held is not None and may_hold:
            self._held.append(text)
            return
        self._items.append(text)
        self._filled.set()

    def hold(self) -> None:
        """Hold back the messages put with ``may_hold`` (pongs and results still go) until
        `release`: a worker's claim runs off the event loop, and the news of it, which may
        reach us first, waits for its result."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Queue the data held back, after what is queued now."""
        held, self._held = self._held, None
        if held:
            self._items.extend(held)
            self._filled.set()

    def close(self, code: int) -> None:
        """Queue the close: what is queued before it is still sent."""
        if self.closing is None:
            self.release()
            self.closing = Close(code)
            self._items.append(self.closing)
            self._filled.set()

    def empty(self) -> bool:
        return not self._items

    @property
    def below_soft(self) -> bool:
        return self.size < self.soft

    @property
    def over_hard(self) -> bool:
        """More than ``hard`` bytes of pushed data (not answers) wait."""
        return self.size - self.answers > self.hard

    async def wait_below_soft(self) -> None:
        while self.size >= self.soft:
            await self._room.wait()

    async def next(self) -> str | Close:
        """The oldest item; the caller reports a text as sent with `sent`."""
        while not self._items:
            self._filled.clear()
            await self._filled.wait()
        return self._items.popleft()

    def sent(self, text: str) -> None:
        size = sys.getsizeof(text)
        self.size -= size
        # Answers went in first, mostly: count what leaves against them first (which at worst
        # lets pushed data reach the hard limit a little sooner).
        self.answers = max(0, self.answers - size)
        if self.size < self.soft:
            self._room.set()
            self._on_room()

    def clear(self) -> None:
        """Drop everything (the connection is gone): the memory is freed at once."""
        self._items.clear()
        self._held = None
        self.size = self.answers = 0
        self._room.set()
