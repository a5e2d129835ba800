"""A private event loop on a background thread, so blocking code can use asyncio machinery."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (its transports and wake-ups cost less per
    message: a remote worker's every call and doorbell pass through one), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def running_on(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs on ``loop`` (rather than on another thread or loop)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs on this thread
        return False


class Portal:
    """Runs coroutines and callbacks on its own loop thread, for callers on other threads."""

    def __init__(self, name: str = "jobcollection-loop") -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        while True:
            try:
                self.loop.run_forever()
                return  # stopped by close()
            except BaseException:
                # A callback let SystemExit or KeyboardInterrupt out, which ends run_forever;
                # a loop that stopped would leave every later call waiting forever.
                log.exception("%s: a callback raised; the loop goes on", self._thread.name)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the portal loop and wait for its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("Portal.run called from the portal's own loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop thread and wait for its result."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        if not self.loop.is_running():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
