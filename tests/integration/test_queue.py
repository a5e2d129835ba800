"""JobQueue semantics (SPEC 6.2) with real workers on SQLite: threads, coroutines, processes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _workers
import pytest

import jobcollection.storage.sqlite as sqlite_storage
from jobcollection.api._queue_options import QueueOptions
from jobcollection.api.collection import AsyncJobCollection, JobCollection
from jobcollection.api.job import AsyncJob, Job
from jobcollection.errors import JobValidationError

WAIT_S = 15.0  # upper bound of every wait loop


def wait_until(predicate: Callable[[], object], timeout: float = WAIT_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


async def await_until(
    predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("queue", db)
    collection.start_job_server()
    yield collection
    collection.close()


def save(jc: JobCollection, job_type: str, count: int, **data: Any) -> list[str]:
    ids = jc.save_jobs([jc.job(job_type, {"n": n, **data}) for n in range(count)])
    assert all(ids)
    return [i for i in ids if i]


def statuses(jc: JobCollection, ids: list[str]) -> dict[str, str]:
    return {job.id or "": job.status for job in jc.get_jobs(ids)}


def all_in(jc: JobCollection, ids: list[str], *wanted: str) -> bool:
    return set(statuses(jc, ids).values()) <= set(wanted)


def doc(jc: JobCollection, job_id: str, **options: bool) -> dict[str, Any]:
    job = jc.get_job(job_id, **options)
    assert job is not None
    return job.doc


def messages(jc: JobCollection, job_id: str) -> list[str]:
    return [entry["message"] for entry in doc(jc, job_id, get_log=True)["log"]]


class Gate:
    """Blocks workers until opened; counts concurrent invocations."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.calls: list[Any] = []

    def enter(self, item: Any) -> None:
        with self.lock:
            self.calls.append(item)
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def blocking_worker(self, job: Job) -> str:
        self.enter(job)
        try:
            if not self.open.wait(WAIT_S):
                raise TimeoutError("gate never opened")
            return "passed"
        finally:
            self.leave()


# -- plain function workers (threads) -----------------------------------------------------------


def test_return_value_completes_job_and_non_dicts_are_wrapped(jc: JobCollection) -> None:
    plain = save(jc, "plain", 3)
    as_dict = save(jc, "dict", 2)
    q1 = jc.process_jobs("plain", lambda job: job.data["n"] * 10)
    q2 = jc.process_jobs("dict", lambda job: {"echo": job.data["n"], "nested": {"k": [1, 2]}})
    wait_until(lambda: all_in(jc, plain + as_dict, "completed"), what="all completed")
    for n, job_id in enumerate(plain):
        assert doc(jc, job_id)["result"] == {"value": n * 10}
    for n, job_id in enumerate(as_dict):
        assert doc(jc, job_id)["result"] == {"echo": n, "nested": {"k": [1, 2]}}
    # A worker returning None completes with an empty result object.
    nothing = save(jc, "none", 1)
    q3 = jc.process_jobs("none", lambda job: None)
    wait_until(lambda: all_in(jc, nothing, "completed"))
    assert doc(jc, nothing[0])["result"] == {}
    for q in (q1, q2, q3):
        q.shutdown(quiet=True)


def test_raising_worker_fails_job_with_type_message_and_traceback(jc: JobCollection) -> None:
    def worker(job: Job) -> None:
        raise ValueError(f"bad input {job.data['n']}")

    ids = save(jc, "boom", 2)
    q = jc.process_jobs("boom", worker)
    wait_until(lambda: all_in(jc, ids, "failed"), what="jobs failed")
    q.shutdown(quiet=True)
    for n, job_id in enumerate(ids):
        d = doc(jc, job_id, get_failures=True)
        assert len(d["failures"]) == 1
        failure = d["failures"][0]
        assert failure["value"] == f"bad input {n}"
        assert failure["type"] == "ValueError"
        assert "Traceback" in failure["traceback"]
        assert "ValueError: bad input" in failure["traceback"]
        assert "in worker" in failure["traceback"]  # names the worker's own frame
        assert failure["runId"]
        assert f"Job Failed with Fatal Error: bad input {n}." in messages(jc, job_id)


def test_raising_worker_with_retries_runs_again(jc: JobCollection) -> None:
    attempts: list[int] = []

    def worker(job: Job) -> str:
        attempts.append(job.doc["retried"])
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "second try works"

    job = jc.job("flaky", {}).retry(1, wait=0)
    job_id = job.save()
    assert job_id
    q = jc.process_jobs("flaky", worker)
    wait_until(lambda: all_in(jc, [job_id], "completed"), what="retry completed")
    q.shutdown(quiet=True)
    d = doc(jc, job_id, get_failures=True)
    assert attempts == [1, 2]
    assert d["result"] == {"value": "second try works"}
    assert [f["value"] for f in d["failures"]] == ["first try fails"]


def test_worker_calling_done_itself_is_not_completed_twice(jc: JobCollection) -> None:
    outcomes: list[object] = []
    done_calls: list[object] = []
    stop = jc.events("jobDone", done_calls.append)

    def worker(job: Job) -> str:
        outcomes.append(job.done({"by": "worker"}))
        return "ignored return value"

    ids = save(jc, "self", 3)
    q = jc.process_jobs("self", worker)
    wait_until(lambda: all_in(jc, ids, "completed"))
    q.shutdown(quiet=True)
    stop()
    assert outcomes == [True, True, True]
    assert len(done_calls) == 3  # one jobDone per job: the return value was not sent again
    for job_id in ids:
        assert doc(jc, job_id)["result"] == {"by": "worker"}
        assert messages(jc, job_id).count("Job Completed") == 1


def test_worker_calling_fail_itself_is_not_completed(jc: JobCollection) -> None:
    def worker(job: Job) -> str:
        job.fail({"value": "given up"}, fatal=True)
        return "ignored"

    ids = save(jc, "selffail", 2)
    q = jc.process_jobs("selffail", worker)
    wait_until(lambda: all_in(jc, ids, "failed"))
    q.shutdown(quiet=True)
    for job_id in ids:
        d = doc(jc, job_id, get_failures=True)
        assert [f["value"] for f in d["failures"]] == ["given up"]
        assert "result" not in d


def test_payload_above_one_gives_lists(jc: JobCollection) -> None:
    batches: list[Any] = []
    lock = threading.Lock()

    def worker(jobs: list[Job]) -> dict[str, int]:
        with lock:
            batches.append(jobs)
        return {"size": len(jobs)}

    ids = save(jc, "batch", 7)
    q = jc.process_jobs("batch", worker, payload=3)
    wait_until(lambda: all_in(jc, ids, "completed"))
    # A lone job still arrives in a list when payload > 1.
    lone = save(jc, "batch", 1)
    wait_until(lambda: all_in(jc, lone, "completed"))
    q.shutdown(quiet=True)
    assert all(isinstance(b, list) for b in batches)
    assert all(1 <= len(b) <= 3 for b in batches)
    assert sorted(j.id for b in batches for j in b) == sorted(ids + lone)
    assert [len(b) for b in batches][-1] == 1
    for b in batches:
        for job in b:
            assert isinstance(job, Job)
            assert job.id is not None
            assert doc(jc, job.id)["result"] == {"size": len(b)}


def test_payload_one_gives_single_jobs(jc: JobCollection) -> None:
    seen: list[object] = []
    ids = save(jc, "single", 3)
    q = jc.process_jobs("single", seen.append, payload=1)
    wait_until(lambda: all_in(jc, ids, "completed"))
    q.shutdown(quiet=True)
    assert len(seen) == 3
    assert all(isinstance(job, Job) for job in seen)


def test_concurrency_bound_is_respected(jc: JobCollection) -> None:
    gate = Gate()
    full_seen: list[bool] = []

    def worker(job: Job) -> str:
        gate.enter(job)
        try:
            time.sleep(0.05)
            full_seen.append(q.full())
            return "ok"
        finally:
            gate.leave()

    q = jc.process_jobs("conc", worker, concurrency=3)
    ids = save(jc, "conc", 12)
    wait_until(lambda: all_in(jc, ids, "completed"))
    q.shutdown(quiet=True)
    assert gate.max_active == 3
    assert any(full_seen)
    assert len(gate.calls) == 12


def test_concurrency_zero_runs_nothing(jc: JobCollection) -> None:
    ran: list[object] = []
    q = jc.process_jobs("zero", ran.append, concurrency=0, poll_interval=100)
    ids = save(jc, "zero", 2)
    time.sleep(0.4)  # several polls
    assert ran == []
    assert all_in(jc, ids, "ready")  # nothing was even claimed
    assert q.full()
    assert q.idle()
    q.shutdown(quiet=True)


def test_length_running_idle_full_and_prefetch(jc: JobCollection) -> None:
    gate = Gate()
    q = jc.process_jobs("pre", gate.blocking_worker, concurrency=1, prefetch=2)
    assert q.idle()
    assert q.length() == 0
    assert q.running() == 0
    assert not q.full()
    ids = save(jc, "pre", 5)
    # One invocation runs, `prefetch` more jobs are claimed and held locally.
    wait_until(lambda: q.running() == 1 and q.length() == 2, what="1 running + 2 prefetched")
    assert q.full()
    assert not q.idle()
    time.sleep(0.2)  # nothing more is fetched while the queue is full
    assert q.length() == 2
    counts = statuses(jc, ids)
    assert sorted(counts.values()) == ["ready", "ready", "running", "running", "running"]
    gate.open.set()
    wait_until(lambda: all_in(jc, ids, "completed"))
    wait_until(q.idle, what="queue idle")
    assert not q.full()
    assert gate.max_active == 1
    q.shutdown(quiet=True)


def test_pause_resume_trigger(jc: JobCollection) -> None:
    ran: list[str] = []
    q = jc.process_jobs("pr", lambda job: ran.append(job.id), poll_interval=0)
    assert q.pause() is q
    time.sleep(0.1)  # let the fetch that started with the queue come back empty
    ids = save(jc, "pr", 2)
    assert q.trigger() is q  # does nothing while paused
    time.sleep(0.3)
    assert ran == []
    assert all_in(jc, ids, "ready")
    assert q.resume() is q
    wait_until(lambda: all_in(jc, ids, "completed"), what="completed after resume")
    assert q.resume() is q  # no-op when already running
    assert q.trigger() is q
    more = save(jc, "pr", 1)
    wait_until(lambda: all_in(jc, more, "completed"))
    q.shutdown(quiet=True)
    assert sorted(ran) == sorted(ids + more)


def test_pause_lets_running_work_finish_and_holds_queued_jobs(jc: JobCollection) -> None:
    gate = Gate()
    q = jc.process_jobs("hold", gate.blocking_worker, concurrency=1, prefetch=1)
    ids = save(jc, "hold", 3)
    wait_until(lambda: q.running() == 1 and q.length() == 1)
    q.pause()
    gate.open.set()
    wait_until(lambda: q.running() == 0, what="running invocation finished")
    time.sleep(0.2)
    assert q.length() == 1  # queued work waits while paused
    assert sorted(statuses(jc, ids).values()) == ["completed", "ready", "running"]
    q.resume()
    wait_until(lambda: all_in(jc, ids, "completed"))
    q.shutdown(quiet=True)


def test_work_timeout_does_not_fail_a_slow_but_live_worker(jc: JobCollection) -> None:
    """The queue renews the run while the worker is busy (issue 4): only a dead worker's
    job expires (tests/integration/test_queue_keepalive.py has that side)."""
    late: list[object] = []

    def slow(job: Job) -> None:
        time.sleep(1.0)  # silent for longer than the work timeout
        late.append(job.done())

    q = jc.process_jobs("slow", slow, work_timeout=300)
    [job_id] = save(jc, "slow", 1)
    wait_until(lambda: late, what="the slow worker to finish")
    q.shutdown(quiet=True)
    assert late == [True]
    assert doc(jc, job_id)["status"] == "completed"


def test_raising_batch_worker_fails_every_job_of_the_batch(jc: JobCollection) -> None:
    def worker(jobs: list[Job]) -> None:
        raise ValueError("batch broke")

    q = jc.process_jobs("badbatch", worker, payload=3)
    ids = save(jc, "badbatch", 3)
    wait_until(lambda: all_in(jc, ids, "failed"))
    q.shutdown(quiet=True)
    for job_id in ids:
        assert [f["value"] for f in doc(jc, job_id, get_failures=True)["failures"]] == [
            "batch broke"
        ]


@pytest.mark.sqlite_only(
    reason="another connection holds SQLite's write lock past a short busy timeout"
)
def test_get_work_error_goes_to_error_callback_and_trigger_fetches_again(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_storage, "BUSY_TIMEOUT_MS", 200)  # fail fast while locked
    errors: list[object] = []
    with JobCollection("queue", db) as jc:
        jc.start_job_server()
        q = jc.process_jobs("locked", _noop, poll_interval=0, error_callback=errors.append)
        q.pause()
        time.sleep(0.1)  # the fetch made at start has come back
        [job_id] = save(jc, "locked", 1)
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            q.resume()  # fetches at once, and the fetch fails
            wait_until(lambda: errors, what="an error report")
            other.execute("ROLLBACK")
        finally:
            other.close()
        time.sleep(0.3)
        # No poll timer and no change since: the job waits until someone asks again.
        assert statuses(jc, [job_id]) == {job_id: "ready"}
        q.trigger()
        wait_until(lambda: all_in(jc, [job_id], "completed"), what="job run after trigger()")
        q.shutdown(quiet=True)
    message = str(errors[0])
    assert message.startswith("Received error from getWork(): ")
    assert "locked" in message


def test_work_timeout_is_passed_to_get_work(jc: JobCollection) -> None:
    seen: list[dict[str, Any]] = []

    def worker(job: Job) -> None:
        seen.append(dict(job.doc))

    ids = save(jc, "wt", 2)
    q = jc.process_jobs("wt", worker, work_timeout=7000)
    wait_until(lambda: all_in(jc, ids, "completed"))
    q.shutdown(quiet=True)
    assert len(seen) == 2
    for d in seen:
        assert d["workTimeout"] == 7000
        assert d["expiresAfter"] - d["updated"] == 7000


# -- shutdown levels ----------------------------------------------------------------------------


def _busy_queue(jc: JobCollection, job_type: str, gate: Gate) -> tuple[Any, list[str]]:
    """A queue with one invocation blocked in the worker and two jobs queued locally."""
    q = jc.process_jobs(job_type, gate.blocking_worker, concurrency=1, prefetch=2)
    ids = save(jc, job_type, 3)
    wait_until(lambda: q.running() == 1 and q.length() == 2, what="1 running, 2 queued")
    return q, ids


def _shutdown_in_thread(q: Any, level: str) -> threading.Thread:
    thread = threading.Thread(target=q.shutdown, args=(level, True), daemon=True)
    thread.start()
    return thread


def test_shutdown_soft_finishes_queued_work(jc: JobCollection) -> None:
    gate = Gate()
    q, ids = _busy_queue(jc, "soft", gate)
    thread = _shutdown_in_thread(q, "soft")
    time.sleep(0.2)
    assert thread.is_alive()  # waits for the running invocation
    gate.open.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert all_in(jc, ids, "completed")
    assert len(gate.calls) == 3


def test_shutdown_soft_returns_at_once_when_idle(jc: JobCollection) -> None:
    q = jc.process_jobs("idle", lambda job: None)
    started = time.monotonic()
    q.shutdown("soft", quiet=True)
    assert time.monotonic() - started < 2


def test_shutdown_soft_of_paused_queue_with_nothing_running_returns(jc: JobCollection) -> None:
    gate = Gate()
    q = jc.process_jobs("softpaused", gate.blocking_worker, concurrency=1, prefetch=1)
    save(jc, "softpaused", 2)
    wait_until(lambda: q.running() == 1 and q.length() == 1)
    q.pause()
    gate.open.set()
    wait_until(lambda: q.running() == 0)
    thread = _shutdown_in_thread(q, "soft")
    try:
        thread.join(2)
        assert not thread.is_alive(), "soft shutdown hangs"
    finally:
        if thread.is_alive():  # a hard shutdown escalates the waiting one, so we can close
            q.shutdown("hard", quiet=True)
            thread.join(WAIT_S)


def test_shutdown_normal_of_paused_queue_fails_queued_jobs(jc: JobCollection) -> None:
    gate = Gate()
    q = jc.process_jobs("normpaused", gate.blocking_worker, concurrency=1, prefetch=1)
    ids = save(jc, "normpaused", 3)
    wait_until(lambda: q.running() == 1 and q.length() == 1)
    q.pause()
    gate.open.set()
    wait_until(lambda: q.running() == 0)
    q.shutdown("normal", quiet=True)
    assert sorted(statuses(jc, ids).values()) == ["completed", "failed", "ready"]


def test_shutdown_normal_fails_queued_jobs_after_running_ones_finish(jc: JobCollection) -> None:
    gate = Gate()
    q, ids = _busy_queue(jc, "normal", gate)
    running = gate.calls[0].id
    thread = _shutdown_in_thread(q, "normal")
    time.sleep(0.2)
    assert thread.is_alive()  # waits until running invocations finish
    gate.open.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert len(gate.calls) == 1  # queued jobs were never handed to the worker
    final = statuses(jc, ids)
    assert final[running] == "completed"
    queued = [i for i in ids if i != running]
    for job_id in queued:
        assert final[job_id] == "failed"  # default retry(0): no run left
        failures = doc(jc, job_id, get_failures=True)["failures"]
        assert [f["value"] for f in failures] == ["Worker shutdown"]


def test_shutdown_hard_fails_running_and_queued_jobs_at_once(jc: JobCollection) -> None:
    gate = Gate()
    late: list[object] = []

    def worker(job: Job) -> None:
        gate.enter(job)
        try:
            gate.open.wait(WAIT_S)
            late.append(job.done({"too": "late"}))
        finally:
            gate.leave()

    q = jc.process_jobs("hard", worker, concurrency=1, prefetch=2)
    ids = save(jc, "hard", 3)
    wait_until(lambda: q.running() == 1 and q.length() == 2)
    started = time.monotonic()
    q.shutdown("hard", quiet=True)  # returns while the worker is still blocked
    assert time.monotonic() - started < 5
    assert gate.active == 1
    final = statuses(jc, ids)
    assert set(final.values()) == {"failed"}
    for job_id in ids:
        failures = doc(jc, job_id, get_failures=True)["failures"]
        assert [f["value"] for f in failures] == ["Worker shutdown"]
    gate.open.set()
    wait_until(lambda: late, what="the worker to call done() after the hard shutdown")
    assert late == [False]  # its job was failed under it
    assert all_in(jc, ids, "failed")
    wait_until(lambda: gate.active == 0)


# -- option validation --------------------------------------------------------------------------


def _noop(job: Job) -> None:
    return None


@pytest.mark.parametrize(
    ("types", "worker", "options"),
    [
        pytest.param("t", _noop, {"concurrency": -1}, id="concurrency=-1"),
        pytest.param("t", _noop, {"concurrency": 1.5}, id="concurrency=1.5"),
        pytest.param("t", _noop, {"payload": 0}, id="payload=0"),
        pytest.param("t", _noop, {"prefetch": -1}, id="prefetch=-1"),
        pytest.param("t", _noop, {"work_timeout": -5}, id="work_timeout=-5"),
        pytest.param("t", "not callable", {}, id="worker-not-callable"),
        pytest.param("t", None, {}, id="worker-None"),
        pytest.param("t", _noop, {"concurrency": True}, id="concurrency=True"),
        pytest.param([], _noop, {}, id="types=[]"),
        pytest.param(["a", ""], _noop, {}, id="types-with-empty-string"),
        pytest.param(5, _noop, {}, id="types=5"),
    ],
)
def test_invalid_options_raise_at_once(
    jc: JobCollection, types: Any, worker: Any, options: dict[str, Any]
) -> None:
    with pytest.raises(JobValidationError):
        jc.process_jobs(types, worker, **options)


# -- coroutine workers (AsyncJobCollection) -------------------------------------------------------


async def test_coroutine_worker(db: str) -> None:
    async with AsyncJobCollection("aq", db) as ajc:
        await ajc.start_job_server()
        active = 0
        max_active = 0

        async def worker(job: AsyncJob) -> Any:
            nonlocal active, max_active
            active += 1
            max_active = max(max_active, active)
            try:
                await asyncio.sleep(0.05)
                if job.data["n"] == 0:
                    raise KeyError("missing thing")
                return job.data["n"] * 3
            finally:
                active -= 1

        jobs = [ajc.job("co", {"n": n}) for n in range(6)]
        ids = [i for i in await ajc.save_jobs(jobs) if i]
        q = await ajc.process_jobs("co", worker, concurrency=2)

        async def settled() -> bool:
            found = await ajc.get_jobs(ids)
            return {j.status for j in found} <= {"completed", "failed"}

        await await_until(settled, what="coroutine jobs settled")
        await q.shutdown(quiet=True)
        found = {j.id: j for j in await ajc.get_jobs(ids, get_failures=True)}
        assert found[ids[0]].status == "failed"
        failure = found[ids[0]].doc["failures"][0]
        assert failure["type"] == "KeyError"
        assert "missing thing" in failure["value"]
        assert "KeyError" in failure["traceback"]
        for n, job_id in enumerate(ids[1:], start=1):
            assert found[job_id].status == "completed"
            assert found[job_id].doc["result"] == {"value": n * 3}
        assert max_active == 2


async def test_coroutine_worker_payload_and_self_done(db: str) -> None:
    async with AsyncJobCollection("aq", db) as ajc:
        await ajc.start_job_server()
        batches: list[Any] = []

        async def worker(jobs: list[AsyncJob]) -> dict[str, int]:
            batches.append(jobs)
            assert await jobs[0].done({"first": 1}) is True
            return {"rest": len(jobs)}

        ids = [i for i in await ajc.save_jobs([ajc.job("cb", {"n": n}) for n in range(4)]) if i]
        q = await ajc.process_jobs("cb", worker, payload=2)

        async def completed() -> bool:
            return {j.status for j in await ajc.get_jobs(ids)} == {"completed"}

        await await_until(completed, what="batched coroutine jobs completed")
        await q.shutdown(quiet=True)
        assert all(isinstance(b, list) and len(b) <= 2 for b in batches)
        found = {j.id: j.doc for j in await ajc.get_jobs(ids)}
        assert sorted(j.id for b in batches for j in b) == sorted(ids)
        for b in batches:
            assert found[b[0].id]["result"] == {"first": 1}
            for job in b[1:]:
                assert found[job.id]["result"] == {"rest": len(b)}


async def test_async_queue_state_and_shutdown_normal(db: str) -> None:
    async with AsyncJobCollection("aq", db) as ajc:
        await ajc.start_job_server()
        release = asyncio.Event()

        async def worker(job: AsyncJob) -> str:
            await release.wait()
            return "ok"

        q = await ajc.process_jobs("an", worker, concurrency=1, prefetch=1)
        assert q.idle()
        ids = [i for i in await ajc.save_jobs([ajc.job("an", {"n": n}) for n in range(3)]) if i]
        deadline = time.monotonic() + WAIT_S
        while not (q.running() == 1 and q.length() == 1):
            assert time.monotonic() < deadline, "queue never filled"
            await asyncio.sleep(0.01)
        assert q.full()
        shutdown = asyncio.create_task(q.shutdown("normal", quiet=True))
        await asyncio.sleep(0.1)
        assert not shutdown.done()
        release.set()
        await asyncio.wait_for(shutdown, WAIT_S)
        found = sorted(j.status for j in await ajc.get_jobs(ids))
        assert found == ["completed", "failed", "ready"]


# -- process-pool workers -------------------------------------------------------------------------


def test_process_pool_worker(jc: JobCollection) -> None:
    ids = save(jc, "proc", 6)
    plain = save(jc, "procv", 2)
    bad = save(jc, "procx", 1)
    q = jc.process_jobs("proc", _workers.double, processes=2, concurrency=2)
    qv = jc.process_jobs("procv", _workers.plain_value, processes=1)
    qx = jc.process_jobs("procx", _workers.explode, processes=1)
    wait_until(lambda: all_in(jc, ids + plain, "completed"), timeout=60, what="process jobs")
    wait_until(lambda: all_in(jc, bad, "failed"), timeout=60, what="process job failed")
    for q_ in (q, qv, qx):
        q_.shutdown(quiet=True)
    pids = set()
    for job_id in ids:
        d = doc(jc, job_id)
        assert d["result"]["doubled"] == d["data"]["n"] * 2
        pids.add(d["result"]["pid"])
    assert os.getpid() not in pids
    for job_id in plain:
        d = doc(jc, job_id)
        assert d["result"] == {"value": d["data"]["n"] + 100}
    failure = doc(jc, bad[0], get_failures=True)["failures"][0]
    assert failure["type"] == "RuntimeError"
    assert failure["value"].startswith("kaboom 0 in pid")
    assert "RuntimeError: kaboom" in failure["traceback"]


def test_process_pool_payload_batches(jc: JobCollection) -> None:
    ids = save(jc, "procb", 5)
    q = jc.process_jobs("procb", _workers.batch_sizes, processes=2, payload=2, concurrency=2)
    wait_until(lambda: all_in(jc, ids, "completed"), timeout=60, what="batched process jobs")
    q.shutdown(quiet=True)
    for job_id in ids:
        result = doc(jc, job_id)["result"]
        assert 1 <= result["size"] <= 2
        assert job_id in result["ids"]
        assert len(result["ids"]) == result["size"]


def test_processes_run_that_many_jobs_at_once_unless_told_otherwise(
    jc: JobCollection, tmp_path: Path
) -> None:
    together = [Job(jc, "meet", {"n": 3, "dir": str(tmp_path)}).save() for _ in range(3)]
    q = jc.process_jobs("meet", _workers.rendezvous, processes=3)  # no concurrency given
    wait_until(lambda: all_in(jc, together, "completed"), timeout=60, what="pooled jobs")
    q.shutdown(quiet=True)
    results = [doc(jc, job_id)["result"] for job_id in together]
    assert [r["together"] for r in results] == [3, 3, 3]
    assert len({r["pid"] for r in results}) == 3
    told = QueueOptions.build("meet", _workers.rendezvous, processes=3, concurrency=2)
    assert told.concurrency == 2
    assert QueueOptions.build("meet", _workers.rendezvous).concurrency == 1


def test_coroutine_worker_cannot_use_processes(jc: JobCollection) -> None:
    async def worker(job: AsyncJob) -> None:
        return None

    with pytest.raises(JobValidationError):
        jc.process_jobs("t", worker, processes=2)
