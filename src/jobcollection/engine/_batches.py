"""The engine's batching helpers: several calls or completions in one transaction, and the
ids of a batch save drawn at once (used by `JobManager.call_many`, `complete_and_claim` and
`save_many`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..core import ejson, rules
from ..core import ids as core_ids
from ..core.ids import random_id
from ..core.params import DoneParams, GetWorkParams
from ..core.storable import unstorable_value
from ..errors import JobCollectionError
from ..storage.port import JobDoc, LogEntry, RunEnd, SharedClaim
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
    outcomes = _complete(op, runs)
    op.worker = worker  # one transaction may serve several callers (see `Combiner`)
    claimed = [] if claim is None or stopped else _work.get_work(op, claim)
    return outcomes, claimed


def complete_then_claim_all(op: Op, works: Sequence[Completion], stopped: bool) -> list[Outcome]:
    """Several callers' completions and claims in one operation: together where the storage
    has a one-statement step, else one after another."""
    together = complete_and_claim_together(op, works, stopped)
    if together is not None:
        return together
    return [complete_then_claim(op, *work, stopped) for work in works]


def complete_and_claim_together(
    op: Op, works: Sequence[Completion], stopped: bool
) -> list[Outcome] | None:
    """Several callers' completions and claims by one `Transaction.complete_and_claim` (where
    that saves round trips), then the runs it leaves (repeats, dependents, a stale run) by
    `complete_runs`. None: the storage has no such step, or the callers claim differently (by
    type, work timeout or worker); nothing was done then."""
    if not op.may_step():
        return None
    claims = [(n, claim) for n, (_, claim, _) in enumerate(works) if claim and not stopped]
    if len({(tuple(c.types), c.work_timeout, _worker_id(works[n][2])) for n, c in claims}) > 1:
        return None
    worker = works[claims[0][0]][2] if claims else None
    op.worker = worker
    if claims and _work.enrolls(op):
        return None
    ends: list[RunEnd] = []
    entries: dict[str, LogEntry] = {}
    for runs, _, _ in works:
        for job_id, run_id, result in runs:
            log = entries.get(run_id) or entries.setdefault(
                run_id, rules.entry(op.now, "Job Completed", "success", run_id)
            )
            ends.append(RunEnd(job_id, run_id, result, log))
    shared: SharedClaim | None = None
    run_ids = [op.new_id() for _ in claims]
    if claims:
        first = claims[0][1]
        shared = SharedClaim(
            types=first.types,
            limits=[claim.max_jobs for _, claim in claims],
            run_ids=run_ids,
            logs=[rules.entry(op.now, "Job Running", run_id=run_id) for run_id in run_ids],
            fields=_work.claim_fields(op, first, run_ids[0]),
            worker=_worker_id(worker),
        )
        # Should the call raise, its claims may have committed: known by their run ids.
        op.claimed += [(shared.worker, "", run_id) for run_id in run_ids]
    step = op.tx.complete_and_claim(ends, op.now, shared)
    del op.claimed[len(op.claimed) - len(run_ids) :]
    assert step is not None
    done, jobs = step
    finished = set(done)
    outcomes: list[Outcome] = [({}, []) for _ in works]
    for (n, claim), docs, run_id in zip(claims, jobs, run_ids, strict=True):
        outcomes[n][1].extend(_work.claimed(op, claim, docs, run_id))
    try:  # the runs the step left, in a transaction of their own
        for (runs, _, _), (results, _) in zip(works, outcomes, strict=True):
            left = []
            for job_id, run_id, result in runs:
                if job_id in finished:
                    finished.discard(job_id)
                    results[job_id] = True
                elif job_id not in results:  # (a job listed twice completes once)
                    left.append((job_id, run_id, result))
            results.update(_complete(op, left, in_one_step=False))
    except Exception as error:
        raise PartlyDone(error) from error
    return outcomes


class PartlyDone(Exception):
    """The step of `complete_and_claim_together` committed, then the rest failed with `error`:
    the callers must not be served again one by one (their runs would not complete twice)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _worker_id(worker: WorkerRef | None) -> str | None:
    # (A local queue's calls each bring a ref of their own; a connection's share one.)
    return None if worker is None else worker.id


def _complete(
    op: Op, runs: Sequence[tuple[str, str, object]], in_one_step: bool = True
) -> dict[str, bool | str]:
    """Complete runs, consecutive ones sharing runId and result in one statement (for
    `in_one_step`, see `_work.complete_runs`)."""
    groups: list[tuple[str, object, list[str]]] = []
    for job_id, run_id, result in runs:
        if groups and groups[-1][0] == run_id and same_result(groups[-1][1], result):
            groups[-1][2].append(job_id)
        else:
            groups.append((run_id, result, [job_id]))
    outcomes: dict[str, bool | str] = {}
    for run_id, result, ids in groups:
        assert isinstance(result, dict)
        outcomes.update(_work.complete_runs(op, ids, run_id, result, None, in_one_step))
    return outcomes


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
