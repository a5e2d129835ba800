"""The engine's batching helpers: several calls or completions in one transaction, and the
ids of a batch save drawn at once (used by `JobManager.call_many`, `complete_and_claim` and
`save_many`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..core import ejson
from ..core import ids as core_ids
from ..core.ids import random_id
from ..core.params import DoneParams, GetWorkParams
from ..core.storable import unstorable_value
from ..errors import JobCollectionError
from ..storage.port import JobDoc
from . import _control, _work
from ._combiner import Request
from ._context import Op
from .workers import WorkerRef

Operation = Callable[[Op, Any], Any]
OPERATIONS: dict[str, Operation] = {
    "jobSave": _control.save,
    "jobReady": _control.job_ready,
    "jobPause": _control.job_pause,
    "jobResume": _control.job_resume,
    "jobCancel": _control.cancel,
    "jobRestart": _control.restart,
    "jobRemove": _control.remove,
    "jobRerun": _control.rerun,
    "getWork": _work.get_work,
    "jobLog": _work.job_log,
    "jobProgress": _work.job_progress,
    "jobDone": _work.job_done,
    "jobFail": _work.job_fail,
}


def random_ids(count: int) -> list[str]:
    """`count` ids as `random_id` draws them (17 uniform characters each), from one read."""
    # core.ids has no public bulk draw; _draw gives i.i.d. uniform characters, cut into ids.
    chars = core_ids._draw(core_ids._ID_TABLES, _ID_LENGTH * count)
    return [chars[i : i + _ID_LENGTH] for i in range(0, len(chars), _ID_LENGTH)]


_ID_LENGTH = len(random_id())


def plain_runs(runs: Sequence[tuple[str, str, object]]) -> bool:
    """True when every run is (non-empty id, non-empty runId, plain-dict result): what
    `parse_params("jobDone", ...)` would accept without changing anything."""
    return all(
        type(job_id) is str and job_id and type(run_id) is str and run_id and type(result) is dict
        for job_id, run_id, result in runs
    )


def run_calls(op: Op, calls: Sequence[tuple[str, Any]]) -> list[Any]:
    """Parsed calls in order, in one transaction. Consecutive `jobDone`s of one run with the
    same result and options, each for another job (a remote worker's payload, pipelined),
    complete with one statement (`_work.jobs_done`); the values are those of the calls."""
    values: list[Any] = []
    start = 0
    while start < len(calls):
        method, parsed = calls[start]
        end = start + 1
        if method == "jobDone":
            ids = {parsed.id}
            while end < len(calls) and calls[end][0] == "jobDone":
                following = calls[end][1]
                if following.id in ids or not _done_together(parsed, following):
                    break
                ids.add(following.id)
                end += 1
        if end - start > 1:
            values += _work.jobs_done(op, [done for _, done in calls[start:end]])
        else:
            values.append(OPERATIONS[method](op, parsed))
        start = end
    return values


def _done_together(first: DoneParams, other: DoneParams) -> bool:
    """Whether two `jobDone` calls may complete in one statement."""
    return (
        other.run_id == first.run_id
        and other.repeat_id == first.repeat_id
        and other.delay_deps == first.delay_deps
        and same_result(first.result, other.result)
    )


def same_result(one: object, other: object) -> bool:
    """The same object, or results stored as the same text. (``==`` alone would take 1, 1.0
    and True for one another; runs that arrive over the wire are equal, never identical.)"""
    if one is other:
        return True
    if one != other:
        return False
    try:
        return ejson.dumps(one) == ejson.dumps(other)
    except (TypeError, ValueError, RecursionError):  # left to the completion to refuse
        return False


Completion = tuple[Sequence[tuple[str, str, object]], GetWorkParams | None, WorkerRef | None]
Outcome = tuple[dict[str, bool | str], list[JobDoc]]


def complete_then_claim(
    op: Op,
    runs: Sequence[tuple[str, str, object]],
    claim: GetWorkParams | None,
    worker: WorkerRef | None,
    stopped: bool,
) -> Outcome:
    """Complete runs (consecutive ones sharing runId and result in one statement), then claim."""
    groups: list[tuple[str, object, list[str]]] = []
    for job_id, run_id, result in runs:
        if groups and groups[-1][0] == run_id and same_result(groups[-1][1], result):
            groups[-1][2].append(job_id)
        else:
            groups.append((run_id, result, [job_id]))
    outcomes: dict[str, bool | str] = {}
    for run_id, result, ids in groups:
        assert isinstance(result, dict)
        outcomes.update(_work.complete_runs(op, ids, run_id, result))
    op.worker = worker  # one transaction may serve several callers (see `Combiner`)
    claimed = [] if claim is None or stopped else _work.get_work(op, claim)
    return outcomes, claimed


def unstorable_result(
    requests: Sequence[Request[Completion, Outcome]],
) -> JobCollectionError | None:
    """The error naming a completion's result that cannot be stored, if there is one."""
    for request in requests:
        for _, _, result in request.work[0]:
            error = unstorable_value("result", result)
            if error is not None:
                return error
    return None
