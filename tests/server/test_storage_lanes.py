"""Storage lanes (the threads that run the server's storage work) and the outbox's hold."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from jobcollection.server.outbox import Outbox
from jobcollection.server.storage_lanes import Lane, Lanes


def test_a_lane_runs_calls_in_order_off_the_loop_and_hands_back_results_and_errors() -> None:
    lane = Lane("test-lane")
    ran: list[tuple[int, str]] = []

    def work(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        if n == 3:
            raise ValueError("three")
        return n * 10

    async def main() -> list[object]:
        futures = [lane.submit(work, n) for n in range(6)]
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        lane.close()
    assert [n for n, _ in ran] == list(range(6))
    assert {name for _, name in ran} == {"test-lane"}
    assert outcomes[:3] == [0, 10, 20]
    assert isinstance(outcomes[3], ValueError)
    assert outcomes[4:] == [40, 50]


def test_a_blocked_lane_leaves_the_loop_free_and_a_cancelled_caller_is_skipped() -> None:
    lane = Lane("test-blocked")
    gate = threading.Event()

    async def main() -> tuple[int, float]:
        blocked = lane.submit(gate.wait, 5)
        started = time.monotonic()
        await asyncio.sleep(0.05)  # the loop runs while the lane waits
        ticked = time.monotonic() - started
        blocked.cancel()  # its caller went away: the outcome is dropped
        follower = lane.submit(lambda: 7)
        gate.set()
        return await follower, ticked

    try:
        value, ticked = asyncio.run(main())
    finally:
        lane.close()
    assert value == 7
    assert ticked < 1


def test_a_closed_lane_starts_again_and_lanes_are_per_storage_and_kind() -> None:
    lanes = Lanes()
    first, second = object(), object()
    assert lanes.writes(first) is lanes.writes(first)
    assert lanes.writes(first) is not lanes.reads(first)
    assert lanes.writes(first) is not lanes.writes(second)

    async def twice() -> int:
        return await lanes.reads(first).run(lambda: 2) * 2

    assert asyncio.run(twice()) == 4
    lanes.close()
    assert asyncio.run(twice()) == 4
    lanes.close()


def test_the_outbox_holds_pushed_data_back_but_not_answers() -> None:
    async def main() -> list[str]:
        outbox = Outbox(1 << 20, 1 << 22, on_room=lambda: None)
        outbox.hold()
        outbox.put("data", answer=True, may_hold=True)
        outbox.put("pong", answer=True)
        outbox.put("result", answer=True)
        queued = [await outbox.next(), await outbox.next()]
        assert outbox.empty()
        outbox.release()
        queued.append(await outbox.next())
        return queued

    assert asyncio.run(main()) == ["pong", "result", "data"]


@pytest.mark.parametrize("clear", [True, False])
def test_held_data_goes_before_a_close_and_is_dropped_by_clear(clear: bool) -> None:
    async def main() -> list[object]:
        outbox = Outbox(1 << 20, 1 << 22, on_room=lambda: None)
        outbox.hold()
        outbox.put("data", answer=False, may_hold=True)
        if clear:
            outbox.clear()
            outbox.release()
            return [outbox.empty(), outbox.size]
        outbox.close(1000)
        return [await outbox.next(), await outbox.next()]

    outcome = asyncio.run(main())
    if clear:
        assert outcome == [True, 0]
    else:
        assert outcome[0] == "data"
        assert getattr(outcome[1], "code", None) == 1000
