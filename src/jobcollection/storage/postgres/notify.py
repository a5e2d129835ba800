"""Rate-limited feed notifications: at most one `pg_notify` per `GAP_S` from one process's
writers; the writes committed in between are announced by one trailing NOTIFY.

A notification costs a commit dearly (measured: a lone job insert with its feed row commits
about half as often with `pg_notify` in it), and every LISTENing process wakes for each one
and reads the feed. One per `GAP_S` is enough: a listener wakes at most `GAP_S` after any
commit (when the writer was not idle before it; the first write after a pause notifies at
once), and reads everything committed up to then. The writer's own process does not wait: a
write that did not notify wakes its watcher directly (`FeedWatcher.poke`). The watcher's poll
(`feed.POLL_S`) remains the safety net should a notification be lost anyway (a dropped
connection).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

GAP_S = 0.005  # at most one notification per this long from one process


class Notifier:
    """Decides, per committing write, whether it notifies itself (`claim`) or is covered by a
    trailing notification (`owe`, once it committed), which `send` makes from a thread."""

    def __init__(self, send: Callable[[], None], gap_s: float = GAP_S) -> None:
        self._send = send
        self._gap_s = gap_s
        self._last = float("-inf")  # when the last notification went out (monotonic)
        self._owed = False  # a quiet write committed since
        self._closed = False
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def claim(self) -> bool:
        """True: this write notifies itself (nothing went out for `GAP_S`); False: it must
        call `owe` once committed."""
        now = time.monotonic()
        with self._cond:
            if now - self._last >= self._gap_s or self._closed:
                self._last = now
                return True
            return False

    def owe(self) -> None:
        """A write that did not notify has committed: a NOTIFY follows within `GAP_S`."""
        with self._cond:
            if self._closed:
                send_now = True
            else:
                send_now = False
                self._owed = True
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="jobcollection-pg-notify", daemon=True
                    )
                    self._thread.start()
                self._cond.notify()
        if send_now:
            self._deliver()

    def hurry(self) -> None:
        """Send what is owed now rather than at the end of the gap."""
        with self._cond:
            if self._owed:
                self._last = float("-inf")
                self._cond.notify()

    def close(self) -> None:
        """Send what is owed now; later writes notify themselves."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._owed and not self._closed:
                    self._cond.wait()
                if not self._owed:  # closed, nothing owed
                    return
                while not self._closed:
                    wait = self._last + self._gap_s - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                # Cleared before sending: a write committing after this point owes again.
                self._owed = False
                self._last = time.monotonic()
            self._deliver()

    def _deliver(self) -> None:
        try:
            self._send()
        except Exception as error:  # the watchers' poll delivers the changes anyway
            log.warning("feed notification failed: %s", error)
