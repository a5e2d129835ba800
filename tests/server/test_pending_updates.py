"""`PendingUpdates`: a call's `updated` follows its published changes without holding up the
connection's next call."""

from __future__ import annotations

import asyncio

from jobcollection.server.updates import PendingUpdates


class _Flushes:
    """A `flush` the test releases by hand; records each `updated` sent."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Event] = []
        self.sent: list[list[str]] = []
        self.waiting = asyncio.Event()

    async def flush(self) -> None:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.waiting.set()
        await gate.wait()

    def send(self, ids: list[str]) -> None:
        self.sent.append(ids)

    async def open_next(self) -> None:
        await asyncio.wait_for(self.waiting.wait(), 1)
        self.gates.pop(0).set()
        if not self.gates:
            self.waiting.clear()
        for _ in range(3):
            await asyncio.sleep(0)


async def test_updated_waits_for_the_flush_that_began_after_the_call() -> None:
    flushes = _Flushes()
    updates = PendingUpdates(flushes.flush, flushes.send)
    updates.add(["1"])
    await asyncio.sleep(0)
    updates.add(["2", "3"])  # answered while the first wait is on: they wait for the next
    assert flushes.sent == []
    await flushes.open_next()
    assert flushes.sent == [["1"]]
    await flushes.open_next()
    assert flushes.sent == [["1"], ["2", "3"]]
    await updates.sent()
    assert flushes.gates == []  # nothing more to wait for: no third flush


async def test_sent_waits_for_every_id_noted_so_far() -> None:
    flushes = _Flushes()
    updates = PendingUpdates(flushes.flush, flushes.send)
    updates.add(["a"])
    waiter = asyncio.ensure_future(updates.sent())
    await asyncio.sleep(0)
    updates.add(["b"])
    await flushes.open_next()
    assert not waiter.done()  # "b" is still to go
    await flushes.open_next()
    await asyncio.wait_for(waiter, 1)
    assert flushes.sent == [["a"], ["b"]]


async def test_cancel_sends_nothing_more_and_lets_go_of_the_callbacks() -> None:
    flushes = _Flushes()
    updates = PendingUpdates(flushes.flush, flushes.send)
    updates.add(["x"])
    await asyncio.sleep(0)
    updates.cancel()
    await asyncio.sleep(0)
    updates.add(["y"])  # a late note after the connection ended: nothing is sent
    await updates.sent()
    assert flushes.sent == []
    assert updates._flush != flushes.flush
    assert updates._send != flushes.send
