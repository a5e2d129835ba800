"""What one operation sees: its transaction, the time, and how to make ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..storage.port import Transaction
from .workers import WorkerRef


@dataclass(slots=True)
class Op:
    """One engine operation in progress, inside one transaction."""

    tx: Transaction
    now: int
    new_id: Callable[[], str]
    wakeups: list[int] = field(default_factory=list)
    worker: WorkerRef | None = None  # whom claims are recorded for (None: no worker)
    enrolled: list[WorkerRef] = field(default_factory=list)  # registered by this op
    # (worker id or None, job id, run id; None: an adoption) of every claim it made (_claims)
    claimed: list[tuple[str | None, str, str | None]] = field(default_factory=list)
    # Whether its writes may commit in parts (a lone operation, whose parts stand on their
    # own): then a completion or a claim may use the storage's one-statement step, which is a
    # transaction of its own (`Transaction.complete_and_claim`). Not inside `call_many`, whose
    # calls share one transaction.
    in_steps: bool = True

    def may_step(self) -> bool:
        """Whether a completion or claim may go by `Transaction.complete_and_claim` now."""
        return self.in_steps and self.tx.completes_and_claims_at_once

    def wake_at(self, when: int) -> None:
        """Ask the scheduler to look again at `when` (a job becomes due or expires)."""
        self.wakeups.append(when)

    def enroll_worker(self) -> None:
        """Store the record of the worker this op is for, if it has none yet (its first claim
        or adoption; see `workers.WorkerRef`)."""
        worker = self.worker
        if worker is None or worker.enroll is None or worker.enrolled:
            return
        if not any(ref is worker for ref in self.enrolled):
            self.tx.put_worker(worker.enroll(self.now))
            self.enrolled.append(worker)  # marked enrolled once the transaction commits
