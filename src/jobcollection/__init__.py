"""jobcollection: a persistent, observable job queue for Python.

A re-implementation of Meteor's job-collection: jobs with priorities, retries with backoff,
repeats on a wait, a cron expression or a later.js schedule, dependencies, progress and logs,
stored in SQLite and worked on by in-process, process-pool or remote workers (see docs/jobs.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api.collection import AsyncJobCollection, JobCollection
from .api.job import AsyncJob, Job
from .api.queue import AsyncJobQueue, JobQueue
from .core.constants import (
    FOREVER,
    FOREVER_DATE,
    JOB_LOG_LEVELS,
    JOB_PRIORITIES,
    JOB_RETRY_BACKOFF_METHODS,
    JOB_STATUS_CANCELLABLE,
    JOB_STATUS_PAUSABLE,
    JOB_STATUS_REMOVABLE,
    JOB_STATUS_RESTARTABLE,
    JOB_STATUSES,
    Status,
)
from .core.cron import parse_cron
from .core.ejson import Date
from .core.schedule import next_occurrence
from .engine.clock import ManualClock, SystemClock
from .errors import (
    ConflictError,
    InvalidTransition,
    JobCollectionError,
    JobNotFound,
    JobValidationError,
    PermissionDenied,
    SchemaTooNew,
    StorageCorrupt,
    StorageError,
    StorageUnavailable,
    ValidationError,
)

if TYPE_CHECKING:
    from .client.remote import connect, connect_async

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`connect`/`connect_async` load the network client on first use (a worker that never
    talks to a server does not pay for websockets in memory)."""
    if name in ("connect", "connect_async"):
        from .client import remote

        return getattr(remote, name)
    raise AttributeError(f"module 'jobcollection' has no attribute {name!r}")


__all__ = [
    "FOREVER",
    "FOREVER_DATE",
    "JOB_LOG_LEVELS",
    "JOB_PRIORITIES",
    "JOB_RETRY_BACKOFF_METHODS",
    "JOB_STATUSES",
    "JOB_STATUS_CANCELLABLE",
    "JOB_STATUS_PAUSABLE",
    "JOB_STATUS_REMOVABLE",
    "JOB_STATUS_RESTARTABLE",
    "AsyncJob",
    "AsyncJobCollection",
    "AsyncJobQueue",
    "ConflictError",
    "Date",
    "InvalidTransition",
    "Job",
    "JobCollection",
    "JobCollectionError",
    "JobNotFound",
    "JobQueue",
    "JobValidationError",
    "ManualClock",
    "PermissionDenied",
    "SchemaTooNew",
    "Status",
    "StorageCorrupt",
    "StorageError",
    "StorageUnavailable",
    "SystemClock",
    "ValidationError",
    "__version__",
    "connect",
    "connect_async",
    "next_occurrence",
    "parse_cron",
]
