"""What a worker hands back that a job cannot take: results that cannot be stored, and jobs
that end with `sys.exit()` or another BaseException. Each such job fails (retried per its
policy) with an error that says what happened, and the queue goes on with the next job."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Callable, Iterator
from typing import Any

import _workers
import pytest
from test_queue import WAIT_S, all_in, await_until, doc, messages, wait_until

from jobcollection.api.collection import AsyncJobCollection, JobCollection
from jobcollection.api.job import AsyncJob, Job
from jobcollection.errors import JobValidationError

HINT = "(a job stores JSON values, bytes and jobcollection.Date)"


class Opaque:
    """An arbitrary object: nothing a job can store."""


UNSTORABLE: list[tuple[object, str, str]] = [
    ({1, 2}, "result.value", "a set"),
    (datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), "result.value", "a datetime"),
    (Opaque(), "result.value", "an Opaque"),
    ({"a": [1, {2}]}, "result.a[1]", "a set"),
    ([1, 2, frozenset()], "result.value[2]", "a frozenset"),
    ({("tuple", "key"): 1}, "result", "a tuple key, ('tuple', 'key')"),
]


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("queue", db)
    collection.start_job_server()
    yield collection
    collection.close()


def save_retried(jc: JobCollection, job_type: str, count: int = 1, **data: Any) -> list[str]:
    """Jobs allowed one retry, at once: a failed first run shows as a second run."""
    jobs = [jc.job(job_type, {"n": n, **data}).retry(1, wait=0) for n in range(count)]
    ids = jc.save_jobs(jobs)
    return [i for i in ids if i]


def failures(jc: JobCollection, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc(jc, job_id, get_failures=True).get("failures") or []
    return found


def reports() -> tuple[list[object], Callable[[object], None]]:
    seen: list[object] = []
    lock = threading.Lock()

    def report(problem: object) -> None:
        with lock:
            seen.append(problem)

    return seen, report


# -- results that cannot be stored ------------------------------------------------------------


@pytest.mark.parametrize(("value", "where", "what"), UNSTORABLE)
def test_a_result_that_cannot_be_stored_fails_the_job_naming_it(
    jc: JobCollection, value: object, where: str, what: str
) -> None:
    seen, report = reports()
    [job_id] = save_retried(jc, "bad")
    queue = jc.process_jobs("bad", lambda job: value, error_callback=report, poll_interval=50)
    wait_until(lambda: all_in(jc, [job_id], "failed"), what="the job failed twice")
    runs = failures(jc, job_id)
    assert [f["value"] for f in runs] == [f"{where}: cannot store {what} {HINT}"] * 2
    assert {f["type"] for f in runs} == {"JobValidationError"}
    assert len({f["runId"] for f in runs}) == 2  # retried per its policy, then failed for good
    assert doc(jc, job_id).get("result") is None
    assert f"Job Failed with Fatal Error: {where}: cannot store {what} {HINT}." in messages(
        jc, job_id
    )
    queue.shutdown("soft", quiet=True)
    assert seen == []  # every failure was recorded: nothing left to report


def test_the_queue_goes_on_after_an_unstorable_result(jc: JobCollection) -> None:
    ids = save_retried(jc, "mixed", 6)
    queue = jc.process_jobs(
        "mixed", lambda job: {1} if job.data["n"] % 2 else {"n": job.data["n"]}, poll_interval=50
    )
    wait_until(lambda: all_in(jc, ids, "failed", "completed"), what="every job settled")
    queue.shutdown("soft", quiet=True)
    for n, job_id in enumerate(ids):
        d = doc(jc, job_id)
        assert d["status"] == ("failed" if n % 2 else "completed")
        if not n % 2:
            assert d["result"] == {"n": n}


def test_a_batch_whose_result_cannot_be_stored_fails_each_job(jc: JobCollection) -> None:
    ids = save_retried(jc, "batch", 4)
    queue = jc.process_jobs("batch", lambda jobs: {len(jobs)}, payload=4, poll_interval=50)
    wait_until(lambda: all_in(jc, ids, "failed"), what="the batch failed")
    queue.shutdown("soft", quiet=True)
    for job_id in ids:
        assert [f["value"] for f in failures(jc, job_id)] == [
            f"result.value: cannot store a set {HINT}"
        ] * 2


def test_concurrent_threads_with_good_and_bad_results_each_get_their_own_outcome(
    jc: JobCollection,
) -> None:
    """Worker threads finishing together share one transaction: a bad result in it must
    neither fail the others' jobs nor leave its own running."""
    jobs = [jc.job("race", {"bad": n % 2 == 1}) for n in range(200)]
    ids = [i for i in jc.save_jobs(jobs) if i]
    queue = jc.process_jobs(
        "race", lambda job: {1} if job.data["bad"] else {"ok": 1}, concurrency=4, poll_interval=50
    )
    wait_until(lambda: all_in(jc, ids, "failed", "completed"), what="every job settled")
    queue.shutdown("soft", quiet=True)
    for job in jc.get_jobs(ids):
        assert job.status == ("failed" if job.data["bad"] else "completed"), job.id


def test_completions_combined_with_a_bad_one_are_served_alone(jc: JobCollection) -> None:
    """The engine side of the test above, made deterministic: two callers' completions in
    one combined request, one of them with a set for a result."""
    from jobcollection.engine._combiner import Request

    for _ in range(2):
        jc.job("pair", {}).save()
    good, bad = jc.get_work("pair", max_jobs=2)
    requests: list[Any] = [
        Request(([(good.id, good.run_id, {"ok": 1})], None, None)),
        Request(([(bad.id, bad.run_id, {"value": {1}})], None, None)),
    ]
    jc.manager._complete_and_claim_all(requests)
    assert requests[0].error is None
    assert requests[0].result == ({good.id: True}, [])
    assert isinstance(requests[1].error, JobValidationError)
    assert str(requests[1].error) == f"result.value: cannot store a set {HINT}"
    assert doc(jc, str(good.id))["status"] == "completed"
    assert doc(jc, str(bad.id))["status"] == "running"  # refused: nothing written


async def test_a_coroutine_worker_with_an_unstorable_result_fails_the_job(db: str) -> None:
    async with AsyncJobCollection("queue", db) as ajc:
        await ajc.start_job_server()
        job = ajc.job("async", {}).retry(1, wait=0)
        job_id = await job.save()

        async def worker(job: AsyncJob) -> object:
            await asyncio.sleep(0)
            return {"when": datetime.datetime.now(datetime.UTC)}

        queue = await ajc.process_jobs("async", worker, poll_interval=50)

        async def failed() -> bool:
            found = await ajc.get_job(str(job_id), get_failures=True)
            return found is not None and found.status == "failed"

        await await_until(failed, what="the job failed")
        await queue.shutdown("soft", quiet=True)
        found = await ajc.get_job(str(job_id), get_failures=True)
        assert found is not None
        assert [f["value"] for f in found.doc["failures"]] == [
            f"result.when: cannot store a datetime {HINT}"
        ] * 2


async def test_a_coroutine_batch_with_an_unstorable_result_fails_each(db: str) -> None:
    async with AsyncJobCollection("queue", db) as ajc:
        await ajc.start_job_server()
        ids = await ajc.save_jobs([ajc.job("abatch", {}) for _ in range(3)])

        async def worker(jobs: list[AsyncJob]) -> object:
            return Opaque()

        queue = await ajc.process_jobs("abatch", worker, payload=3, poll_interval=50)

        async def all_failed() -> bool:
            return {j.status for j in await ajc.get_jobs([i for i in ids if i])} == {"failed"}

        await await_until(all_failed, what="the batch failed")
        await queue.shutdown("soft", quiet=True)


@pytest.mark.slow
def test_a_pool_process_with_an_unstorable_result_fails_the_job(jc: JobCollection) -> None:
    bad = save_retried(jc, "pbad", 2)
    good = save_retried(jc, "pbad", 2, ok=True)
    seen, report = reports()
    queue = jc.process_jobs(
        "pbad", _workers.unstorable, processes=2, concurrency=2, error_callback=report
    )
    wait_until(lambda: all_in(jc, bad + good, "failed", "completed"), what="all settled")
    queue.shutdown("soft", quiet=True)
    for job_id in bad:
        assert [f["value"] for f in failures(jc, job_id)] == [
            f"result.value: cannot store a set {HINT}"
        ] * 2
    assert all_in(jc, good, "completed")
    assert seen == []


# -- the API itself refuses what it cannot store, and writes nothing ----------------------------


def test_done_with_an_unstorable_result_raises_and_leaves_the_job_running(
    jc: JobCollection,
) -> None:
    jc.job("api", {}).save()
    [job] = jc.get_work("api")
    before = doc(jc, str(job.id), get_log=True)
    with pytest.raises(JobValidationError, match=r"^result\.value: cannot store a set"):
        job.done({1})
    assert doc(jc, str(job.id), get_log=True) == before
    with pytest.raises(JobValidationError, match=r"^err\.when: cannot store a datetime"):
        job.fail({"when": datetime.datetime.now(datetime.UTC)})
    with pytest.raises(JobValidationError, match=r"^options\.data\.o: cannot store an Opaque"):
        job.log("note", data={"o": Opaque()})
    assert doc(jc, str(job.id), get_log=True) == before


def test_saving_unstorable_data_raises_and_saves_nothing(jc: JobCollection) -> None:
    with pytest.raises(JobValidationError, match=r"^doc\.data\.tags: cannot store a set"):
        jc.job("api", {"tags": {"a"}}).save()
    jobs = [jc.job("api", {"n": 1}), jc.job("api", {"n": {2}})]
    with pytest.raises(JobValidationError, match=r"^jobs\[1\]\.data\.n: cannot store a set"):
        jc.save_jobs(jobs)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(JobValidationError, match=r"^doc\.data\.self: cannot store a value"):
        jc.job("api", loop).save()
    assert jc.find({}) == []


def test_many_refused_completions_leave_the_queue_working(jc: JobCollection) -> None:
    ids = save_retried(jc, "after", 20, bad=True)
    queue = jc.process_jobs(
        "after", lambda job: {1} if job.data.get("bad") else {"fine": True}, concurrency=2
    )
    wait_until(lambda: all_in(jc, ids, "failed"), what="all failed")
    [last] = jc.save_jobs([jc.job("after", {})])
    wait_until(lambda: all_in(jc, [str(last)], "completed"), timeout=WAIT_S)
    queue.shutdown("soft", quiet=True)


# -- jobs that end with a BaseException ----------------------------------------------------------


def _exit(job: Job) -> None:
    raise SystemExit(3)


def _interrupt(job: Job) -> None:
    raise KeyboardInterrupt("stop it")


def _generator_exit(job: Job) -> None:
    raise GeneratorExit


BASE_EXCEPTIONS = [
    (_exit, "SystemExit", "SystemExit: 3"),
    (_interrupt, "KeyboardInterrupt", "KeyboardInterrupt: stop it"),
    (_generator_exit, "GeneratorExit", "GeneratorExit"),
]


@pytest.mark.parametrize(("worker", "kind", "value"), BASE_EXCEPTIONS)
def test_a_job_raising_a_base_exception_fails_and_the_queue_goes_on(
    jc: JobCollection, worker: Callable[[Job], None], kind: str, value: str
) -> None:
    [job_id] = save_retried(jc, "base")
    queue = jc.process_jobs("base", worker, poll_interval=50)
    wait_until(lambda: all_in(jc, [job_id], "failed"), what="the job failed twice")
    runs = failures(jc, job_id)
    assert [(f["type"], f["value"]) for f in runs] == [(kind, value)] * 2
    assert kind in runs[0]["traceback"]
    # The queue's loop is alive: it pauses, resumes and takes the next job.
    queue.pause().resume()
    [other] = jc.save_jobs([jc.job("base2", {})])
    queue2 = jc.process_jobs("base2", lambda job: None, poll_interval=50)
    wait_until(lambda: all_in(jc, [str(other)], "completed"))
    queue.shutdown("soft", quiet=True)
    queue2.shutdown("soft", quiet=True)


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt, GeneratorExit])
async def test_a_coroutine_job_raising_a_base_exception_fails(
    db: str, kind: type[BaseException]
) -> None:
    async with AsyncJobCollection("queue", db) as ajc:
        await ajc.start_job_server()
        ids = [i for i in await ajc.save_jobs([ajc.job("abase", {"n": n}) for n in range(2)]) if i]

        async def worker(job: AsyncJob) -> None:
            if job.data["n"] == 0:
                raise kind()

        queue = await ajc.process_jobs("abase", worker, poll_interval=50)

        async def settled() -> bool:
            return {j.status for j in await ajc.get_jobs(ids)} <= {"failed", "completed"}

        await await_until(settled, what="both settled")
        await queue.shutdown("soft", quiet=True)
        first, second = await ajc.get_jobs(ids, get_failures=True)
        assert (first.status, second.status) == ("failed", "completed")
        assert first.doc["failures"][0]["type"] == kind.__name__


async def test_a_coroutine_job_cancelled_from_inside_fails_without_stopping_the_queue(
    db: str,
) -> None:
    async with AsyncJobCollection("queue", db) as ajc:
        await ajc.start_job_server()
        job_id = await ajc.job("cancelled", {}).save()

        async def worker(job: AsyncJob) -> None:
            inner = asyncio.ensure_future(asyncio.sleep(10))
            inner.cancel()
            await inner  # the job lets a CancelledError out that was not meant for us

        queue = await ajc.process_jobs("cancelled", worker, poll_interval=50)

        async def failed() -> bool:
            found = await ajc.get_job(str(job_id))
            return found is not None and found.status == "failed"

        await await_until(failed, what="the job failed")
        found = await ajc.get_job(str(job_id), get_failures=True)
        assert found is not None
        assert found.doc["failures"][0]["type"] == "CancelledError"
        await queue.shutdown("soft", quiet=True)


@pytest.mark.slow
def test_a_pool_job_calling_sys_exit_fails_and_the_pool_goes_on(jc: JobCollection) -> None:
    bad = save_retried(jc, "pexit", 2)
    good = save_retried(jc, "pexit", 3, ok=True)
    queue = jc.process_jobs("pexit", _workers.exits, processes=2, concurrency=2)
    wait_until(lambda: all_in(jc, bad + good, "failed", "completed"), what="all settled")
    queue.shutdown("soft", quiet=True)
    for job_id in bad:
        assert [(f["type"], f["value"]) for f in failures(jc, job_id)] == [
            ("SystemExit", "SystemExit: 3")
        ] * 2
    assert all_in(jc, good, "completed")


@pytest.mark.slow
def test_a_pool_process_that_dies_fails_its_job_and_a_new_pool_takes_over(
    jc: JobCollection,
) -> None:
    [dead] = save_retried(jc, "pdie")
    seen, report = reports()
    queue = jc.process_jobs("pdie", _workers.dies, processes=1, error_callback=report)
    wait_until(lambda: all_in(jc, [dead], "failed"), what="the job failed twice")
    runs = failures(jc, dead)
    assert len(runs) == 2
    assert all(f["value"].startswith("its pool process died") for f in runs), runs
    good = save_retried(jc, "pdie", 2, ok=True)
    wait_until(lambda: all_in(jc, good, "completed"), what="the new pool's jobs")
    queue.shutdown("soft", quiet=True)
    assert seen == []  # each failure was recorded
