"""The blocking and asyncio APIs stay twins, and the package's public names are pinned."""

from __future__ import annotations

import inspect

import pytest

import jobcollection
from jobcollection import AsyncJob, AsyncJobCollection, AsyncJobQueue, Job, JobCollection, JobQueue


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def _shape(fn: object) -> list[tuple[str, object, object]]:
    """Parameter names, kinds and defaults (annotations differ: Job vs AsyncJob)."""
    signature = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


PAIRS = [(Job, AsyncJob), (JobCollection, AsyncJobCollection)]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_sync_and_async_twins_have_the_same_methods(sync_cls: type, async_cls: type) -> None:
    sync_methods, async_methods = _public(sync_cls), _public(async_cls)
    assert set(sync_methods) == set(async_methods)
    for name, method in sync_methods.items():
        twin = async_methods[name]
        assert _shape(method) == _shape(twin), name


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_async_twin_methods_are_coroutines_exactly_where_they_do_io(
    sync_cls: type, async_cls: type
) -> None:
    for name, method in _public(async_cls).items():
        sync_method = getattr(sync_cls, name)
        assert not inspect.iscoroutinefunction(sync_method), name
        if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
            continue  # a coroutine, or an async iterator (`watch`)
        # Plain methods must be the very same shared implementation (builders, accessors).
        assert (
            method is sync_method
            or name in {"job", "now_ms", "events", "watch_ready"}
            or (getattr(method, "__qualname__", "").startswith(("JobCore.", "CollectionBase.")))
        ), name


def test_queue_twins_share_control_methods() -> None:
    for name in ("pause", "resume", "trigger", "shutdown", "length", "running", "idle", "full"):
        assert _shape(getattr(JobQueue, name)) == _shape(getattr(AsyncJobQueue, name)), name


def test_public_names_are_pinned() -> None:
    assert sorted(jobcollection.__all__) == sorted(
        [
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
    )
    for name in jobcollection.__all__:
        assert hasattr(jobcollection, name), name
