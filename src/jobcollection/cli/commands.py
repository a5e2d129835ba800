"""The one-shot commands: submit, ls, show, the control commands and stats.

Every command validates all of its input before it opens the database (or connects to the
`--server`), and the read-only commands never create a database file that is not there yet.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..api._job_core import JobCore
from ..api.collection import JobCollection
from ..api.job import Job
from ..core.constants import (
    FOREVER_DATE,
    JOB_STATUS_CANCELLABLE,
    JOB_STATUS_PAUSABLE,
    JOB_STATUS_REMOVABLE,
    JOB_STATUS_RESTARTABLE,
)
from ..core.params import validate_job_doc
from ..core.schedule import is_schedule, next_occurrence
from ..errors import JobValidationError, ValidationError
from . import render
from .errors import EXIT_OK, CommandFailed, UsageError
from .reads import where
from .target import nothing_stored, open_collection

# -- submit ---------------------------------------------------------------------------------


class _Offline:
    """Enough of a collection to build (not save) a job before the database is opened."""

    def __init__(self, root: str) -> None:
        self.root = root

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@contextmanager
def _option(name: str, fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """Report a library validation error as a problem of option `name` (or of `fields[field]`)."""
    try:
        yield
    except JobValidationError as error:
        option = (fields or {}).get(error.field, name)
        raise UsageError(f"{option}: {error.problem}") from None
    except ValidationError as error:
        raise UsageError(f"{name}: {error}") from None


def build_job_doc(args: argparse.Namespace) -> dict[str, Any]:
    """The new job's document, fully validated, without touching the database."""
    offline = _Offline(args.collection)
    with _option("TYPE", {"data": "--data"}):
        job = JobCore(offline, args.type, args.data)
    if args.priority is not None:
        with _option("--priority"):
            job.priority(args.priority)
    if any(v is not None for v in (args.retries, args.retry_wait, args.backoff)):
        with _option("--retries", {"wait": "--retry-wait", "backoff": "--backoff"}):
            job.retry(args.retries, wait=args.retry_wait, backoff=args.backoff)
    if any(v is not None for v in (args.repeats, args.repeat_wait, args.cron)):
        with _option("--repeats", {"wait": "--repeat-wait", "cron": "--cron"}):
            job.repeat(args.repeats, wait=args.repeat_wait, cron=args.cron)
    if args.delay is not None:
        with _option("--delay"):
            job.delay(args.delay)
    if args.after is not None:
        with _option("--after"):
            job.after(args.after)
    with _option("job"):
        validate_job_doc(copy.deepcopy(job.doc))
    wait = job.doc["repeatWait"]
    if is_schedule(wait):
        start = max(job.doc["after"], offline.now_ms())
        if next_occurrence(wait, start) is None:
            raise UsageError(f"--cron: {args.cron!r} never occurs after {render.iso(start)}")
    return job.doc


def _antecedents(jc: JobCollection, ids: Sequence[str], args: argparse.Namespace) -> list[Job]:
    found = []
    for job_id in ids:
        job = jc.get_job(job_id)
        if job is None:
            raise UsageError(f"--depends: no job with id {job_id!r} in {where(args)}")
        if job.status in ("failed", "cancelled"):
            raise UsageError(
                f"--depends: job {job_id} is {job.status}, so the new job would be cancelled"
            )
        found.append(job)
    return found


def cmd_submit(args: argparse.Namespace) -> int:
    doc = build_job_doc(args)
    if args.depends and nothing_stored(args):
        raise UsageError(f"--depends: no job with id {args.depends[0]!r} (no database yet)")
    with open_collection(args, create=True) as jc:
        job = Job(jc, doc)
        if args.depends:
            job.depends(_antecedents(jc, args.depends, args))
        job_id = job.save()
    if job_id is None:
        raise CommandFailed("the job was not saved (the server refused it)")
    print(job_id)
    return EXIT_OK


# -- control commands -----------------------------------------------------------------------

ACTIONS: dict[str, Callable[[Job], object]] = {
    "cancel": lambda job: job.cancel(),
    "restart": lambda job: job.restart(),
    "pause": lambda job: job.pause(),
    "resume": lambda job: job.resume(),
    "ready": lambda job: job.ready(time=FOREVER_DATE),  # also before its `after`
    "remove": lambda job: job.remove(),
    "rerun": lambda job: job.rerun(wait=0),
}


def cmd_control(args: argparse.Namespace) -> int:
    ids: list[str] = list(dict.fromkeys(args.ids))
    action = ACTIONS[args.command]
    with open_collection(args) as jc:
        known = {job.id for job in jc.find({"_id": {"$in": ids}})}
        missing = [job_id for job_id in ids if job_id not in known]
        if missing:
            listed = ", ".join(missing)
            raise CommandFailed(f"no job with id {listed} in {where(args)}; nothing was changed")
        for job_id in ids:
            job = jc.get_job(job_id)
            outcome = action(job) if job is not None else False
            if isinstance(outcome, str):
                print(f"{job_id}: ok (new job {outcome})", flush=True)
            elif outcome:
                print(f"{job_id}: ok", flush=True)
            else:
                why = unchanged_reason(args.command, jc.get_job(job_id))
                print(f"{job_id}: unchanged ({why})", flush=True)
    return EXIT_OK


ACCEPTS: dict[str, tuple[str, ...]] = {
    "cancel": JOB_STATUS_CANCELLABLE,
    "restart": JOB_STATUS_RESTARTABLE,
    "pause": JOB_STATUS_PAUSABLE,
    "resume": ("paused",),
    "ready": ("waiting",),
    "remove": JOB_STATUS_REMOVABLE,
    "rerun": ("completed",),
}


def _either(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def unchanged_reason(command: str, job: Job | None) -> str:
    """Why control `command` left a job as it was: its status, as it is now."""
    if job is None:
        return "not found"
    status, accepts = job.status, ACCEPTS[command]
    if status not in accepts:
        return f"it is {status}; {command} takes {_either(accepts)} jobs"
    if command == "ready" and job.doc.get("depends"):
        waiting = len(job.doc["depends"])
        return f"it waits for {waiting} job{'s' if waiting > 1 else ''} it depends on"
    return f"it is {status}"
