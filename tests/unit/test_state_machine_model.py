"""Stateful model test of the job state machine (SPEC 3).

Hypothesis drives random sequences of operations against a `JobCollection` on a fresh SQLite
file and, in parallel, against a small pure-Python reference model of SPEC 3.1-3.4 (statuses,
`retries`/`retried` counting, `after`, dependencies incl. the decision that removing an
antecedent cancels its unfinished dependents). After every step each job is compared with the
model.

Time is a `ManualClock`. After every step the test runs the promote sweep itself: SPEC 3.1
(decision) says a job becomes ready at its `after` time, which the collection's timer thread
does asynchronously; sweeping explicitly makes that moment deterministic.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobcollection.api.collection import JobCollection
from jobcollection.api.job import Job
from jobcollection.engine.clock import ManualClock
from storage_support import SQLITE, StorageKind, kind_named

TYPES = ("a", "b")
CANCELLABLE = frozenset({"running", "ready", "waiting", "paused"})
PAUSABLE = frozenset({"ready", "waiting"})
REMOVABLE = frozenset({"cancelled", "completed", "failed"})
RESTARTABLE = frozenset({"cancelled", "failed"})
FINISHED = frozenset({"completed", "failed", "cancelled"})
FOREVER = 2**53
FOREVER_DATE = 8_640_000_000_000_000
MISSING_ID = "MissingAntecedent"  # a well-formed id that no job has


@dataclass
class MJob:
    """The model's view of one job."""

    id: str
    seq: int
    type: str
    status: str
    priority: int
    after: int
    retries: int
    repeat_retries: int
    retry_wait: int
    backoff: str
    repeats: int
    repeat_wait: int
    depends: list[str]
    resolved: list[str] = field(default_factory=list)
    retried: int = 0
    run_id: str | None = None
    expires: int | None = None
    failures: int = 0
    retry_until: int = FOREVER_DATE


def _seq(job: MJob) -> int:
    return job.seq


class Model:
    """Reference implementation of SPEC 3 on plain dicts (one collection, one clock)."""

    def __init__(self) -> None:
        self.jobs: dict[str, MJob] = {}
        self._seq = 0

    # -- helpers ------------------------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def ordered(self) -> list[MJob]:
        return sorted(self.jobs.values(), key=lambda j: j.seq)

    def select(self, ids: list[str]) -> list[MJob]:
        wanted = set(ids)
        return [j for j in self.ordered() if j.id in wanted]

    def dependents_of(self, ids: list[str]) -> list[MJob]:
        wanted = set(ids)
        return [j for j in self.ordered() if wanted & set(j.depends)]

    def related(
        self, ids: list[str], antecedents: bool, dependents: bool, eligible: frozenset[str]
    ) -> list[str]:
        """SPEC 3.3 `_idsOfDeps`: eligible antecedents and/or dependents of `ids`."""
        found: dict[str, None] = {}
        if antecedents:
            wanted = [a for j in self.select(ids) for a in j.depends]
            found.update((j.id, None) for j in self.select(wanted) if j.status in eligible)
        if dependents:
            found.update((j.id, None) for j in self.dependents_of(ids) if j.status in eligible)
        return list(found)

    # -- operations ---------------------------------------------------------------------------

    def ready(self, now: int, ids: list[str] | None = None, force: bool = False) -> bool:
        """jobReady: explicit ids also move `after` to now; force drops `depends`."""
        pool = self.ordered() if ids is None else self.select(ids)
        targets = [
            j for j in pool if j.status == "waiting" and j.after <= now and (force or not j.depends)
        ]
        for j in targets:
            j.status = "ready"
            if ids:
                j.after = now
            if force:
                j.depends = []
        return bool(targets)

    def save(self, job: MJob, now: int) -> bool:
        """Insert (SPEC 4 jobSave, new doc); returns whether jobSave returns the id."""
        self.jobs[job.id] = job
        if job.status == "waiting" and not job.depends and job.after <= now:
            job.status, job.after = "ready", now
            return True
        if not self.check_antecedents(job):
            return False
        self.ready(now, [job.id])
        return True

    def check_antecedents(self, job: MJob) -> bool:
        """SPEC 3.3 save-time check: completed antecedents are resolved (in the order they
        were stored, while the job is waiting), then a bad antecedent cancels the job."""
        if not job.depends:
            return True
        problem = any(
            a not in self.jobs or self.jobs[a].status in ("failed", "cancelled")
            for a in job.depends
        )
        stored = sorted((self.jobs[a] for a in set(job.depends) if a in self.jobs), key=_seq)
        completed = [a.id for a in stored if a.status == "completed"]
        if completed and job.status == "waiting":
            job.depends = [a for a in job.depends if a not in completed]
            job.resolved = [*job.resolved, *completed]
        if problem:
            self.cancel([job.id])
            return False
        return True

    def resave(self, job_id: str, priority: int, now: int) -> bool:
        """jobSave of an existing id: only a paused job is updated (SPEC 4 jobSave)."""
        j = self.jobs[job_id]
        if j.status != "paused" or j.run_id is not None:
            return False
        j.status, j.priority = "waiting", priority
        j.after = max(j.after, now)
        j.retry_until = max(j.retry_until, now)
        if not self.check_antecedents(j):
            return False
        self.ready(now, [job_id])
        return True

    def claimable(self, types: list[str], max_jobs: int) -> list[str]:
        ready = [
            j for j in self.ordered() if j.status == "ready" and j.type in types and not j.run_id
        ]
        ready.sort(key=lambda j: (j.priority, j.retry_until, j.after, j.seq))
        return [j.id for j in ready[:max_jobs]]

    def claim(self, ids: list[str], run_id: str, now: int, work_timeout: int | None) -> None:
        for job_id in ids:
            j = self.jobs[job_id]
            j.status, j.run_id = "running", run_id
            j.retries -= 1
            j.retried += 1
            j.expires = None if work_timeout is None else now + work_timeout

    def running(self, job_id: str, run_id: str) -> MJob | None:
        j = self.jobs.get(job_id)
        if j is None or j.status != "running" or j.run_id != run_id:
            return None
        return j

    def complete(self, j: MJob) -> int | None:
        """jobDone's own update (the job keeps its runId); returns the repeat's wait when a
        repeat is due."""
        j.status = "completed"
        return j.repeat_wait if j.repeats > 0 else None

    def copy(self, old: MJob, new_id: str, now: int, repeats: int, after: int) -> MJob:
        """SPEC 3.4 rerun/repeat copy, then jobReady(newId)."""
        new = MJob(
            id=new_id,
            seq=self.next_seq(),
            type=old.type,
            status="waiting",
            priority=old.priority,
            after=after,
            retries=min(old.repeat_retries, FOREVER),
            repeat_retries=old.repeat_retries,
            retry_wait=old.retry_wait,
            backoff=old.backoff,
            repeats=min(repeats, FOREVER),
            repeat_wait=old.repeat_wait,
            depends=list(old.depends),
            resolved=list(old.resolved),
            retry_until=FOREVER_DATE,  # = repeatUntil, never set in this test
        )
        self.jobs[new_id] = new
        self.ready(now, [new_id])
        return new

    def resolve_dependents(self, job_id: str, now: int) -> None:
        deps = self.dependents_of([job_id])
        for d in deps:
            d.depends = [a for a in d.depends if a != job_id]
            d.resolved = [*d.resolved, job_id]
        if deps:
            self.ready(now, [d.id for d in deps])

    def fail_run(self, j: MJob, now: int, fatal: bool) -> None:
        wait = j.retry_wait
        if j.backoff == "exponential":
            wait *= 2 ** max(j.retried - 1, 0)
        after = now + wait
        retry = not fatal and j.retries > 0 and j.retry_until >= after
        j.status = "waiting" if retry else "failed"
        j.run_id, j.after, j.expires = None, after, None
        j.failures += 1
        if retry:
            self.ready(now, [j.id])
            return
        # SPEC 3.3: every job whose `depends` contains the failed job gets jobCancel(id) with
        # the server defaults (so the call also cascades from it to its own dependents).
        dependents = [d.id for d in self.dependents_of([j.id])]
        if dependents:
            self.cancel(dependents)

    def sweep(self, now: int) -> None:
        """SPEC 3.2 promote sweep: fail expired runs, then ready every due waiting job."""
        expired = [
            j
            for j in self.ordered()
            if j.status == "running" and j.expires is not None and j.expires < now
        ]
        for j in expired:
            if j.status == "running":
                self.fail_run(j, now, fatal=False)
        self.ready(now, None)

    def pause(self, ids: list[str]) -> bool:
        targets = [j for j in self.select(ids) if j.status in PAUSABLE]
        for j in targets:
            j.status = "paused"
        return bool(targets)

    def resume(self, ids: list[str], now: int) -> bool:
        resumed = [j for j in self.select(ids) if j.status == "paused"]
        for j in resumed:
            j.status = "waiting"
        if resumed:
            self.ready(now, [j.id for j in resumed])
        return bool(resumed)

    def cancel(self, ids: list[str], antecedents: bool = False, dependents: bool = True) -> bool:
        if not ids:
            return False
        changed = False
        for j in self.select(ids):
            if j.status in CANCELLABLE:
                j.status, j.run_id = "cancelled", None
                changed = True
        cascade = self.related(ids, antecedents, dependents, CANCELLABLE)
        if cascade:
            changed = self.cancel(cascade, antecedents, dependents) or changed
        return changed

    def _restart_only(
        self, ids: list[str], retries: int, antecedents: bool, dependents: bool
    ) -> bool:
        changed = False
        for j in self.select(ids):
            if j.status in RESTARTABLE:
                j.status = "waiting"
                j.retries = min(j.retries + retries, FOREVER)
                changed = True
        cascade = self.related(ids, antecedents, dependents, RESTARTABLE)
        if cascade:
            changed = self._restart_only(cascade, retries, antecedents, dependents) or changed
        return changed

    def restart(
        self, ids: list[str], now: int, retries: int, antecedents: bool, dependents: bool
    ) -> bool:
        if not ids or not self._restart_only(ids, retries, antecedents, dependents):
            return False
        self.ready(now, ids)
        return True

    def remove(self, ids: list[str]) -> bool:
        removed = [j.id for j in self.select(ids) if j.status in REMOVABLE]
        for job_id in removed:
            del self.jobs[job_id]
        orphans = [j.id for j in self.dependents_of(removed) if j.status in CANCELLABLE]
        if orphans:
            self.cancel(orphans)
        return bool(removed)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


picks = st.lists(st.integers(0, 10**6), min_size=1, max_size=3)


class JobStateMachine(RuleBasedStateMachine):
    kind: StorageKind = SQLITE  # the storage of the walks (test_random_walks sets it)

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="jc-model-")
        self.database = ExitStack()  # a fresh database for each walk, dropped at teardown
        url = self.database.enter_context(self.kind.create(Path(self.folder), "jobs"))
        self.clock = ManualClock()
        self.jc = JobCollection("model", url, clock=self.clock)
        self.jc.start_job_server()
        self.model = Model()
        self.handles: list[Job] = []  # jobs handed out by getWork, not yet finished by us
        self.restarted = False  # the last step was a restart (finished jobs may come back)
        self.before: dict[str, str] = {}

    def teardown(self) -> None:
        try:
            self.jc.close()
        finally:
            try:
                self.database.close()
            finally:
                shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def pick(self, numbers: list[int]) -> list[str]:
        ids = [j.id for j in self.model.ordered()]
        return _unique([ids[n % len(ids)] for n in numbers])

    def has_jobs(self) -> bool:
        return bool(self.model.jobs)

    def has_handles(self) -> bool:
        return bool(self.handles)

    def settle(self) -> None:
        """Run the promote sweep (what the timer thread would do at this instant)."""
        self.jc.manager.sweep()
        self.model.sweep(self.now)

    def step_done(self, restarted: bool = False) -> None:
        self.restarted = restarted
        self.settle()
        self.compare()

    def compare(self) -> None:
        real = {doc["_id"]: doc for doc in self.jc.manager.find()}
        assert set(real) == set(self.model.jobs), "job ids differ from the model"
        for job_id, m in self.model.jobs.items():
            doc = real[job_id]
            seen = {
                "status": doc["status"],
                "runId": doc["runId"],
                "retries": doc["retries"],
                "retried": doc["retried"],
                "after": doc["after"],
                "depends": doc["depends"],
                "resolved": doc["resolved"],
                "priority": doc["priority"],
                "retryUntil": doc["retryUntil"],
                "repeats": doc["repeats"],
                "failures": len(doc.get("failures") or ()),
            }
            expected = {
                "status": m.status,
                "runId": m.run_id,
                "retries": m.retries,
                "retried": m.retried,
                "after": m.after,
                "depends": m.depends,
                "resolved": m.resolved,
                "priority": m.priority,
                "retryUntil": m.retry_until,
                "repeats": m.repeats,
                "failures": m.failures,
            }
            assert seen == expected, f"job {job_id} (seq {m.seq}) differs from the model"

    # -- rules --------------------------------------------------------------------------------

    @rule(
        job_type=st.sampled_from(TYPES),
        priority=st.sampled_from([-5, 0, 0, 5]),
        retries=st.integers(0, 2),
        retry_wait=st.sampled_from([0, 1000, 300_000]),
        retry_until=st.sampled_from([None, None, -1, 500, 5000]),
        backoff=st.sampled_from(["constant", "exponential"]),
        delay=st.sampled_from([0, 0, 0, 2000]),
        paused=st.integers(0, 5).map(lambda n: n == 0),
        dep_picks=st.lists(st.integers(0, 10**6), max_size=2),
        missing_dep=st.integers(0, 9).map(lambda n: n == 0),
        repeats=st.sampled_from([0, 0, 0, 1, 2]),
        repeat_wait=st.sampled_from([0, 1000]),
    )
    def save(
        self,
        job_type: str,
        priority: int,
        retries: int,
        retry_wait: int,
        retry_until: int | None,
        backoff: str,
        delay: int,
        paused: bool,
        dep_picks: list[int],
        missing_dep: bool,
        repeats: int,
        repeat_wait: int,
    ) -> None:
        depends = self.pick(dep_picks) if (dep_picks and self.model.jobs) else []
        if missing_dep:
            depends.append(MISSING_ID)
        job = (
            self.jc.job(job_type, {"n": self.model._seq})
            .priority(priority)
            .retry(
                retries,
                wait=retry_wait,
                backoff=backoff,
                until=None if retry_until is None else self.now + retry_until,
            )
            .repeat(repeats, wait=repeat_wait)
            .delay(delay)
        )
        if depends:
            job.depends([Job(self.jc, {"_id": a, "type": "x"}) for a in depends])
        if paused:
            job.pause()
        before = {d["_id"] for d in self.jc.manager.find()}
        saved = job.save()
        if saved is None:  # the dependency check cancelled it; the document stays
            new = [d["_id"] for d in self.jc.manager.find() if d["_id"] not in before]
            assert len(new) == 1
            job_id = new[0]
        else:
            job_id = saved
        expected_saved = self.model.save(
            MJob(
                id=job_id,
                seq=self.model.next_seq(),
                type=job_type,
                status="paused" if paused else "waiting",
                priority=priority,
                after=self.now + delay,
                retries=retries + 1,
                repeat_retries=retries + 1,
                retry_wait=retry_wait,
                backoff=backoff,
                repeats=repeats,
                repeat_wait=repeat_wait,
                depends=list(depends),
                retry_until=(
                    FOREVER_DATE if retry_until is None else self.now + max(retry_until, 0)
                ),
            ),
            self.now,
        )
        assert (saved is not None) == expected_saved
        self.step_done()

    @precondition(has_jobs)
    @rule(number=st.integers(0, 10**6), priority=st.sampled_from([-5, 0, 5]))
    def resave(self, number: int, priority: int) -> None:
        """Save an existing job again (only a paused one is updated, SPEC 4 jobSave)."""
        job_id = self.pick([number])[0]
        handle = self.jc.get_job(job_id)
        assert handle is not None
        if handle.status not in ("waiting", "paused"):
            return  # jobSave accepts only these statuses in the document
        handle.priority(priority)
        outcome = handle.save()
        if self.model.resave(job_id, priority, self.now):
            assert outcome == job_id
        else:
            assert outcome is None
        self.step_done()

    @rule(
        types=st.sampled_from([["a"], ["b"], ["a", "b"]]),
        max_jobs=st.integers(1, 4),
        work_timeout=st.sampled_from([None, None, 1000]),
    )
    def get_work(self, types: list[str], max_jobs: int, work_timeout: int | None) -> None:
        expected = self.model.claimable(types, max_jobs)
        jobs = self.jc.get_work(types, max_jobs=max_jobs, work_timeout=work_timeout)
        ids = [j.id for j in jobs]
        assert len(ids) == len(set(ids)), "a job was handed out twice in one getWork"
        assert ids == expected
        run_ids = {j.run_id for j in jobs}
        assert len(run_ids) <= 1, "one getWork call must use one runId"
        assert all(j.status == "running" for j in jobs)
        if jobs:
            run_id = run_ids.pop()
            assert run_id is not None
            self.model.claim(ids, run_id, self.now, work_timeout)
            self.handles.extend(jobs)
        self.step_done()

    @precondition(has_handles)
    @rule(which=st.integers(0, 10**6))
    def done(self, which: int) -> None:
        handle = self.handles.pop(which % len(self.handles))
        assert handle.id is not None
        assert handle.run_id is not None
        m = self.model.running(handle.id, handle.run_id)
        outcome = handle.done({"ok": True}, repeat_id=True)
        if m is None:
            assert outcome is False
        else:
            repeat_wait = self.model.complete(m)
            if repeat_wait is None:
                assert outcome is True
            else:
                assert isinstance(outcome, str), f"expected a repeat id, got {outcome!r}"
                self.model.copy(m, outcome, self.now, m.repeats - 1, self.now + repeat_wait)
            self.model.resolve_dependents(m.id, self.now)
        self.step_done()

    @precondition(has_handles)
    @rule(which=st.integers(0, 10**6), fatal=st.booleans())
    def fail(self, which: int, fatal: bool) -> None:
        handle = self.handles.pop(which % len(self.handles))
        assert handle.id is not None
        assert handle.run_id is not None
        m = self.model.running(handle.id, handle.run_id)
        ok = handle.fail({"value": "boom"}, fatal=fatal)
        assert ok is (m is not None)
        if m is not None:
            self.model.fail_run(m, self.now, fatal)
        self.step_done()

    @precondition(has_jobs)
    @rule(numbers=picks)
    def pause(self, numbers: list[int]) -> None:
        ids = self.pick(numbers)
        assert self.jc.pause_jobs(ids) is self.model.pause(ids)
        self.step_done()

    @precondition(has_jobs)
    @rule(numbers=picks)
    def resume(self, numbers: list[int]) -> None:
        ids = self.pick(numbers)
        assert self.jc.resume_jobs(ids) is self.model.resume(ids, self.now)
        self.step_done()

    @precondition(has_jobs)
    @rule(numbers=picks, force=st.booleans(), everything=st.integers(0, 4).map(lambda n: n == 0))
    def ready(self, numbers: list[int], force: bool, everything: bool) -> None:
        if everything:
            real = self.jc.ready_jobs(None, force=force)
            expected = self.model.ready(self.now, None, force)
        else:
            ids = self.pick(numbers)
            if len(ids) == 1:
                handle = self.jc.get_job(ids[0])
                assert handle is not None
                real = handle.ready(force=force)
            else:
                real = self.jc.ready_jobs(ids, force=force)
            expected = self.model.ready(self.now, ids, force)
        assert real is expected
        self.step_done()

    @precondition(has_jobs)
    @rule(numbers=picks, antecedents=st.booleans(), dependents=st.booleans())
    def cancel(self, numbers: list[int], antecedents: bool, dependents: bool) -> None:
        ids = self.pick(numbers)
        real = self.jc.cancel_jobs(ids, antecedents=antecedents, dependents=dependents)
        assert real is self.model.cancel(ids, antecedents, dependents)
        self.step_done()

    @precondition(has_jobs)
    @rule(
        numbers=picks,
        retries=st.integers(0, 2),
        antecedents=st.booleans(),
        dependents=st.booleans(),
    )
    def restart(
        self, numbers: list[int], retries: int, antecedents: bool, dependents: bool
    ) -> None:
        ids = self.pick(numbers)
        real = self.jc.restart_jobs(
            ids, retries=retries, antecedents=antecedents, dependents=dependents
        )
        expected = self.model.restart(ids, self.now, retries, antecedents, dependents)
        assert real is expected
        self.step_done(restarted=True)

    @precondition(has_jobs)
    @rule(numbers=picks)
    def remove(self, numbers: list[int]) -> None:
        ids = self.pick(numbers)
        assert self.jc.remove_jobs(ids) is self.model.remove(ids)
        self.step_done()

    @precondition(has_jobs)
    @rule(number=st.integers(0, 10**6), repeats=st.integers(0, 1), wait=st.sampled_from([0, 1000]))
    def rerun(self, number: int, repeats: int, wait: int) -> None:
        job_id = self.pick([number])[0]
        handle = self.jc.get_job(job_id)
        assert handle is not None
        outcome = handle.rerun(repeats=repeats, wait=wait)
        old = self.model.jobs[job_id]
        if old.status != "completed":
            assert outcome is False
        else:
            assert isinstance(outcome, str), f"rerun returned {outcome!r}"
            self.model.copy(old, outcome, self.now, repeats, self.now + wait)
        self.step_done()

    @rule(ms=st.sampled_from([1, 999, 1001, 2000, 300_000, 1_000_000]))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        self.step_done()

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def run_ids_only_while_running_or_completed(self) -> None:
        for doc in self.jc.manager.find():
            if doc["status"] in ("running", "completed"):
                assert doc["runId"] is not None, f"{doc['status']} job {doc['_id']} has no runId"
            else:
                assert doc["runId"] is None, f"{doc['status']} job {doc['_id']} has a runId"

    @invariant()
    def finished_jobs_stay_finished(self) -> None:
        statuses = {doc["_id"]: doc["status"] for doc in self.jc.manager.find()}
        for job_id, before in self.before.items():
            after = statuses.get(job_id)
            if after is None or before not in FINISHED:
                continue
            if before == "completed" or not self.restarted:
                assert after == before, f"{job_id} went from {before} back to {after}"
            else:
                assert after in (before, "waiting", "ready"), f"{job_id}: {before} -> {after}"
        self.before = statuses


# 150 random walks of up to 40 steps: seconds on a quiet machine, more on a loaded one, so
# this test gets more than the suite's default timeout (which is for catching hangs).
@pytest.mark.timeout(600)
def test_random_walks(db_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The random walks, on each kind of storage (a fresh database per walk)."""
    monkeypatch.setattr(JobStateMachine, "kind", kind_named(db_kind))
    run_state_machine_as_test(
        JobStateMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- deterministic examples of rules the random walk depends on ----------------------------------


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("bugs", db, clock=ManualClock())
    collection.start_job_server()
    yield collection
    collection.close()


def _status(jc: JobCollection, job: Job) -> str:
    assert job.refresh()
    return job.status


def test_completed_job_keeps_the_run_id_of_its_run(jc: JobCollection) -> None:
    job = jc.job("t", {})
    job.save()
    [run] = jc.get_work("t")
    assert run.run_id is not None
    assert run.done() is True
    assert run.run_id is not None  # the worker's own copy keeps it too
    assert job.refresh()
    assert job.status == "completed"
    assert job.run_id == run.run_id


def test_get_work_orders_by_retry_until_before_after(jc: JobCollection) -> None:
    late = jc.job("t", {"name": "late"})
    late.save()
    jc.manager.clock.advance(10)  # type: ignore[attr-defined]
    soon = jc.job("t", {"name": "soon"}).retry(1, until=jc.now_ms() + 60_000)
    soon.save()
    [first] = jc.get_work("t")
    assert first.data == {"name": "soon"}  # equal priority, earlier retryUntil wins


def test_final_failure_cascades_through_cancelled_dependent(jc: JobCollection) -> None:
    a = jc.job("a", {})
    a.save()
    b = jc.job("b", {}).depends([a])
    b.save()
    c = jc.job("c", {}).depends([b])
    c.save()
    assert jc.cancel_jobs([b.id or ""], antecedents=False, dependents=False)
    assert _status(jc, c) == "waiting"
    [run] = jc.get_work("a")
    assert run.fail("broken", fatal=True)
    assert _status(jc, a) == "failed"
    assert _status(jc, b) == "cancelled"
    assert _status(jc, c) == "cancelled"  # left waiting forever on a cancelled antecedent


def test_removing_antecedent_cancels_unfinished_dependents(jc: JobCollection) -> None:
    a = jc.job("a", {})
    a.save()
    b = jc.job("b", {}).depends([a])
    b.save()
    c = jc.job("c", {}).depends([b])
    c.save()
    finished = jc.job("d", {}).depends([a])
    finished.save()
    assert jc.ready_jobs([finished.id or ""], force=True)
    [run] = jc.get_work("d")
    assert run.done()
    assert jc.cancel_jobs([a.id or ""], antecedents=False, dependents=False)
    assert jc.remove_jobs([a.id or ""])
    assert jc.get_job(a.id or "") is None
    assert _status(jc, b) == "cancelled"
    assert _status(jc, c) == "cancelled"  # the cancel cascades to dependents
    assert _status(jc, finished) == "completed"  # finished dependents are left alone
    log = jc.get_job(b.id or "", get_log=True)
    assert log is not None
    assert "Antecedent removed" in [e["message"] for e in log.doc["log"]]
