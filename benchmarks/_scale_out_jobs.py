"""The jobs of benchmarks/scale_out.py: a mix of kinds, saved in batches through the servers,
and what each kind must end as.

Every saved document carries `{"n": UNIT, "kind": KIND}` in its data, so a job whose save's
outcome is unknown (the server died before answering) can still be found and judged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobcollection import Job, JobCollection
from jobcollection.errors import ConnectionClosed, JobCollectionError

RETRIES = 5  # failures a job survives (its fail-once run, runs lost with a killed server)
RETRY_WAIT_MS = 100
REPEATS = 2
REPEAT_WAIT_MS = 50
DELAY_MS = 3_600_000  # jobs to cancel wait this long first: only the cancel moves them
BATCH = 50  # documents per save call

# n % 20 -> the unit's kind; a unit is one document, or two (antecedent + dependent)
_KINDS = (
    *(["plain"] * 13),
    *(["fail_once"] * 3),
    "repeat",  # completes three times: itself and REPEATS copies
    "pair",  # an antecedent, and a job depending on it: both complete
    "cancel",  # delayed, then cancelled: cancelled
    "chain",  # a delayed antecedent and its dependent; cancelling the first cancels both
)
FIRST = {"pair": "pair_antecedent", "chain": "chain_antecedent"}
SECOND = {"pair": "pair_dependent", "chain": "chain_dependent"}
CANCELLED_KINDS = frozenset({"cancel", "chain_antecedent", "chain_dependent"})


def kind_of(n: int) -> str:
    return _KINDS[n % len(_KINDS)]


def documents_of(kind: str) -> int:
    return 2 if kind in SECOND else 1


@dataclass
class Submitted:
    """What the submitter knows: acknowledged ids, units whose save outcome is unknown, and
    calls refused outright (nothing saved)."""

    acknowledged: set[str] = field(default_factory=set)
    unknown_units: set[int] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    documents: int = 0  # documents acknowledged
    cancel_retries: int = 0
    started: float = 0.0
    finished: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def _job(jc: JobCollection, n: int, kind: str) -> Job:
    data: dict[str, Any] = {"n": n, "kind": kind}
    if kind == "fail_once":
        data["failOnce"] = True
    job = Job(jc, "scale", data).retry(RETRIES, wait=RETRY_WAIT_MS)
    if kind == "repeat":
        job.repeat(REPEATS, wait=REPEAT_WAIT_MS)
    if kind in ("cancel", "chain_antecedent"):
        job.delay(DELAY_MS)
    return job


class Submitter:
    """Saves `total` documents in batches through the collections (one per server, in turn),
    keeping at most `backlog` saved-but-not-yet-run documents ahead of the workers (`ran()`),
    so that saves go on during the whole run."""

    def __init__(
        self, collections: list[JobCollection], total: int, backlog: int, ran: Callable[[], int]
    ) -> None:
        self.collections = collections
        self.total = total
        self.backlog = backlog
        self.ran = ran
        self.out = Submitted()
        self.saving: JobCollection | None = None  # the collection a save call is in flight on
        self.thread = threading.Thread(target=self._run, name="scale-out-submit", daemon=True)

    def start(self) -> None:
        self.out.started = time.monotonic()
        self.thread.start()

    def _run(self) -> None:
        try:
            self._submit()
        except BaseException as error:
            self.out.error = error
        finally:
            self.out.finished = time.monotonic()
            self.out.done.set()

    def _submit(self) -> None:
        n = planned = turn = 0
        while planned < self.total:
            while self.out.documents - self.ran() > self.backlog:
                time.sleep(0.02)
            units: list[tuple[int, str]] = []
            size = 0
            while size < BATCH and planned < self.total:
                kind = kind_of(n)
                units.append((n, kind))
                size += documents_of(kind)
                planned += documents_of(kind)
                n += 1
            self._batch(self.collections[turn % len(self.collections)], units)
            turn += 1

    def _save(self, jc: JobCollection, jobs: list[Job], units: list[int]) -> bool:
        """One save call; False when nothing is known to be saved."""
        self.saving = jc
        try:
            ids = jc.save_jobs(jobs)
        except ConnectionClosed:  # the server died with the call: saved or not, unknown
            self.out.unknown_units.update(units)
            return False
        except JobCollectionError as error:
            self.out.refused.append(f"{type(error).__name__}: {error}")
            return False
        finally:
            self.saving = None
        for job_id in ids:
            assert job_id is not None
            self.out.acknowledged.add(job_id)
        self.out.documents += len(ids)
        return True

    def _batch(self, jc: JobCollection, units: list[tuple[int, str]]) -> None:
        firsts = [_job(jc, n, FIRST.get(kind, kind)) for n, kind in units]
        if not self._save(jc, firsts, [n for n, _ in units]):
            return
        dependents: list[Job] = []
        for (n, kind), first in zip(units, firsts, strict=True):
            if kind in SECOND:
                dependents.append(_job(jc, n, SECOND[kind]).depends([first]))
        if dependents:
            self._save(jc, dependents, [job.data["n"] for job in dependents])
        to_cancel = [str(j.id) for j in firsts if j.data["kind"] in CANCELLED_KINDS]
        if to_cancel:
            self.cancel(jc, to_cancel)

    def cancel(self, jc: JobCollection, ids: list[str]) -> None:
        """Cancel (with dependents); sent again when the outcome is unknown (a cancel can be
        repeated harmlessly)."""
        for attempt in range(10):
            try:
                jc.cancel_jobs(ids)
                return
            except ConnectionClosed:
                self.out.cancel_retries += 1
                time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"could not cancel {len(ids)} jobs in 10 attempts")
