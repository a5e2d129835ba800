"""Worker-side operations: getWork, jobLog, jobProgress, jobDone, jobFail (getJob is a read:
`_reads`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core import rules
from ..core.constants import FOREVER_DATE, Status
from ..core.params import (
    CancelParams,
    DoneParams,
    FailParams,
    GetWorkParams,
    LogParams,
    ProgressParams,
)
from ..storage.port import UNSET, Guard, JobDoc, RunEnd, SharedClaim
from . import _control
from ._context import Op

_RUNNING = (Status.RUNNING,)


def get_work(op: Op, p: GetWorkParams) -> list[JobDoc]:
    run_id = op.new_id()
    log = rules.entry(op.now, "Job Running", run_id=run_id)
    worker = None if op.worker is None else op.worker.id
    fields = claim_fields(op, p, run_id)
    if op.may_step() and not enrolls(op):  # one statement, alone: one round trip
        shared = SharedClaim(p.types, [p.max_jobs], [run_id], [log], fields, worker)
        op.claimed.append((worker, "", run_id))  # (its fate is unknown should it raise)
        step = op.tx.complete_and_claim((), op.now, shared)
        op.claimed.pop()
        assert step is not None
        docs = step[1][0]
    else:
        docs = op.tx.claim(p.types, p.max_jobs, fields, log, worker)
    return claimed(op, p, docs, run_id)


def enrolls(op: Op) -> bool:
    """Whether a claim now would store its worker's record (the first claim of a server's
    connection): the record goes in the claim's transaction, so not by a one-statement step."""
    worker = op.worker
    return worker is not None and worker.enroll is not None and not worker.enrolled


def claim_fields(op: Op, p: GetWorkParams, run_id: str) -> dict[str, Any]:
    """What a claim sets on the jobs it takes."""
    fields: dict[str, Any] = {"status": Status.RUNNING.value, "runId": run_id, "updated": op.now}
    if p.work_timeout is not None:
        expires = min(op.now + p.work_timeout, FOREVER_DATE)
        fields.update(workTimeout=p.work_timeout, expiresAfter=expires)
    else:
        fields.update(workTimeout=UNSET, expiresAfter=UNSET)
    return fields


def claimed(op: Op, p: GetWorkParams, docs: list[JobDoc], run_id: str) -> list[JobDoc]:
    """A claim's jobs as `getWork` returns them, the claim recorded (`op.worker`'s)."""
    if docs:
        worker = None if op.worker is None else op.worker.id
        op.claimed.extend((worker, doc["_id"], run_id) for doc in docs)
        if worker is not None:
            op.enroll_worker()
    if p.work_timeout is not None:
        op.wake_at(op.now + p.work_timeout + 1)
    for doc in docs:
        doc.pop("failures", None)
        doc.pop("_private", None)
    return docs


def _renewal(op: Op, doc: JobDoc) -> dict[str, Any]:
    """A running job with a work timeout gets a new deadline whenever its worker reports."""
    timeout = doc.get("workTimeout")
    if doc["status"] != Status.RUNNING or timeout is None:
        return {}
    op.wake_at(op.now + timeout + 1)
    return {"expiresAfter": min(op.now + timeout, FOREVER_DATE)}


def job_log(op: Op, p: LogParams) -> bool:
    found = op.tx.get([p.id])
    if not found:
        return False
    entry: dict[str, Any] = {
        "time": op.now,
        "runId": p.run_id,
        "level": p.level,
        "message": p.message,
    }
    if p.data is not None:
        entry["data"] = p.data
    fields = {"updated": op.now, **_renewal(op, found[0])}
    if not op.tx.update([p.id], fields, log=[entry]):
        return False
    if p.run_id is not None and p.run_id == found[0].get("runId"):  # from the run's worker
        _adopt(op, p.id)
    return True


def _adopt(op: Op, job_id: str) -> None:
    """A worker reporting on a running job claimed by another worker that is no longer active
    (a connection that dropped, then came back as a new one) takes the job over: its
    heartbeat guards the job from now on, and the old claimant's lapse will not fail it."""
    if op.worker is not None and op.tx.adopt(job_id, op.worker.id):
        op.claimed.append((op.worker.id, job_id, None))
        op.enroll_worker()


def _running(op: Op, job_id: str, run_id: str) -> JobDoc | None:
    found = op.tx.find(ids=[job_id], statuses=_RUNNING)
    if not found or found[0]["runId"] != run_id:
        return None
    return found[0]


def job_progress(op: Op, p: ProgressParams) -> bool:
    doc = _running(op, p.id, p.run_id)
    if doc is None:
        return False
    progress = {"completed": p.completed, "total": p.total, "percent": 100 * p.completed / p.total}
    fields = {"progress": progress, "updated": op.now, **_renewal(op, doc)}
    if not op.tx.update([p.id], fields, Guard(statuses=_RUNNING, run_id=p.run_id)):
        return False
    _adopt(op, p.id)
    return True


def job_done(op: Op, p: DoneParams) -> bool | str:
    outcome = complete_runs(op, [p.id], p.run_id, p.result, p.delay_deps).get(p.id, False)
    return outcome if p.repeat_id else bool(outcome)


def jobs_done(op: Op, calls: Sequence[DoneParams]) -> list[bool | str]:
    """Several `jobDone` calls for different jobs of one run, with the same result and
    options (a remote worker's pipelined payload), completed by one `complete_runs`; each
    call's value is what `job_done` would have returned."""
    first = calls[0]
    ids = [p.id for p in calls]
    outcomes = complete_runs(op, ids, first.run_id, first.result, first.delay_deps)
    return [
        outcomes.get(job_id, False) if first.repeat_id else job_id in outcomes for job_id in ids
    ]


def complete_runs(
    op: Op,
    ids: Sequence[str],
    run_id: str,
    result: dict[str, Any],
    delay: int | None = None,
    in_one_step: bool = True,
) -> dict[str, bool | str]:
    """Complete jobs of one run with one result; per job: True, or the repeat's new id.
    Where the storage does it in one statement (and `in_one_step`: the caller did not just try
    that), the jobs that need nothing more go first by `complete_and_claim`."""
    log = rules.entry(op.now, "Job Completed", "success", run_id)
    outcomes: dict[str, bool | str] = {}
    if in_one_step and op.may_step():
        ends = [RunEnd(job_id, run_id, result, log) for job_id in ids]
        step = op.tx.complete_and_claim(ends, op.now, None)
        assert step is not None
        outcomes = dict.fromkeys(step[0], True)
        ids = [job_id for job_id in ids if job_id not in outcomes]
        if not ids:
            return outcomes
    completed = op.tx.complete(ids, run_id, result, op.now, log)
    outcomes.update((job_id, True) for job_id, _ in completed)
    repeating = [job_id for job_id, repeats in completed if repeats > 0]
    for doc in op.tx.get(repeating) if repeating else ():
        new_id = _repeat(op, doc)
        if new_id:
            outcomes[doc["_id"]] = new_id
    if completed:
        _resolve_dependents(op, [job_id for job_id, _ in completed], delay)
    return outcomes


def _repeat(op: Op, doc: JobDoc) -> str | None:
    after = rules.repeat_after(doc, op.now)
    if after is None:
        return None
    new = rules.rerun_copy(doc, op.new_id(), op.now, doc["repeats"] - 1, doc["repeatUntil"], after)
    op.tx.insert([new])
    _control.ready_or_wake(op, [new["_id"]])
    return str(new["_id"])


def _resolve_dependents(op: Op, job_ids: list[str], delay: int | None) -> None:
    dependents = op.tx.dependents(job_ids)
    done = set(job_ids)
    for dep in dependents:
        fields: dict[str, Any] = {
            "depends": [a for a in dep["depends"] if a not in done],
            "resolved": [*dep["resolved"], *(a for a in dep["depends"] if a in done)],
            "updated": op.now,
        }
        if delay is not None:
            fields["after"] = max(dep["after"], min(op.now + delay, FOREVER_DATE))
        resolved = sum(1 for a in dep["depends"] if a in done)
        log = [rules.entry(op.now, "Dependency resolved") for _ in range(resolved)]
        op.tx.update([dep["_id"]], fields, log=log)
    if dependents:
        _control.ready_or_wake(op, [d["_id"] for d in dependents])


def job_fail(op: Op, p: FailParams) -> bool:
    doc = _running(op, p.id, p.run_id)
    return doc is not None and fail_run(op, doc, p.err, p.fatal)


def fail_run(op: Op, doc: JobDoc, err: dict[str, Any], fatal: bool) -> bool:
    """End a run with an error: back to waiting for a retry, or failed for good."""
    status, after = rules.fail_outcome(doc, op.now, fatal)
    run_id = doc["runId"]
    failure = {**err, "runId": run_id}
    fields = {
        "status": status.value,
        "runId": None,
        "after": after,
        "updated": op.now,
        "failures": [*(doc.get("failures") or ()), failure],
    }
    final = status == Status.FAILED
    level = "danger" if final else "warning"
    log = [rules.entry(op.now, rules.fail_message(err, final), level, run_id)]
    guard = Guard(statuses=_RUNNING, run_id=run_id)
    if not op.tx.update([doc["_id"]], fields, guard, log):
        return False
    if final:
        # jobCancel on every dependent, as the original does: even one already cancelled passes the
        # cascade on to its own dependents.
        dependents = [d["_id"] for d in op.tx.dependents([doc["_id"]])]
        if dependents:
            _control.cancel(op, CancelParams(dependents))
    else:
        _control.ready_or_wake(op, [doc["_id"]])
    return True


def fail_expired(op: Op) -> int:
    """Fail every running job whose work timeout passed without a word from its worker."""
    err = {"value": "Failed for exceeding worker set workTimeout"}
    return sum(fail_run(op, doc, err, False) for doc in op.tx.expired(op.now))


def fail_all_running(op: Op, running: Sequence[JobDoc]) -> int:
    """At the end of a server shutdown, the jobs running through this process are failed (not
    fatally): `running`, found by `_claims.Claims.running_here`."""
    err = {"value": "Running at Job Server shutdown."}
    return sum(fail_run(op, doc, err, False) for doc in running)
