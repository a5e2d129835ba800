"""Workers' heartbeats, and the rescue of a lost worker's jobs.

A process hosts the workers that live in it (its queues; a server's connections) and renews
their records every third of their `lost_after`, in one write for all of them. Any process
whose job server runs also looks, at least once a second and at the earliest deadline it knows
of, for workers of other processes whose records lapsed: their running jobs are failed with
"Worker lost" (not fatally: retried per their policy) and the record is marked lost. The
rescue is one write transaction whose every update is a compare-and-set on the job's run, so
several processes may rescue at once. Both run on the collection's scheduler thread, off every
queue's path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.workers import LOST_KEPT_MS, WORKER_LOST, WorkerRecord
from ..errors import StorageError
from ..storage.port import JobDoc, Transaction
from . import _work
from ._context import Op

if TYPE_CHECKING:
    from .manager import JobManager

log = logging.getLogger(__name__)

POLL_MS = 1000  # another process' worker may lapse at any time: look at least this often
_UNKNOWN_CLAIM = (
    "claimed by worker {} in a call whose reply was lost with its connection: it never ran"
)


def _where(worker: WorkerRecord) -> str:
    parts: list[str] = [worker.kind]
    if worker.host:
        parts.append(f"host {worker.host}")
    if worker.pid is not None:
        parts.append(f"pid {worker.pid}")
    if worker.address:
        parts.append(f"from {worker.address}")
    if worker.username:
        parts.append(f"user {worker.username}")
    return ", ".join(parts)


def lost_error(worker: WorkerRecord, now: int) -> dict[str, Any]:
    """The failure recorded on a lost worker's jobs."""
    silent = (now - worker.last_seen) / 1000
    return {
        "value": WORKER_LOST,
        "message": f"worker {worker.id} ({_where(worker)}) was last seen {silent:.1f} s ago "
        f"(lost after {worker.lost_after / 1000:g} s without a heartbeat)",
        "worker": worker.id,
    }


def _needs_rescue(tx: Transaction, lapsed: Sequence[WorkerRecord], now: int) -> bool:
    """Whether a rescue would change anything: a lapsed worker not yet marked lost, a lost one
    that holds running jobs (it claimed after it was taken for lost) or is due to be forgotten."""
    if any(w.status != "lost" or now - w.last_seen > LOST_KEPT_MS for w in lapsed):
        return True
    return bool(lapsed) and bool(tx.running_of([w.id for w in lapsed]))


def rescue(op: Op, spared: frozenset[str]) -> list[tuple[WorkerRecord, int]]:
    """Fail the running jobs of every lapsed worker (but `spared`, alive in this process),
    mark them lost, forget those lost long ago; (worker, jobs failed) per newly lost worker
    or worker that still had jobs."""
    lapsed = [w for w in op.tx.lapsed_workers(op.now) if w.id not in spared]
    running: dict[str, list[JobDoc]] = {}
    for worker_id, doc in op.tx.running_of([w.id for w in lapsed]):
        running.setdefault(worker_id, []).append(doc)
    outcome = []
    for worker in lapsed:
        jobs = running.get(worker.id, [])
        error = lost_error(worker, op.now)
        failed = sum(_work.fail_run(op, doc, error, False) for doc in jobs)
        if worker.status != "lost":
            op.tx.set_worker_status(worker.id, "lost")
        elif not jobs and op.now - worker.last_seen > LOST_KEPT_MS:
            op.tx.remove_worker(worker.id)
            continue
        if worker.status != "lost" or failed:
            outcome.append((worker, failed))
    return outcome


def fail_orphans(op: Op) -> int:
    """Fail running jobs whose claimant has no record at all (a worker forgotten while it still
    held a job, e.g. one that failed to record an outcome and then shut down)."""
    error = {"value": WORKER_LOST, "message": "the worker that claimed it is not registered"}
    return sum(_work.fail_run(op, doc, error, False) for doc in op.tx.orphans())


class Liveness:
    """The heartbeats of the workers this process hosts, and the rescue (see the module doc)."""

    def __init__(self, manager: JobManager) -> None:
        self._manager = manager
        self._lock = threading.Lock()
        self._hosted: dict[str, WorkerRecord] = {}
        self._next_beat: int | None = None
        self._next_look = 0
        # Storage outages seen from here: since when it fails (None: it works), and the last
        # one that ended (start, end), during which nobody's heartbeat could be written.
        self._down_since: int | None = None
        self._last_outage: tuple[int, int] | None = None

    @property
    def hosted(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._hosted)

    def host(
        self,
        record: WorkerRecord,
        *,
        store: bool,
        moved_from: str | None = None,
        keep_only: frozenset[str] | None = None,
    ) -> None:
        """Keep `record` alive from now on; `store` writes it first (else it is stored), and
        gives it the running jobs of worker `moved_from`, which goes. With `keep_only` (the
        jobs a reconnected worker knows it runs), its other running jobs are failed: claimed
        by calls whose replies were lost with a connection, nobody runs them."""
        manager = self._manager

        def put(op: Op, _: object) -> None:
            if keep_only is not None:
                error = {"value": WORKER_LOST, "message": _UNKNOWN_CLAIM.format(record.id)}
                for _, doc in op.tx.running_of([record.id]):
                    if doc["_id"] not in keep_only:
                        _work.fail_run(op, doc, error, False)
            op.tx.put_worker(record)
            if moved_from is not None:
                op.tx.move_running(moved_from, record.id)
                op.tx.remove_worker(moved_from)

        if store:
            manager.run(put, None)
        with self._lock:
            if moved_from is not None:
                self._hosted.pop(moved_from, None)
            self._hosted[record.id] = record
            due = manager.clock.now_ms() + self._interval()
            self._next_beat = due if self._next_beat is None else min(self._next_beat, due)
        manager.scheduler.poke()

    def unhost(self, worker_id: str, *, keep: bool) -> None:
        """Stop renewing a worker; `keep` leaves its record to lapse (a disconnected remote
        worker may come back for its jobs), else it is removed (a graceful stop)."""
        with self._lock:
            self._hosted.pop(worker_id, None)

        def release(op: Op, _: object) -> None:
            if keep:
                op.tx.set_worker_status(worker_id, "disconnected")
            else:
                op.tx.remove_worker(worker_id)

        self._manager.run(release, None)

    def _interval(self) -> int:
        """A third of the shortest `lost_after` hosted (under the lock)."""
        return max(min((w.lost_after for w in self._hosted.values()), default=POLL_MS) // 3, 1)

    def tend(self, now: int, rescuing: bool) -> int:
        """Renew the hosted workers if due; with `rescuing` (the job server runs), look for
        lost workers if due. Returns when to come back."""
        with self._lock:
            beat_due = self._next_beat is not None and self._next_beat <= now
        if beat_due:
            self._storage(now, self._beat())
        comeback = now + POLL_MS
        if rescuing:
            if now >= self._next_look:
                try:
                    deadline = self._look(now)
                    self._storage(now, True)
                except Exception as error:  # e.g. a locked database: look again in a second
                    self._storage(now, not isinstance(error, StorageError))
                    root = self._manager.root
                    log.warning("%s: looking for lost workers failed: %s", root, error)
                    deadline = None
                self._next_look = now + POLL_MS
                if deadline is not None and deadline >= now:  # (a past one: a spared worker)
                    self._next_look = min(self._next_look, deadline + 1)
            comeback = min(comeback, self._next_look)
        with self._lock:
            if self._next_beat is not None:
                comeback = min(comeback, self._next_beat)
        return comeback

    def _storage(self, now: int, worked: bool) -> None:
        """Note whether the storage worked just now (see `_blinded`)."""
        if not worked:
            if self._down_since is None:
                self._down_since = now
        elif self._down_since is not None:
            self._last_outage = (self._down_since, now)
            self._down_since = None

    def _blinded(self, worker: WorkerRecord, now: int) -> bool:
        """Whether a lapsed worker may have missed its heartbeats only because the storage
        was down (for everyone): it had not lapsed when the outage began, and has not had its
        whole lapse to beat again since it ended. It is not taken for lost before that."""
        if self._down_since is not None:
            return True
        if self._last_outage is None:
            return False
        start, end = self._last_outage
        return worker.expires >= start and now < end + worker.lost_after

    def _beat(self) -> bool:
        """Renew the hosted workers; False if the storage failed."""
        manager = self._manager
        with self._lock:
            records = list(self._hosted.values())
            self._next_beat = manager.clock.now_ms() + self._interval() if records else None
        if not records:
            return True

        def renew(op: Op, _: object) -> list[str]:
            lost = {w.id for w in op.tx.lapsed_workers(op.now) if w.status == "lost"}
            found = set(op.tx.beat_workers([w.id for w in records], op.now))
            for record in records:
                if record.id not in found:  # forgotten meanwhile: registered again
                    op.tx.put_worker(record.seen(op.now))
            return [w.id for w in records if w.id in lost or w.id not in found]

        try:
            revived = manager.run(renew, None)
        except Exception as error:  # the next beat tries again; the lapse is three beats away
            log.warning("%s: renewing %d workers failed: %s", manager.root, len(records), error)
            return not isinstance(error, StorageError)
        for worker_id in revived:
            log.warning(
                "%s: worker %s was taken for lost (silent too long) and its running jobs "
                "were failed; it is registered again",
                manager.root,
                worker_id,
            )
        return True

    def _look(self, now: int) -> int | None:
        """Rescue lapsed workers' jobs if there is anything to rescue (a read first: most
        looks find nothing); returns the earliest deadline of a worker not yet lost."""
        manager = self._manager
        spared = self.hosted
        with manager.storage.read(manager.root) as tx:
            lapsed = [w for w in tx.lapsed_workers(now) if w.id not in spared]
            blinded = frozenset(w.id for w in lapsed if self._blinded(w, now))
            spared |= blinded
            lapsed = [w for w in lapsed if w.id not in blinded]
            needed = bool(lapsed) and _needs_rescue(tx, lapsed, now)
            deadline = tx.next_worker_deadline()
        if needed:
            for worker, failed in manager.run(lambda op, _: rescue(op, spared), None):
                log.warning(
                    "%s: worker %s (%s) lost: no heartbeat for %.1f s; %d running jobs failed",
                    manager.root,
                    worker.id,
                    _where(worker),
                    (now - worker.last_seen) / 1000,
                    failed,
                )
        return deadline
