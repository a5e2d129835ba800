"""Flat combining: concurrent callers leave their work; whoever holds the lock runs everything
that is pending in one go (for the engine: one transaction, one commit, for several callers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

W = TypeVar("W")
R = TypeVar("R")


class Request(Generic[W, R]):
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: W) -> None:
        self.work = work
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class Combiner(Generic[W, R]):
    """`submit(work)` returns `run_all`'s result for it; `run_all` gets every pending request
    and must set `result` on each (an exception it raises goes to all of them)."""

    def __init__(self, run_all: Callable[[list[Request[W, R]]], None]) -> None:
        self._run_all = run_all
        self._pending: list[Request[W, R]] = []
        self._pending_lock = threading.Lock()
        self._lock = threading.Lock()

    def submit(self, work: W) -> R:
        (request,) = self.submit_many([work])
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def submit_many(self, works: Sequence[W]) -> list[Request[W, R]]:
        """Several works of one caller, served in order (with whatever else is pending); the
        requests come back served, each with its `result` or its `error`."""
        requests: list[Request[W, R]] = [Request(work) for work in works]
        with self._pending_lock:
            self._pending.extend(requests)
        # Whoever gets the lock serves every request pending at that moment, so each caller
        # either finds its requests served or serves them itself: none is left behind.
        with self._lock:
            if not all(request.done for request in requests):
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                try:
                    self._run_all(batch)
                except BaseException as error:
                    for served in batch:
                        served.error = error
                    if not isinstance(error, Exception):
                        raise  # (an interrupt is nobody's answer)
                finally:
                    for served in batch:
                        served.done = True
        return requests
