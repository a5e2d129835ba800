"""The change feed on PostgreSQL: exact, whatever order concurrent writers commit in.

The trap: a `bigserial` sequence number is taken when a row is written, not when its
transaction commits. Writer A takes 10, writer B takes 11 and commits first; a reader that
saw 11 and moved its cursor past it never sees 10. So here:

- Each writing transaction writes its feed rows at commit time, in one statement, with
  `seq = (xid << 24) + ordinal`: `xid` is the transaction's own 64-bit id
  (`pg_current_xact_id()`), `ordinal` the row's position in the transaction (1, 2, ...).
  Rows of one transaction are consecutive and in the order written.
- A reader takes only rows with `seq < (xmin << 24)`, `xmin` being its statement snapshot's
  (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction with an id below `xmin` had
  ended when the snapshot was taken, so the set of rows below that bound is final — the
  committed ones are all visible, aborted ones never will be, and a transaction that has not
  ended, or starts later, has an id of at least `xmin` and so sorts after the bound. The order
  of `seq` is therefore a total order that never grows below a position a reader has passed:
  a reader never misses a change and never sees an uncommitted one.

The price: a row becomes readable only once every transaction that started before its own
commit has ended (any transaction with an id, in any database of the server). A long-running
writer holds the feed back for its duration; nothing is lost.

Bounds: `xid < 2**39` (550 billion transactions on the server) and fewer than `2**24`
feed rows per transaction (a transaction writing more is refused with `StorageError`); then
`seq` fits a signed 64-bit integer.

Delivery to `subscribe`rs: writers `pg_notify` (delivered at commit), at most once per few ms
per process with a trailing NOTIFY for the writes in between (`notify.py`); a thread per
`PgStorage` (started by the first subscriber) LISTENs on its own connection and reads the
feed past what it delivered (a local write that did not notify wakes it at once, `poke`).
When rows exist beyond the bound it retries soon (1 ms, doubling), and it polls every `POLL_S`
anyway, the safety net for a lost notification (e.g. across a reconnect). Local writes are
delivered the same way (read from the feed), never directly, so that
the one order holds for every subscriber; `settle` lets a caller wait (boundedly) until this
process's own writes went out — a server sends a method's changes before its result.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ...errors import StorageError
from .._change_hub import ChangeHub
from .._feed_rows import expand
from ..port import Change
from . import queries as q

log = logging.getLogger(__name__)

POLL_S = 0.1  # the safety-net poll
HELD_RETRY_S = 0.001  # first retry when rows wait for an older transaction to end
RECONNECT_S = 0.5
PRUNE_INTERVAL_S = 5.0
CHANGES_KEPT = 100_000  # feed rows kept for subscribers catching up
FOLLOW_ROWS = 10_000  # feed rows one read of the watcher takes
SETTLE_MAX_S = 1.0  # how long `settle` waits for a local change held back by another writer
# After a read that found changes, the next waits this long: under a stream of writes each read
# takes several transactions' rows at once, instead of one read (and a server round trip) per
# commit; a quiet feed is read at once when woken.
BUSY_GAP_S = 0.002
_MAX_ROWS = 1 << q.ORDINAL_BITS


def record(cur: psycopg.Cursor[Any], changes: list[tuple[Any, ...]], notify: bool = True) -> int:
    """Write a transaction's feed rows and (`notify`) its notification (call it last, before
    COMMIT); returns the last row's sequence number."""
    sql = q.RECORD if notify else q.RECORD_QUIET
    row = cur.execute(sql, record_args(changes)).fetchone()
    assert row is not None
    return last_seq_of(row, changes)


def record_args(changes: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The parameters of `q.RECORD`."""
    if len(changes) >= _MAX_ROWS:
        raise StorageError(
            f"one transaction changed {len(changes)} jobs; the change feed takes fewer than "
            f"{_MAX_ROWS} per transaction: change them in several"
        )
    return [list(column) for column in zip(*changes, strict=True)]


def last_seq_of(row: tuple[Any, ...], changes: list[tuple[Any, ...]]) -> int:
    """The sequence number of a transaction's last feed row, from `RECORD`'s result row."""
    return (int(row[1]) << q.ORDINAL_BITS) + len(changes)


def changes_since(
    cur: psycopg.Cursor[Any] | psycopg.Connection[Any], seq: int, limit: int
) -> list[Change]:
    return expand(cur.execute(q.CHANGES_SINCE, (seq, limit)).fetchall())


def last_seq(conn: psycopg.Cursor[Any] | psycopg.Connection[Any]) -> int:
    row = conn.execute(q.LAST_SEQ).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


class FeedWatcher:
    """LISTENs for feed notifications and publishes every change, in feed order, to a hub."""

    def __init__(self, conninfo: str, hub: ChangeHub, name: str, connect_timeout: int) -> None:
        self._waiting: list[tuple[int, float, Callable[[], None]]] = []  # (seq, deadline, call)
        self._waiting_lock = threading.Lock()
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._hub = hub
        self._name = name
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        # `poke` wakes the watcher from this process (a local write that did not notify).
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="jobcollection-pg-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failing = False  # (one warning per outage, not one per attempt)
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
                ) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {q.CHANNEL}")
                    if failing:
                        log.warning("change feed of %s: reconnected", self._name)
                        failing = False
                    self._follow(conn)
            except psycopg.Error as error:
                self._release(everyone=True)  # the changes come after the reconnect
                if not self._stop.is_set():
                    level = logging.DEBUG if failing else logging.WARNING
                    log.log(level, "change feed of %s: %s (reconnecting)", self._name, error)
                    failing = True
                    self._stop.wait(RECONNECT_S)
            finally:
                self._conn = None
        self._release(everyone=True)

    def settle(self, seq: int, callback: Callable[[], None]) -> bool:
        """Call `callback` once the changes up to `seq` were published (or after
        `SETTLE_MAX_S`, or when the feed breaks); False if they were already."""
        with self._waiting_lock:
            if seq <= self._hub.published_seq or self._stop.is_set():
                return False
            self._waiting.append((seq, time.monotonic() + SETTLE_MAX_S, callback))
        return True

    def _release(self, everyone: bool = False) -> None:
        if not self._waiting:
            return
        published, now = self._hub.published_seq, time.monotonic()
        with self._waiting_lock:
            done = [w for w in self._waiting if everyone or w[0] <= published or w[1] <= now]
            if not done:
                return
            self._waiting = [w for w in self._waiting if w not in done]
        for _, _, callback in done:
            try:
                callback()
            except Exception:
                log.exception("settle callback %r failed", callback)

    def _follow(self, conn: psycopg.Connection[Any]) -> None:
        hub = self._hub
        held_wait, last_prune, wrote = 0.0, time.monotonic(), False
        busy_until = 0.0  # no read before this: the last one found rows (see BUSY_GAP_S)
        while not self._stop.is_set():
            pause = busy_until - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            busy_until = 0.0
            while True:  # drain: everything final past what was delivered
                rows = conn.execute(q.FOLLOW, (hub.published_seq, FOLLOW_ROWS)).fetchall()
                newest = rows[0][0] if rows else None
                found = [row[1:] for row in rows if row[1] is not None]
                if found:
                    wrote = True
                    busy_until = time.monotonic() + BUSY_GAP_S
                    hub.publish(expand(found))
                if len(found) < FOLLOW_ROWS:
                    break
            self._release()
            if newest is not None and newest > hub.published_seq:
                # Rows wait for an older transaction to end: look again soon.
                held_wait = min(held_wait * 2, POLL_S) if held_wait else HELD_RETRY_S
                wait = held_wait
            else:
                held_wait, wait = 0.0, POLL_S
            if wrote and time.monotonic() - last_prune >= PRUNE_INTERVAL_S:
                conn.execute(q.PRUNE, (CHANGES_KEPT,))
                wrote, last_prune = False, time.monotonic()
            self._wait(conn, wait)

    def _wait(self, conn: psycopg.Connection[Any], timeout: float) -> None:
        """Until a notification arrives, `poke` is called, or `timeout` passes."""
        if sum(1 for _ in conn.notifies(timeout=0)):  # one came with the last query
            return
        wake = self._wake_in.fileno()
        ready, _, _ = select.select([conn.fileno(), wake], [], [], timeout)
        if wake in ready:
            with contextlib.suppress(OSError):
                while self._wake_in.recv(4096):
                    pass
        for _ in conn.notifies(timeout=0):  # consumed: each wakes the watcher once
            pass

    def poke(self) -> None:
        """Look at the feed now: this process committed a change without notifying."""
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._wake_out.send(b"x")

    def stop(self, wake: psycopg.Connection[Any] | None = None) -> None:
        self._stop.set()
        if wake is not None:  # a notification ends the watcher's wait now
            try:
                wake.execute(f"NOTIFY {q.CHANNEL}")
            except psycopg.Error:
                pass
        self.poke()
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            self._wake_in.close()
            self._wake_out.close()
