"""What one operation sees: its transaction, the time, and how to make ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..storage.port import Transaction


@dataclass(slots=True)
class Op:
    """One engine operation in progress, inside one transaction."""

    tx: Transaction
    now: int
    new_id: Callable[[], str]
    wakeups: list[int] = field(default_factory=list)

    def wake_at(self, when: int) -> None:
        """Ask the scheduler to look again at `when` (a job becomes due or expires)."""
        self.wakeups.append(when)
