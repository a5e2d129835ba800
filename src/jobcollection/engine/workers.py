"""Who a call is made for: the worker whose claims and adoptions it records.

A local queue registers itself before it claims (its `WorkerRef` has no `enroll`). A server
registers a DDP connection lazily: its ref carries `enroll`, the record to store in the same
transaction as its first claim (or as its first adoption of a lost connection's job), and
`enrolled` tells the server afterwards that the connection is now a worker to keep alive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.workers import WorkerRecord


@dataclass(slots=True)
class WorkerRef:
    """The worker a call is made for (see the module doc)."""

    id: str
    enroll: Callable[[int], WorkerRecord] | None = None  # its record at a time, if unregistered
    enrolled: bool = False  # set once the call that stored the record committed
