"""Job and collection logic is written once, as generators that yield method calls.

A flow yields `(method, params)` and receives the call's result; a sync driver answers with a
blocking call, an async driver with an awaited one. So `Job` and `AsyncJob` share every line of
logic and differ only in one-line forwarders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")
Call = tuple[str, list[Any]]
Flow = Generator[Call, Any, T]
SyncCaller = Callable[[str, list[Any]], Any]
AsyncCaller = Callable[[str, list[Any]], Awaitable[Any]]


def drive(flow: Flow[T], call: SyncCaller) -> T:
    """Run a flow to its end with a blocking caller."""
    try:
        request = next(flow)
        while True:
            request = flow.send(call(*request))
    except StopIteration as stop:
        result: T = stop.value
        return result


async def adrive(flow: Flow[T], call: AsyncCaller) -> T:
    """Run a flow to its end with an async caller."""
    try:
        request = next(flow)
        while True:
            request = flow.send(await call(*request))
    except StopIteration as stop:
        result: T = stop.value
        return result
