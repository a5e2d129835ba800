"""Two methods beyond the original's 16, for our own remote client: batches in one message.

- ``<root>_jobSaveMany(docs)`` saves new jobs in one transaction (all validated first: a bad
  document saves nothing) and returns their ids: what `jc.save_jobs` does locally.
- ``<root>_jobDoneAndGetWork(runs, getWorkParams | null)`` completes ``[[id, runId, result],
  ...]`` and then claims work with the params of `getWork`, in one transaction; returns
  ``[outcomes, docs]``: what a worker does between two batches.

Each is allowed only where every underlying call would be (the rule functions see the
underlying method and params), so they grant nothing the 16 methods do not. As for every other
method, permissions come first: an empty batch, or one whose params cannot be read, is checked
as one underlying call without params before any validation error is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.permissions import Caller
from ..core.wire import result_to_wire
from ..engine.manager import JobManager
from ..engine.workers import WorkerRef
from ..errors import ValidationError
from .meteor_error import not_authorized

BatchMethod = Callable[[JobManager, list[object], Caller, WorkerRef | None], object]


def _permit_each(
    manager: JobManager, caller: Caller, calls: list[tuple[str, list[object]]], fallback: str
) -> None:
    """Check every underlying call before anything else is looked at. A batch that stands for
    no call (it is empty, or its params cannot be read) is checked as one `fallback` call
    without params, so it is no way around the rules."""
    for method, params in calls or [(fallback, [])]:
        if not manager.permissions.permits(caller, method, params):
            raise not_authorized(caller, manager.root, method)


def save_many(
    manager: JobManager, params: list[object], caller: Caller, worker: WorkerRef | None
) -> object:
    docs = params[0] if params else None
    saves: list[tuple[str, list[object]]] = (
        [("jobSave", [doc]) for doc in docs] if isinstance(docs, list) else []
    )
    _permit_each(manager, caller, saves, "jobSave")
    if not isinstance(docs, list):
        raise ValidationError("jobSaveMany: expected [docs], a list of job documents")
    return manager.save_many(docs)


def _done_params(entry: object) -> list[object]:
    """The `jobDone` params a run stands for ([] when it is not even a triple)."""
    return [*entry, {}] if isinstance(entry, list) and len(entry) == 3 else []


def _run(entry: object, index: int) -> tuple[str, str, object]:
    if not isinstance(entry, list) or len(entry) != 3:
        raise ValidationError(f"runs[{index}]: expected [id, runId, result], got {entry!r}")
    job_id, run_id, result = entry
    if not isinstance(job_id, str) or not isinstance(run_id, str):
        raise ValidationError(f"runs[{index}]: id and runId must be strings")
    return job_id, run_id, result


def done_and_get_work(
    manager: JobManager, params: list[object], caller: Caller, worker: WorkerRef | None
) -> object:
    runs, get_work = _checked_work(manager, params, caller)
    outcomes, docs = manager.complete_and_claim(runs, get_work, worker)
    return [outcomes, result_to_wire("getWork", docs)]


def done_and_get_work_many(
    manager: JobManager,
    calls: list[list[object]],
    caller: Caller,
    worker: WorkerRef | None,
) -> list[tuple[bool, object]]:
    """Several `jobDoneAndGetWork` calls of one connection, queued one behind the other,
    served together (one transaction; one statement where the storage has the step), each
    with its own answer: ``(True, [outcomes, docs])`` or ``(False, error)``."""
    answers: list[tuple[bool, object]] = [(False, None)] * len(calls)
    checked: list[tuple[int, list[tuple[str, str, object]], list[object] | None]] = []
    for index, params in enumerate(calls):
        try:
            checked.append((index, *_checked_work(manager, params, caller)))
        except Exception as error:
            answers[index] = (False, error)
    served = manager.complete_and_claim_many([(runs, work) for _, runs, work in checked], worker)
    for (index, _, _), answer in zip(checked, served, strict=True):
        if isinstance(answer, Exception):
            answers[index] = (False, answer)
        else:
            answers[index] = (True, [answer[0], result_to_wire("getWork", answer[1])])
    return answers


def _checked_work(
    manager: JobManager, params: list[object], caller: Caller
) -> tuple[list[tuple[str, str, object]], list[object] | None]:
    """The runs and getWork params of a `jobDoneAndGetWork`, permitted and read."""
    entries = params[0] if params else None
    get_work = params[1] if len(params) > 1 else None
    calls: list[tuple[str, list[object]]] = (
        [("jobDone", _done_params(entry)) for entry in entries]
        if isinstance(entries, list)
        else [("jobDone", [])]
    )
    if get_work is not None:
        calls.append(("getWork", get_work if isinstance(get_work, list) else []))
    _permit_each(manager, caller, calls, "jobDone")
    if not isinstance(entries, list):
        raise ValidationError("jobDoneAndGetWork: expected [runs, getWorkParams | null]")
    runs = [_run(entry, n) for n, entry in enumerate(entries)]
    if get_work is not None and not isinstance(get_work, list):
        raise ValidationError("jobDoneAndGetWork: getWorkParams must be a list or null")
    return runs, get_work


BATCH_METHODS: dict[str, BatchMethod] = {
    "jobSaveMany": save_many,
    "jobDoneAndGetWork": done_and_get_work,
}


def call_batch(
    name: str,
    manager: JobManager,
    params: list[Any],
    caller: Caller,
    worker: WorkerRef | None = None,
) -> object:
    """Run a batch method; `worker`: whom its claim is recorded for."""
    return BATCH_METHODS[name](manager, params, caller, worker)
