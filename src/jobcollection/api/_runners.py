"""How a worker function is run: coroutine on the loop, plain function in a thread, or in a
process pool. In every case a worker may call `job.done()`/`job.fail()` itself; otherwise its
return value completes each job of its batch and an exception fails them (type, message and
traceback recorded).
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from .job import AsyncJob, Job

log = logging.getLogger(__name__)

WorkerFn = Callable[[Any], Any]


def call_worker(fn: WorkerFn, jobs: Sequence[Job], batch: bool) -> tuple[bool, Any]:
    """Run a blocking worker: (True, its return value) or (False, the exception it raised)."""
    try:
        return True, fn(list(jobs) if batch else jobs[0])
    except Exception as error:
        return False, error


def settle(jobs: Sequence[Job], ok: bool, outcome: Any) -> None:
    """Finish what the worker left unfinished: its return value completes, its error fails."""
    pending = [job for job in jobs if not job.finished]
    if not pending:
        return
    if not ok:
        for job in pending:
            job.fail(outcome)
    elif len(pending) > 1:  # one transaction for the whole batch
        pending[0].collection.complete_jobs(pending, outcome)
    else:
        pending[0].done(outcome)


def run_sync(fn: WorkerFn, jobs: Sequence[Job], batch: bool) -> None:
    """Run a blocking worker on its job(s) and settle whatever it left unsettled."""
    settle(jobs, *call_worker(fn, jobs, batch))


async def run_async(fn: WorkerFn, jobs: Sequence[AsyncJob], batch: bool) -> None:
    """The coroutine-worker twin of `run_sync`."""
    try:
        result = await fn(list(jobs) if batch else jobs[0])
    except Exception as error:
        for job in jobs:
            if not job.finished:
                await job.fail(error)
        return
    pending = [job for job in jobs if not job.finished]
    if len(pending) > 1:
        await pending[0].collection.complete_jobs(pending, result)
    elif pending:
        await pending[0].done(result)


def ignore_interrupts() -> None:
    """Pool processes leave Ctrl-C to their parent, which shuts the queue down in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@functools.cache
def _child_collection(db_url: str, root: str) -> Any:
    """One collection per pool process, opened on first use and kept for the process' life."""
    from .collection import JobCollection

    jc = JobCollection(root, db_url)
    jc.start_job_server()  # so job.progress() is accepted in the child
    return jc


def run_in_child(
    fn: WorkerFn, db_url: str, root: str, docs: list[dict[str, Any]], batch: bool
) -> None:
    """Entry point inside a pool process: rebuild the jobs on the child's own connection."""
    jc = _child_collection(db_url, root)
    run_sync(fn, [Job(jc, doc) for doc in docs], batch)
