"""The claims made through this process: whose running jobs a job server's shutdown fails, and
claims whose transaction may have committed though its caller got an error.

Several processes (servers, `jobcollection worker`s) may serve one collection in one database.
A shutdown must fail only the jobs run through the process that shuts down, never those other
processes' workers are running. Those are:

- jobs claimed for a worker of this process (`jobs.worker_id`): a worker it hosts now (a local
  queue, a server's connection), or one it served that no other process keeps alive since (a
  connection that closed, a queue that stopped with a job still running): its record is gone,
  disconnected or lost, not `active` in another process;
- jobs claimed here with no worker at all (`get_work()` called directly, the HTTP API): the
  database does not say who claimed them, so the process remembers (job id, run id) until the
  run ends.

What is remembered is pruned by the safety-net sweep: workers that no longer run a job here,
claims whose run ended.

A claim whose transaction raised (e.g. the database went away during its COMMIT) may still
have committed: its jobs would then be running, claimed by nobody who knows it, for good (a
worker that lives keeps them from being rescued). Their run ids are kept, and the next sweep
gives such jobs back: ready again, the claim's retry returned, as if it never happened (it
never ran).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable

from ..core import rules
from ..core.constants import Status
from ..storage.port import Guard, JobDoc
from ._context import Op

# (worker id or None, job id, run id of a claim; None: an adoption, see `_work._adopt`)
Claim = tuple[str | None, str, str | None]
_RUNNING = (Status.RUNNING,)


class Claims:
    """What this process claimed (see the module doc); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: set[str] = set()
        self._anonymous: dict[str, str] = {}  # job id -> run id
        self._unknown: set[str] = set()  # run ids of claims whose commit may have happened

    def record(self, claims: Iterable[Claim]) -> None:
        """Claims (or adoptions) that committed."""
        with self._lock:
            for worker_id, job_id, run_id in claims:
                if worker_id is not None:
                    self._workers.add(worker_id)
                elif run_id is not None:
                    self._anonymous[job_id] = run_id

    def unknown(self, claims: Iterable[Claim]) -> bool:
        """Claims whose transaction raised: committed or not, nobody knows; whether there
        were any (adoptions are not claims: their jobs run on)."""
        run_ids = {run_id for _, _, run_id in claims if run_id is not None}
        with self._lock:
            self._unknown.update(run_ids)
        return bool(run_ids)

    @property
    def has_unknown(self) -> bool:
        return bool(self._unknown)

    def running_here(self, op: Op, hosted: Collection[str]) -> list[JobDoc]:
        """The running jobs claimed through this process (see the module doc)."""
        with self._lock:
            workers = self._workers | set(hosted)
            anonymous = dict(self._anonymous)
        found: dict[str, JobDoc] = {}
        if workers:
            elsewhere = {
                w.id for w in op.tx.workers() if w.status == "active" and w.id not in hosted
            }
            mine = [w for w in workers if w not in elsewhere]
            found.update((doc["_id"], doc) for _, doc in op.tx.running_of(mine))
        if anonymous:
            for doc in op.tx.find(ids=list(anonymous), statuses=_RUNNING):
                if doc["runId"] == anonymous[doc["_id"]]:
                    found[doc["_id"]] = doc
        return list(found.values())

    def prune(self, op: Op, hosted: Collection[str]) -> None:
        """Forget workers that run nothing here any more and claims whose run ended."""
        with self._lock:
            workers = [w for w in self._workers if w not in hosted]
            anonymous = dict(self._anonymous)
        busy = {worker_id for worker_id, _ in op.tx.running_of(workers)} if workers else set()
        ended: list[str] = []
        if anonymous:
            live = {
                doc["_id"]
                for doc in op.tx.find(ids=list(anonymous), statuses=_RUNNING)
                if doc["runId"] == anonymous[doc["_id"]]
            }
            ended = [job_id for job_id in anonymous if job_id not in live]
        with self._lock:
            self._workers.difference_update(w for w in workers if w not in busy)
            for job_id in ended:
                if self._anonymous.get(job_id) == anonymous[job_id]:
                    del self._anonymous[job_id]

    def give_back_unknown(self, op: Op) -> tuple[int, set[str]]:
        """Jobs running under a claim whose caller got an error go back to ready (see the
        module doc): how many, and the run ids to `forget` once the transaction committed
        (if it fails, they are kept for the next sweep)."""
        with self._lock:
            run_ids = set(self._unknown)
        if not run_ids:
            return 0, run_ids
        # A claim's jobs share its run id; they are found among the running jobs.
        docs = [doc for doc in op.tx.find(statuses=_RUNNING) if doc["runId"] in run_ids]
        return sum(_give_back(op, doc) for doc in docs), run_ids

    def forget(self, run_ids: Collection[str]) -> None:
        with self._lock:
            self._unknown.difference_update(run_ids)


def _give_back(op: Op, doc: JobDoc) -> int:
    """Undo a claim: the job is ready again with the retry the claim took."""
    fields = {
        "status": Status.READY.value,
        "runId": None,
        "updated": op.now,
        "retries": doc["retries"] + 1,
        "retried": max(doc["retried"] - 1, 0),
    }
    message = "Claim given back: the call that claimed it failed, so it never ran"
    log = [rules.entry(op.now, message, "warning", doc["runId"])]
    guard = Guard(statuses=_RUNNING, run_id=doc["runId"])
    return len(op.tx.update([doc["_id"]], fields, guard, log))
