"""Stamps a peer's consumer process writes for the benchmark parent (huey and Celery alike).

The consumer runs in its own process; it reports "ready" (it can take work), "first" (the first
task started) and "done" (the expected number of tasks completed) as files holding
`time.time_ns()`, written atomically, which the parent polls.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any


def write_ns(path: Path) -> None:
    """Write the current `time.time_ns()` to ``path`` atomically (a rename)."""
    stamp = time.time_ns()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(stamp))
    os.replace(tmp, path)


class Probe:
    """Lives in the consumer process; hook its methods to the peer's signals."""

    def __init__(self, state: Path, expect: int) -> None:
        self._state, self._expect = state, expect
        self._lock = threading.Lock()
        self._ready = self._first = False
        self._count = 0

    def ready(self, *_args: Any, **_kwargs: Any) -> None:
        with self._lock:
            if not self._ready:
                self._ready = True
                write_ns(self._state / "ready")

    def started(self, *_args: Any, **_kwargs: Any) -> None:
        if self._first:
            return
        with self._lock:
            if not self._first:
                self._first = True
                write_ns(self._state / "first")

    def completed(self, *_args: Any, **_kwargs: Any) -> None:
        with self._lock:
            self._count += 1
            if self._count == self._expect:
                write_ns(self._state / "done")
