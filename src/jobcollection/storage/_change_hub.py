"""Fan-out of change-feed entries to in-process listeners, each entry delivered once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from .port import Change, ChangeListener

log = logging.getLogger(__name__)


class ChangeHub:
    """Delivers changes in sequence order; a change seen twice (local and watched) is dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[ChangeListener] = []
        self.published_seq = 0

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def seen(self, seq: int) -> None:
        with self._lock:
            self.published_seq = max(self.published_seq, seq)

    def publish_lazily(self, last_seq: int, changes: Callable[[], Sequence[Change]]) -> None:
        """Publish the changes up to `last_seq`, built by `changes()` only if anyone listens
        (a producer that saves thousands of jobs and watches none makes no change objects)."""
        with self._lock:
            if not self._listeners:
                self.published_seq = max(self.published_seq, last_seq)
                return
        self.publish(changes())

    def publish(self, changes: Sequence[Change]) -> None:
        with self._lock:
            fresh = [c for c in changes if c.seq > self.published_seq]
            if not fresh:
                return
            self.published_seq = fresh[-1].seq
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(fresh)
            except Exception:
                log.exception("change listener %r failed", listener)
