"""`updated` messages, sent behind the changes a call made without holding up the next call.

DDP promises a client that a method's `updated` comes after every data message the method
caused; it does not ask the server to wait for that before running the connection's next
call (Meteor runs the next method as soon as the previous one returns). Waiting for the
live queries to catch up (`ConnectionView.flush`: a hop to the live-query thread and back)
before starting the next call would add that hop to every call of a busy worker.

So the session answers a call, notes its id here, and moves on; one task per connection waits
for the live queries to catch up with what was committed so far and then sends `updated` for
every id noted before the wait began (several calls share one wait). The ids go out in the
order the calls were answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable


class PendingUpdates:
    """The ids of answered calls whose `updated` is still to come (see the module doc)."""

    def __init__(
        self, flush: Callable[[], Awaitable[None]], send: Callable[[list[str]], None]
    ) -> None:
        self._flush = flush  # waits until the changes committed so far were published
        self._send = send  # sends one `updated` naming the ids
        self._ids: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, ids: Iterable[str]) -> None:
        """Note answered calls; their `updated` follows once their changes are out."""
        self._ids.extend(ids)
        if self._ids and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def sent(self) -> None:
        """Wait until every id noted so far had its `updated` sent."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        """The connection ended: send nothing more (and let go of the session, whose
        callbacks these are: it is freed at once, without waiting for a garbage collection)."""
        self._ids.clear()
        self._flush, self._send = _caught_up, _send_nothing
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        try:
            while self._ids:
                ids, self._ids = self._ids, []
                await self._flush()
                self._send(ids)
        finally:
            if self._task is asyncio.current_task():
                self._task = None


async def _caught_up() -> None:
    return None


def _send_nothing(ids: list[str]) -> None:
    del ids
