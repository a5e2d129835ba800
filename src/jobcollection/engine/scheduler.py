"""The collection's timer thread: readies jobs at their `after`, fails expired runs, runs the
safety-net promote sweep and the shutdown deadline.

Jobs become ready at their due time (within a few ms) because every operation reports the
times it created (`Op.wake_at`), and changes from other processes make the thread look again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import StorageError
from ..storage.port import Change

if TYPE_CHECKING:
    from .manager import JobManager

log = logging.getLogger(__name__)

_MAX_SLEEP_S = 1.0  # re-read the clock at least this often
_RECHECK_GAP_S = 0.002  # at most one next-wakeup query per this interval under load


class Scheduler:
    def __init__(self, manager: JobManager, interval_ms: int) -> None:
        self._manager = manager
        self._interval = interval_ms
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._stop = False
        self._next_wake: int | None = None
        self._asked: int | None = None  # the earliest `wake_at` since the last recheck began
        self._next_sweep = manager.clock.now_ms() + interval_ms
        self._shutdown_at: int | None = None
        self._next_tend = 0  # workers' heartbeats and the rescue of lost ones (_liveness)
        self._recheck = True
        self._last_recheck = 0.0
        manager.clock.on_jump(self.poke)
        self._unsubscribe = manager.storage.subscribe(self._on_changes)
        self._thread = threading.Thread(
            target=self._run, name=f"jobcollection-{manager.root}", daemon=True
        )
        self._thread.start()

    def poke(self) -> None:
        """Look again now (the clock jumped; a worker to keep alive was added)."""
        self._next_tend = 0
        self._event.set()

    def wake_at(self, when: int) -> None:
        with self._lock:
            if self._asked is None or when < self._asked:
                self._asked = when  # (kept across a recheck under way: see `_tick`)
            if self._next_wake is None or when < self._next_wake:
                self._next_wake = when
                self._event.set()

    def set_interval(self, interval_ms: int) -> None:
        with self._lock:
            self._interval = interval_ms
            self._next_sweep = self._manager.clock.now_ms()
        self._event.set()

    def set_shutdown(self, deadline: int | None) -> None:
        with self._lock:
            self._shutdown_at = deadline
        self._event.set()

    def _on_changes(self, changes: Sequence[Change]) -> None:
        root = self._manager.root
        if any(c.collection == root and c.status == "waiting" for c in changes):
            self._recheck = True
            self._event.set()

    def stop(self) -> None:
        self._stop = True
        self._unsubscribe()
        self._event.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _sleep_seconds(self, now: int) -> float:
        if self._manager.stopped:  # only the shutdown deadline and heartbeats matter
            times = [t for t in (self._shutdown_at, self._next_tend) if t is not None]
        else:
            times = [
                t
                for t in (self._next_wake, self._next_sweep, self._shutdown_at, self._next_tend)
                if t is not None
            ]
        if self._recheck and not self._manager.stopped:
            wait = _RECHECK_GAP_S - (time.monotonic() - self._last_recheck)
            return max(wait, 0.0)
        if not times:
            return _MAX_SLEEP_S
        return min(max((min(times) - now) / 1000, 0.0), _MAX_SLEEP_S)

    def _run(self) -> None:
        failing = False  # the last tick failed: a database that is down fails every retry
        while True:
            self._event.wait(self._sleep_seconds(self._manager.clock.now_ms()))
            self._event.clear()
            if self._stop:
                break
            try:
                self._tick()
                failing = False
            except StorageError as error:  # e.g. the database is down: quietly after the first
                level = logging.DEBUG if failing else logging.WARNING
                log.log(level, "%s: scheduler tick failed: %s", self._manager.root, error)
                failing = True
                time.sleep(0.1)
            except Exception:
                log.exception("%s: scheduler tick failed", self._manager.root)
                time.sleep(0.1)

    def _tick(self) -> None:
        manager = self._manager
        now = manager.clock.now_ms()
        with self._lock:
            shutdown_due = self._shutdown_at is not None and self._shutdown_at <= now
            if shutdown_due:
                self._shutdown_at = None
            sweep_due = self._next_sweep <= now
            wake_due = self._next_wake is not None and self._next_wake <= now
            if sweep_due:
                self._next_sweep = now + self._interval
        if shutdown_due:
            manager.finish_shutdown()
        if self._next_tend <= now:
            self._next_tend = manager.liveness.tend(now, rescuing=not manager.stopped)
        if manager.stopped:
            return
        if sweep_due or wake_due:
            manager.sweep()
            self._recheck = True
        if self._recheck and time.monotonic() - self._last_recheck >= _RECHECK_GAP_S:
            self._recheck = False
            self._last_recheck = time.monotonic()
            with self._lock:
                self._asked = None
            upcoming = manager.next_wakeup()
            with self._lock:
                # A wake-up asked for while the database was read may come from a write the
                # read did not see (it committed after the read began): it is kept.
                times = [t for t in (upcoming, self._asked) if t is not None]
                self._next_wake = min(times) if times else None
