"""Control operations: save, ready, pause, resume, cancel, restart, remove, rerun."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from ..core import rules
from ..core.constants import (
    FOREVER,
    JOB_STATUS_CANCELLABLE,
    JOB_STATUS_PAUSABLE,
    JOB_STATUS_REMOVABLE,
    JOB_STATUS_RESTARTABLE,
    Status,
)
from ..core.params import (
    CancelParams,
    IdsParams,
    ReadyParams,
    RerunParams,
    RestartParams,
    SaveParams,
)
from ..core.usual_job import UsualJob, usual_doc, usual_values
from ..storage.port import Guard, JobDoc
from ._context import Op

_DEFAULT_CANCEL = CancelParams(ids=[])


def ready(op: Op, ids: Sequence[str], force: bool = False, time: int | None = None) -> bool:
    """Promote due waiting jobs; an empty `ids` means every waiting job of the collection."""
    due_by = op.now if time is None else time
    targets = op.tx.due(due_by, ids or None, force)
    if not targets:
        return False
    fields: dict[str, Any] = {"status": Status.READY.value, "updated": op.now}
    if ids:
        fields["after"] = op.now
    log = [rules.entry(op.now, "Promoted to ready")]
    if force:
        fields["depends"] = []
        log.insert(0, rules.entry(op.now, "Dependencies force resolved", "warning"))
    guard = Guard(statuses=(Status.WAITING,), due_by=due_by, no_depends=not force)
    return bool(op.tx.update(targets, fields, guard, log))


def job_ready(op: Op, p: ReadyParams) -> bool:
    return ready(op, p.ids, p.force, p.time)


def job_pause(op: Op, p: IdsParams) -> bool:
    fields = {"status": Status.PAUSED.value, "updated": op.now}
    guard = Guard(statuses=JOB_STATUS_PAUSABLE)
    return bool(p.ids) and bool(
        op.tx.update(p.ids, fields, guard, [rules.entry(op.now, "Job Paused")])
    )


def job_resume(op: Op, p: IdsParams) -> bool:
    if not p.ids:
        return False
    fields = {"status": Status.WAITING.value, "updated": op.now}
    guard = Guard(statuses=(Status.PAUSED,))
    resumed = op.tx.update(p.ids, fields, guard, [rules.entry(op.now, "Job Resumed")])
    if resumed:
        ready_or_wake(op, resumed)
    return bool(resumed)


def ready_or_wake(op: Op, ids: Sequence[str]) -> None:
    """Ready what is due now; tell the scheduler when the rest becomes due."""
    ready(op, ids)
    for doc in op.tx.find(ids=ids, statuses=(Status.WAITING,)):
        if not doc["depends"]:
            op.wake_at(doc["after"])


def _related(
    op: Op, ids: Sequence[str], p: CancelParams | RestartParams, eligible: Collection[str]
) -> list[str]:
    """Antecedents and/or dependents of `ids` that are in an `eligible` status."""
    related: dict[str, None] = {}
    if p.antecedents:
        wanted = [a for doc in op.tx.get(ids) for a in doc["depends"]]
        related.update((d["_id"], None) for d in op.tx.find(ids=wanted, statuses=eligible))
    if p.dependents:
        related.update((d["_id"], None) for d in op.tx.dependents(ids) if d["status"] in eligible)
    return list(related)


def cancel(op: Op, p: CancelParams) -> bool:
    """Cancel, then cascade to antecedents/dependents with the same options."""
    if not p.ids:
        return False
    fields = {
        "status": Status.CANCELLED.value,
        "runId": None,
        "progress": rules.fresh_progress(),
        "updated": op.now,
    }
    log = [rules.entry(op.now, "Job Cancelled", "warning")]
    changed = bool(op.tx.update(p.ids, fields, Guard(statuses=JOB_STATUS_CANCELLABLE), log))
    cascade = _related(op, p.ids, p, JOB_STATUS_CANCELLABLE)
    if cascade:
        changed = cancel(op, CancelParams(cascade, p.antecedents, p.dependents)) or changed
    return changed


def _restart_only(op: Op, p: RestartParams) -> bool:
    changed = False
    for doc in op.tx.find(ids=p.ids, statuses=JOB_STATUS_RESTARTABLE):
        fields: dict[str, Any] = {
            "status": Status.WAITING.value,
            "progress": rules.fresh_progress(),
            "updated": op.now,
            "retries": min(doc["retries"] + p.retries, FOREVER),
        }
        if p.until is not None:
            fields["retryUntil"] = p.until
        log = [rules.entry(op.now, "Job Restarted")]
        changed = (
            bool(op.tx.update([doc["_id"]], fields, Guard(statuses=JOB_STATUS_RESTARTABLE), log))
            or changed
        )
    cascade = _related(op, p.ids, p, JOB_STATUS_RESTARTABLE)
    if cascade:
        sub = RestartParams(cascade, p.retries, p.until, p.antecedents, p.dependents)
        changed = _restart_only(op, sub) or changed
    return changed


def restart(op: Op, p: RestartParams) -> bool:
    if not p.ids or not _restart_only(op, p):
        return False
    ready_or_wake(op, p.ids)
    return True


def remove(op: Op, p: IdsParams) -> bool:
    """Delete finished jobs; their unfinished dependents are cancelled (see docs/decisions.md)."""
    if not p.ids:
        return False
    removed = op.tx.remove(p.ids, JOB_STATUS_REMOVABLE)
    dependents = op.tx.dependents(removed) if removed else []
    orphans = [d["_id"] for d in dependents if d["status"] in JOB_STATUS_CANCELLABLE]
    if orphans:
        log = [rules.entry(op.now, "Antecedent removed", "warning")]
        op.tx.update(orphans, {"updated": op.now}, log=log)
        cancel(op, CancelParams(orphans))  # cascades on from the orphans only
    return bool(removed)


def check_antecedents(op: Op, doc: JobDoc) -> bool:
    """Save-time dependency check, in the original's order: log each missing antecedent, then
    walk the stored ones (in insertion order) logging each failed or cancelled one, resolve the
    completed ones (while the job is waiting), and only then cancel the job if any antecedent
    was missing, failed or cancelled. False when the job was cancelled."""
    if not doc["depends"]:
        return True
    stored = op.tx.get_antecedents(doc["depends"])
    found = {d["_id"] for d in stored}
    problems = [
        f"Antecedent job {antecedent} missing at save"
        for antecedent in doc["depends"]
        if antecedent not in found
    ]
    completed: list[str] = []
    for antecedent in stored:
        status = antecedent["status"]
        if status == Status.COMPLETED:
            completed.append(antecedent["_id"])
        elif status == Status.FAILED:
            problems.append("Antecedent job failed before save")
        elif status == Status.CANCELLED:
            problems.append("Antecedent job cancelled before save")
    if problems:
        log = [rules.entry(op.now, message) for message in problems]
        op.tx.update([doc["_id"]], {"updated": op.now}, log=log)
    if completed:
        fields = {
            "depends": [a for a in doc["depends"] if a not in completed],
            "resolved": [*doc["resolved"], *completed],
            "updated": op.now,
        }
        log = [rules.entry(op.now, "Dependency resolved") for _ in completed]
        op.tx.update([doc["_id"]], fields, Guard(statuses=(Status.WAITING,)), log)
    if problems:
        cancel(op, CancelParams([doc["_id"]]))
        return False
    return True


def save(op: Op, p: SaveParams) -> str | None:
    doc = rules.clamp_new_doc(p.doc, op.now)
    if doc is None:
        return None
    if doc.get("_id") is not None:
        return _resave(op, doc)
    if p.cancel_repeats and doc["repeats"] == FOREVER:
        ids = [d["_id"] for d in op.tx.find(types=[doc["type"]], statuses=JOB_STATUS_CANCELLABLE)]
        cancel(op, CancelParams(ids, antecedents=False, dependents=True))
    return insert_new(op, doc)


_Entries = tuple[JobDoc, JobDoc]
_WAITING, _READY = Status.WAITING.value, Status.READY.value  # plain str: compared per job


def _new_job_entries(now: int) -> _Entries:
    """The "Job Submitted" and "Promoted to ready" entries of jobs saved at `now`. A batch shares
    one pair (they are only ever serialized), so storage can format them once."""
    return rules.entry(now, "Job Submitted"), rules.entry(now, "Promoted to ready")


def _prepare_new(op: Op, doc: JobDoc, entries: _Entries, new_id: Callable[[], str]) -> bool:
    """Turn a clamped new document (a copy we own) into its stored form, in place; True when
    it goes straight to ready (due, nothing pending)."""
    submitted, promoted = entries
    doc["_id"] = new_id()
    doc["created"] = op.now
    log = [*(doc.get("log") or ()), submitted]
    immediate = doc["status"] == _WAITING and not doc["depends"] and doc["after"] <= op.now
    if immediate:
        # Same outcome as insert + jobReady(id), in one write.
        doc["status"] = _READY
        doc["after"] = doc["updated"] = op.now
        log.append(promoted)
    doc["log"] = log
    return immediate


def insert_new(op: Op, doc: JobDoc) -> str | None:
    """Insert a validated, clamped new job (the copy is changed in place); it is stored ready at
    once when nothing holds it back."""
    if _prepare_new(op, doc, _new_job_entries(op.now), op.new_id):
        op.tx.insert([doc])
        return str(doc["_id"])
    return _insert_prepared(op, doc)


def new_ready_candidate(doc: object) -> UsualJob | None:
    """The `usual_values` of a document that is valid for `jobSave` and, if due when saved,
    goes straight to ready: a new waiting job without runId or dependencies. Else None."""
    values = usual_values(doc)
    if values is None or values.status != _WAITING or values.run_id is not None or values.depends:
        return None
    return values


def save_many(
    op: Op, jobs: Sequence[JobDoc | UsualJob], new_id: Callable[[], str] | None = None
) -> list[str | None]:
    """Save new jobs in one transaction, in order; runs of jobs that go straight to ready are
    inserted by one statement, the others one by one.

    `jobs` are fresh validated copies without `_id` (changed in place) or, for the usual new
    job, its `new_ready_candidate` values; `new_id` replaces `op.new_id` (the manager draws a
    batch's ids at once).
    """
    next_id = new_id or op.new_id
    ids: list[str | None] = []
    ready_values: list[UsualJob] = []  # a run of candidates going to ready...
    ready_ids: list[str] = []
    ready_docs: list[JobDoc] = []  # ...or of documents stored as they stand
    wake: int | None = None  # the earliest time one of those becomes due
    entries = _new_job_entries(op.now)

    def flush() -> None:
        if ready_values:
            op.tx.insert_ready(ready_values, ready_ids, op.now, entries)
            ready_values.clear()
            ready_ids.clear()
        if ready_docs:
            op.tx.insert(ready_docs)
            ready_docs.clear()
        nonlocal wake
        if wake is not None:
            op.wake_at(wake)
            wake = None

    for job in jobs:
        if type(job) is UsualJob:
            if job.after <= op.now:
                if ready_docs:
                    flush()
                job_id = next_id()
                ready_values.append(job)
                ready_ids.append(job_id)
                ids.append(job_id)
                continue
            job = usual_doc(job)  # due later: the general path
        assert isinstance(job, dict)
        doc = rules.clamp_new_doc(job, op.now, copy=False)
        if doc is None:  # a schedule without an occurrence in time: nothing is saved
            ids.append(None)
        elif _prepare_new(op, doc, entries, next_id) or _waits_for_time_alone(op, doc):
            # Stored as it stands: ready now, or waiting for its time (nothing to look up:
            # the scheduler is told when the earliest of them is due).
            if ready_values:
                flush()
            if doc["status"] == _WAITING:
                wake = doc["after"] if wake is None else min(wake, doc["after"])
            ready_docs.append(doc)
            ids.append(doc["_id"])
        else:
            flush()
            ids.append(_insert_prepared(op, doc))
    flush()
    return ids


def _waits_for_time_alone(op: Op, doc: JobDoc) -> bool:
    """A prepared new job that is waiting only for its time (not due yet, no dependencies):
    inserting it is all there is to do, besides telling the scheduler when it is due."""
    return doc["status"] == _WAITING and not doc["depends"] and doc["after"] > op.now


def _insert_prepared(op: Op, doc: JobDoc) -> str | None:
    op.tx.insert([doc])
    if not check_antecedents(op, doc):
        return None
    ready_or_wake(op, [doc["_id"]])
    return str(doc["_id"])


def _resave(op: Op, doc: JobDoc) -> str | None:
    """Saving a paused job again replaces its settings and sends it back to waiting."""
    job_id = doc["_id"]
    repeat_retries = doc.get("repeatRetries")
    if repeat_retries is None:
        repeat_retries = doc["retries"] + doc["retried"]
    fields = {key: doc[key] for key in _RESAVE_FIELDS}
    fields.update(status=Status.WAITING.value, repeatRetries=repeat_retries, updated=op.now)
    log = [rules.entry(op.now, "Job Resubmitted")]
    if not op.tx.update([job_id], fields, Guard(statuses=(Status.PAUSED,)), log):
        return None
    stored = op.tx.get([job_id])[0]
    if not check_antecedents(op, stored):
        return None
    ready_or_wake(op, [job_id])
    return str(job_id)


_RESAVE_FIELDS = (
    "data",
    "retries",
    "retryUntil",
    "retryWait",
    "retryBackoff",
    "repeats",
    "repeatUntil",
    "repeatWait",
    "depends",
    "priority",
    "after",
)


def rerun(op: Op, p: RerunParams) -> str | bool | None:
    found = op.tx.find(ids=[p.id], statuses=(Status.COMPLETED,))
    if not found:
        return False
    doc = found[0]
    after = rules.wait_after(p.wait, op.now)
    if after is None:
        return None
    until = doc["repeatUntil"] if p.until is None else p.until
    new = rules.rerun_copy(doc, op.new_id(), op.now, p.repeats, until, after)
    op.tx.insert([new])
    ready_or_wake(op, [new["_id"]])
    return str(new["_id"])
