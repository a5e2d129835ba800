"""jobcollection: a persistent, observable job queue for Python.

A re-implementation of Meteor's job-collection: jobs with priorities, retries with backoff,
repeats on a wait, a cron expression or a later.js schedule, dependencies, progress and logs,
stored in SQLite and worked on by in-process, process-pool or remote workers (see docs/jobs.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api.collection import AsyncJobCollection, JobCollection
    from .api.job import AsyncJob, Job
    from .api.queue import AsyncJobQueue, JobQueue
    from .client.remote import connect, connect_async
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
    from .core.workers import WorkerRecord
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

__version__ = "0.1.0"

# Where each public name lives. They are imported on first use, so that a program (or a CLI
# command such as `ls`) that needs only part of the package does not pay for the rest: the
# Python API's asyncio machinery, the network client's websockets.
_HOMES: dict[str, str] = {
    **dict.fromkeys(("AsyncJobCollection", "JobCollection"), ".api.collection"),
    **dict.fromkeys(("AsyncJob", "Job"), ".api.job"),
    **dict.fromkeys(("AsyncJobQueue", "JobQueue"), ".api.queue"),
    **dict.fromkeys(("connect", "connect_async"), ".client.remote"),
    **dict.fromkeys(
        (
            "FOREVER",
            "FOREVER_DATE",
            "JOB_LOG_LEVELS",
            "JOB_PRIORITIES",
            "JOB_RETRY_BACKOFF_METHODS",
            "JOB_STATUS_CANCELLABLE",
            "JOB_STATUS_PAUSABLE",
            "JOB_STATUS_REMOVABLE",
            "JOB_STATUS_RESTARTABLE",
            "JOB_STATUSES",
            "Status",
        ),
        ".core.constants",
    ),
    "parse_cron": ".core.cron",
    "Date": ".core.ejson",
    "next_occurrence": ".core.schedule",
    "WorkerRecord": ".core.workers",
    **dict.fromkeys(("ManualClock", "SystemClock"), ".engine.clock"),
    **dict.fromkeys(
        (
            "ConflictError",
            "InvalidTransition",
            "JobCollectionError",
            "JobNotFound",
            "JobValidationError",
            "PermissionDenied",
            "SchemaTooNew",
            "StorageCorrupt",
            "StorageError",
            "StorageUnavailable",
            "ValidationError",
        ),
        ".errors",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'jobcollection' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


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
    "WorkerRecord",
    "__version__",
    "connect",
    "connect_async",
    "next_occurrence",
    "parse_cron",
]
