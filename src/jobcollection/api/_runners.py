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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ChildSpec:
    """How a pool process reaches its parent's collection (picklable): the database at `url`,
    or, if `remote`, the server at `url`, logged in with the parent's resume `token` (None:
    not logged in). The token is left out of equality, so a process keeps its connection."""

    url: str
    root: str
    remote: bool = False
    token: str | None = field(default=None, compare=False, repr=False)


def child_spec(source: Any) -> ChildSpec:
    """`source`'s manager's own `child_spec()` if it has one (a remote collection), else its
    database URL."""
    own = getattr(getattr(source, "manager", None), "child_spec", None)
    if callable(own):
        spec = own()
        assert isinstance(spec, ChildSpec)
        return spec
    return ChildSpec(source.db_url, source.root)


@functools.cache
def _child_collection(spec: ChildSpec) -> Any:
    """One collection per pool process, opened (or connected) on first use and kept for the
    process' life."""
    if spec.remote:
        from ..client.remote import connect  # the server runs its own job server

        return connect(spec.url, spec.root, **({} if spec.token is None else {"token": spec.token}))
    from .collection import JobCollection

    jc = JobCollection(spec.root, spec.url)
    jc.start_job_server()  # so job.progress() is accepted in the child
    return jc


def run_in_child(fn: WorkerFn, spec: ChildSpec, docs: list[dict[str, Any]], batch: bool) -> None:
    """Entry point inside a pool process: rebuild the jobs on the child's own connection."""
    jc = _child_collection(spec)
    run_sync(fn, [Job(jc, doc) for doc in docs], batch)
