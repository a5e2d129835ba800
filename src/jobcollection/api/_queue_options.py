"""JobQueue settings, validated before anything starts (docs/jobs.md, "Workers")."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ..core.constants import DEFAULT_POLL_INTERVAL_MS
from ..core.params import to_duration_ms
from ..errors import JobValidationError
from . import _collection_flows as flows
from ._runners import WorkerFn


def _int_option(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise JobValidationError(name, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _report(message: object) -> None:
    print(f"jobcollection: {message}", file=sys.stderr)  # noqa: T201 - the documented default


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """Validated JobQueue settings (errors raise at once, nothing starts)."""

    types: list[str]
    worker: WorkerFn
    concurrency: int = 1
    payload: int = 1
    prefetch: int = 0
    poll_interval: int | None = DEFAULT_POLL_INTERVAL_MS  # ms; None or 0 disables polling
    work_timeout: int | None = None
    callback_strict: bool = False
    error_callback: Callable[[object], None] = field(default=_report)
    processes: int | None = None

    @classmethod
    def build(
        cls,
        types: str | Sequence[str],
        worker: WorkerFn,
        *,
        concurrency: int | None = None,
        payload: int = 1,
        prefetch: int = 0,
        poll_interval: int | timedelta | None = DEFAULT_POLL_INTERVAL_MS,
        work_timeout: int | timedelta | None = None,
        callback_strict: bool = False,
        error_callback: Callable[[object], None] | None = None,
        processes: int | None = None,
    ) -> QueueOptions:
        """Validated settings. `concurrency` defaults to `processes` (a pool of N processes
        runs N jobs at once), else 1."""
        if not callable(worker):
            raise JobValidationError("worker", f"must be callable, got {worker!r}")
        if error_callback is not None and not callable(error_callback):
            raise JobValidationError("error_callback", "must be callable")
        if processes is not None:
            _int_option("processes", processes, 1)
            if inspect.iscoroutinefunction(worker):
                raise JobValidationError("processes", "a coroutine worker cannot run in processes")
        if isinstance(poll_interval, timedelta):
            poll_interval = to_duration_ms(poll_interval, "poll_interval")
        if isinstance(work_timeout, timedelta):
            work_timeout = to_duration_ms(work_timeout, "work_timeout")
        poll = None if not poll_interval else _int_option("poll_interval", poll_interval, 0)
        return cls(
            types=flows.type_list(types),
            worker=worker,
            concurrency=_int_option(
                "concurrency", (processes or 1) if concurrency is None else concurrency, 0
            ),
            payload=_int_option("payload", payload, 1),
            prefetch=_int_option("prefetch", prefetch, 0),
            poll_interval=poll,
            work_timeout=None
            if work_timeout is None
            else _int_option("work_timeout", work_timeout, 1),
            callback_strict=bool(callback_strict),
            error_callback=error_callback or _report,
            processes=processes,
        )
