"""Documents and constants shared by the storage contract's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jobcollection.core.constants import FOREVER
from jobcollection.storage.port import Storage

OpenStorage = Callable[[], Storage]  # opens another Storage on the test's database


def job(
    job_id: str,
    job_type: str = "t",
    status: str = "ready",
    *,
    priority: int = 0,
    after: int = 0,
    retry_until: int = FOREVER,
    depends: list[str] | None = None,
    run_id: str | None = None,
    data: Any = None,
    created: int = 1,
) -> dict[str, Any]:
    """A job document of the usual shape, as the engine stores it."""
    return {
        "_id": job_id,
        "type": job_type,
        "status": status,
        "priority": priority,
        "retryUntil": retry_until,
        "after": after,
        "updated": created,
        "created": created,
        "retries": 3,
        "retried": 0,
        "repeatRetries": 3,
        "retryWait": 300000,
        "retryBackoff": "constant",
        "repeats": 0,
        "repeated": 0,
        "repeatUntil": FOREVER,
        "runId": run_id,
        "repeatWait": 300000,
        "progress": {"completed": 0, "total": 1, "percent": 0},
        "depends": depends or [],
        "resolved": [],
        "data": {} if data is None else data,
        "log": [{"time": created, "runId": None, "level": "info", "message": "Constructed"}],
    }


RUNNING = {"status": "running", "runId": "run1", "updated": 5}
CLAIMED = {"time": 5, "runId": "run1", "level": "info", "message": "Job Running"}


# A test about something only a client/server database has (a connection to lose, writers that
# commit concurrently): it runs on PostgreSQL alone instead of skipping on SQLite.
POSTGRES_ONLY = pytest.mark.postgres_only(reason="a client/server database's connections")
