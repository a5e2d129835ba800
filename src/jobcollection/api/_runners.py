"""How a worker function is run: coroutine on the loop, plain function in a thread, or in a
process pool. In every case a worker may call `job.done()`/`job.fail()` itself; otherwise its
return value completes each job of its batch and an exception fails them (type, message and
traceback recorded).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError, transient
from .backend import ChildSpec
from .job import AsyncJob, Job

if TYPE_CHECKING:
    from .collection import JobCollection

log = logging.getLogger(__name__)

WorkerFn = Callable[[Any], Any]


def call_worker(fn: WorkerFn, jobs: Sequence[Job], batch: bool) -> tuple[bool, Any]:
    """Run a blocking worker: (True, its return value) or (False, the exception it raised).

    Any exception: a job calling `sys.exit()` or raising `KeyboardInterrupt` fails like one
    raising `ValueError`; nothing a job does may take the worker down with it."""
    try:
        return True, fn(list(jobs) if batch else jobs[0])
    except BaseException as error:
        return False, error


# An outcome whose call failed for another reason than bad input (a lost connection: "outcome
# unknown", a locked database) is sent once more: a second completion of one run cannot
# happen (the run id guards it), and a job left running by a living worker would stay so.
ATTEMPTS = 2
# While the database is unavailable for a while (down, restarting, locked: a transient
# `StorageUnavailable` here, a 503 from a server), an outcome is sent again and again, further
# and further apart, for up to OUTAGE_S: the worker's slot waits for the database rather than
# leave its job running for good.
OUTAGE_S = 60.0
FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 2.0


def _pauses() -> Iterator[float]:
    """The waits between outcomes sent again during an outage (at most OUTAGE_S in all)."""
    deadline = time.monotonic() + OUTAGE_S
    pause = FIRST_PAUSE_S
    while time.monotonic() + pause <= deadline:
        yield pause
        pause = min(pause * 2, MAX_PAUSE_S)


def _again(error: Exception, sent: int, pauses: Iterator[float]) -> float | None:
    """How long to wait before sending a call that failed (`sent` times) again; None: give up."""
    if transient(error):
        return next(pauses, None)
    return 0.0 if sent < ATTEMPTS else None


def _attempt(call: Callable[[], object], jobs: Sequence[Job], notes: list[str]) -> Exception | None:
    """Call `call` (a completion or failure of `jobs`), again as `_again` says; the last
    error. The first call sent again is noted in `notes` (the queue reports it)."""
    pauses = _pauses()
    sent = 0
    while True:
        for job in jobs:
            job.finished = False  # a done() or fail() that raised marked it finished: it is not
        try:
            call()
            return None
        except ValidationError as refused:  # the same input is refused again
            return refused
        except Exception as failed:
            error = failed
        sent += 1
        pause = _again(error, sent, pauses)
        if pause is None:
            return error
        if sent == 1:
            notes.append(f"job {_ids(jobs)}: {error}; sent again")
        time.sleep(pause)


def _ids(jobs: Sequence[Job] | Sequence[AsyncJob]) -> str:
    return ", ".join(str(job.id) for job in jobs)


def resend(jobs: Sequence[Job]) -> list[str]:
    """Send again the outcomes the worker sent itself (`job.done()`, `job.fail()`) that failed
    because the database was unavailable (`JobCore.unsent`): what it meant, not what it
    returned or raised after. Returns the lines to report."""
    problems: list[str] = []
    for job in jobs:
        call, job.unsent = job.unsent, None
        if call is not None:
            error = _attempt(call, [job], problems)
            job.finished = True  # settled: sent, or reported below
            if error is not None:
                problems.append(unrecorded(job, None, error))
    return problems


def settle(jobs: Sequence[Job], ok: bool, outcome: Any) -> list[str]:
    """Finish what the worker left unfinished: its return value completes, its error fails.

    A completion the collection refuses (a result that cannot be stored: a `set`, a
    `datetime`...) fails the jobs instead, with that error, so that they are retried per their
    policy. Returns the lines to report, naming the jobs: outcomes sent again, and outcomes
    that could not be recorded at all.
    """
    problems = resend(jobs)
    pending = [job for job in jobs if not job.finished]
    if not pending:
        return problems
    if ok:
        complete: Callable[[], object]
        if len(pending) > 1:  # one transaction for the whole batch
            complete = functools.partial(pending[0].collection.complete_jobs, pending, outcome)
        else:
            complete = functools.partial(pending[0].done, outcome)
        error = _attempt(complete, pending, problems)
        if error is None:
            return problems
        outcome = error
    for job in pending:
        error = _attempt(functools.partial(job.fail, outcome), [job], problems)
        if error is not None:
            problems.append(unrecorded(job, outcome, error))
    return problems


async def _attempt_async(
    call: Callable[[], Awaitable[object]], jobs: Sequence[AsyncJob], notes: list[str]
) -> Exception | None:
    """The coroutine twin of `_attempt`."""
    pauses = _pauses()
    sent = 0
    while True:
        for job in jobs:
            job.finished = False
        try:
            await call()
            return None
        except ValidationError as refused:
            return refused
        except Exception as failed:
            error = failed
        sent += 1
        pause = _again(error, sent, pauses)
        if pause is None:
            return error
        if sent == 1:
            notes.append(f"job {_ids(jobs)}: {error}; sent again")
        await asyncio.sleep(pause)


async def resend_async(jobs: Sequence[AsyncJob]) -> list[str]:
    """The coroutine twin of `resend`."""
    problems: list[str] = []
    for job in jobs:
        call, job.unsent = job.unsent, None
        if call is not None:
            error = await _attempt_async(call, [job], problems)
            job.finished = True
            if error is not None:
                problems.append(unrecorded(job, None, error))
    return problems


async def run_async(fn: WorkerFn, jobs: Sequence[AsyncJob], batch: bool) -> list[str]:
    """The coroutine-worker twin of `run_sync`: settles its jobs, returns what to report."""
    try:
        ok, outcome = True, await fn(list(jobs) if batch else jobs[0])
    except asyncio.CancelledError as cancelled:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # our task is cancelled: let it end
            raise
        ok, outcome = False, cancelled  # the job's own cancellation of something it awaited
    except BaseException as raised:  # see call_worker
        ok, outcome = False, raised
    problems = await resend_async(jobs)
    pending = [job for job in jobs if not job.finished]
    if not pending:
        return problems
    if ok:
        complete: Callable[[], Awaitable[object]]
        if len(pending) > 1:
            complete = functools.partial(pending[0].collection.complete_jobs, pending, outcome)
        else:
            complete = functools.partial(pending[0].done, outcome)
        error = await _attempt_async(complete, pending, problems)
        if error is None:
            return problems
        outcome = error
    for job in pending:
        error = await _attempt_async(functools.partial(job.fail, outcome), [job], problems)
        if error is not None:
            problems.append(unrecorded(job, outcome, error))
    return problems


def unrecorded(job: Job | AsyncJob, outcome: object, error: BaseException) -> str:
    """The line reporting a job whose outcome could not be stored."""
    what = "failure" if isinstance(outcome, BaseException) else "result"
    return f"job {job.id} ({job.type}): could not record its {what}: {error}"


def run_sync(fn: WorkerFn, jobs: Sequence[Job], batch: bool) -> list[str]:
    """Run a blocking worker on its job(s) and settle whatever it left unsettled."""
    return settle(jobs, *call_worker(fn, jobs, batch))


def ignore_interrupts() -> None:
    """Pool processes leave Ctrl-C to their parent, which shuts the queue down in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@functools.cache
def _child_collection(spec: ChildSpec) -> JobCollection:
    """One collection per pool process, opened (or connected) on first use and kept for the
    process' life."""
    from .collection import JobCollection

    return JobCollection(_backend=spec.open())


def run_in_child(
    fn: WorkerFn, spec: ChildSpec, docs: list[dict[str, Any]], batch: bool
) -> tuple[str | None, list[str]]:
    """Entry point inside a pool process: rebuild the jobs on the child's own connection, run
    and settle them there. Returns (why the jobs could not be run at all, or None; the
    problems to report). Only strings go back to the parent: an exception raised here would
    have to cross the process boundary, and one that does not unpickle breaks the pool."""
    try:
        jc = _child_collection(spec)
    except BaseException as error:
        return f"the pool process could not reach the collection: {describe(error)}", []
    try:
        return None, run_sync(fn, [Job(jc, doc) for doc in docs], batch)
    except BaseException as error:
        ids = ", ".join(str(doc.get("_id")) for doc in docs)
        return None, [f"job {ids}: the pool process failed to settle it: {describe(error)}"]


def describe(error: BaseException) -> str:
    """`Type: message` of an exception, for a report line."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
