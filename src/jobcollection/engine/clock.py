"""Clocks: the system clock, and a manual one that lets tests jump through time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time in integer ms since the epoch."""
        ...

    def on_jump(self, callback: Callable[[], None]) -> None:
        """Register a callback run when time jumps (manual clocks only)."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def on_jump(self, callback: Callable[[], None]) -> None:
        """Wall time never jumps under our control."""


class ManualClock:
    """A clock that moves only when told: `advance(ms)` or `set(ms)`; wakes the schedulers."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def now_ms(self) -> int:
        return self._now

    def on_jump(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def advance(self, ms: int) -> int:
        with self._lock:
            self._now += ms
        for callback in list(self._callbacks):
            callback()
        return self._now

    def set(self, ms: int) -> None:
        self.advance(ms - self._now)
