"""Both backends behave the same: every test here runs against a collection on a database
(`LocalBackend`) and against the same collection through `jobcollection serve` (`connect()`,
`RemoteBackend`). Where they differ by design (what only the server configures), the
difference is pinned here too.

Each test gets `local` (the collection on the database, which the server serves) and `either`
(the collection under test: `local` itself, or a remote one logged in as an admin).
"""

from __future__ import annotations

import asyncio
import io
import pickle
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from jobcollection import (
    AsyncJob,
    AsyncJobCollection,
    Job,
    JobCollection,
    JobCollectionError,
    ValidationError,
    connect,
    connect_async,
)
from jobcollection.core.live import JobChange
from jobcollection.engine.manager import JobManager

LOGIN = {"username": "ada", "password": "s3cret"}
BACKENDS = ["local", "remote"]


@pytest.fixture
def local(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as jc:
        jc.allow(admin="users")
        jc.start_job_server()
        yield jc


@pytest.fixture(params=BACKENDS)
def either(request: pytest.FixtureRequest, local: JobCollection) -> Iterator[JobCollection]:
    if request.param == "local":
        yield local
        return
    remote = connect(request.getfixturevalue("url"), **LOGIN)
    try:
        yield remote
    finally:
        remote.close()


@pytest.fixture(params=BACKENDS)
async def either_async(
    request: pytest.FixtureRequest, local: JobCollection, db: str
) -> AsyncIterator[AsyncJobCollection]:
    if request.param == "local":
        jc = AsyncJobCollection("queue", db=db)
        await jc.start_job_server()
    else:
        url = request.getfixturevalue("url")
        jc = await asyncio.to_thread(connect_async, url, **LOGIN)
    try:
        yield jc
    finally:
        await jc.close()


def wait_for(predicate: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def status(jc: JobCollection, job_id: str | None) -> str | None:
    """The stored status of a job (None: no such job)."""
    assert job_id is not None
    found = jc.get_job(job_id)
    return None if found is None else found.status


def statuses(jc: JobCollection, job_type: str) -> set[str]:
    return {job.status for job in jc.find({"type": job_type})}


# -- saving and reading -------------------------------------------------------------------------


def test_save_get_find_count_stats(either: JobCollection, local: JobCollection) -> None:
    job = Job(either, "mail", {"to": "ada"}).priority("high").retry(3, wait=1000).delay(60_000)
    job_id = job.save()
    assert job_id is not None
    assert job.id == job_id
    stored = local.get_job(job_id)
    assert stored is not None
    fetched = either.get_job(job_id, get_log=True)
    assert fetched is not None
    assert (fetched.doc["priority"], fetched.doc["retries"], fetched.status) == (-10, 4, "waiting")
    assert fetched.doc["after"] == stored.doc["after"]  # times are int ms on both
    assert isinstance(fetched.doc["log"][0]["time"], int)
    assert fetched.data == {"to": "ada"}
    assert either.get_job("no-such-job") is None
    later = [Job(either, "sms", {"n": n}) for n in range(3)]
    for one in later:
        one.save()
    assert [j.id for j in either.find({"status": "waiting"})] == [job_id]
    assert [j.id for j in either.find({"type": "sms"})] == [j.id for j in later]
    newest = either.find({"type": "sms"}, 2, newest_first=True)
    assert [j.id for j in newest] == [later[2].id, later[1].id]
    found = either.find_one({"type": {"$in": ["mail"]}})
    assert found is not None
    assert found.id == job_id
    pair = [str(later[0].id), job_id]
    assert {j.id for j in either.get_jobs(pair)} == set(pair)
    assert either.count() == 4
    assert either.count({"type": "sms"}, at_most=2) == 2
    assert either.stats() == [("ready", "sms", 3), ("waiting", "mail", 1)]
    assert either.root == "queue"
    assert abs(either.now_ms() - local.now_ms()) < 5_000


def test_a_job_through_its_life(either: JobCollection, local: JobCollection) -> None:
    job = Job(either, "life", {}).retry(1, wait=0).delay(60_000)
    job.save()
    assert job.pause()
    assert status(either, job.id) == "paused"
    assert job.resume()
    assert status(either, job.id) == "waiting"
    assert not job.ready()  # not due yet
    assert job.ready(time=job.doc["after"])
    assert job.refresh()
    assert job.status == "ready"
    [work] = either.get_work("life")
    assert work.id == job.id
    assert work.status == "running"
    assert work.log("working", level="info")
    assert work.progress(1, 2)
    assert work.done({"ok": True})
    assert job.refresh(get_log=True)
    assert (job.status, job.run_id, job.doc["result"]) == ("completed", work.run_id, {"ok": True})
    assert any(entry["message"] == "working" for entry in job.doc["log"])
    rerun_id = job.rerun(wait=0)
    assert isinstance(rerun_id, str)
    assert rerun_id != job.id
    assert status(either, rerun_id) == "ready"
    [again] = either.get_work("life")
    assert again.fail("broken", fatal=True)
    assert status(either, rerun_id) == "failed"
    assert again.restart()
    assert status(either, rerun_id) in ("waiting", "ready")
    assert again.cancel()
    assert status(either, rerun_id) == "cancelled"
    assert again.remove()
    assert either.get_job(rerun_id) is None
    assert local.get_job(rerun_id) is None


def test_ready_at_a_time_and_dependencies(either: JobCollection) -> None:
    first = Job(either, "dep", {})
    first.save()
    second = Job(either, "dep", {}).depends([first])
    second.save()
    assert second.refresh()
    assert second.status == "waiting"
    [work] = either.get_work("dep")
    assert work.id == first.id
    work.done()
    wait_for(lambda: second.refresh() and second.status == "ready")
    late = Job(either, "late", {}).delay(3_600_000)
    late.save()
    assert not late.ready(time=late.doc["after"] - 1)  # not due at that time
    assert late.ready(time=late.doc["after"])
    assert late.refresh()
    assert late.status == "ready"
    blocked = Job(either, "dep", {}).depends([late])
    blocked.save()
    assert not blocked.ready()  # its antecedent has not completed
    assert blocked.ready(force=True)
    assert blocked.refresh()
    assert blocked.status == "ready"


# -- batches ------------------------------------------------------------------------------------


def test_batches(either: JobCollection, local: JobCollection) -> None:
    ids = [str(i) for i in either.save_jobs([Job(either, "bulk", {"n": n}) for n in range(40)])]
    assert len(ids) == 40
    assert all(ids)
    assert [j.id for j in either.get_jobs([i for i in ids if i])] == ids
    assert either.pause_jobs(ids)
    assert statuses(local, "bulk") == {"paused"}
    assert either.resume_jobs(ids)
    assert either.cancel_jobs(ids)
    assert statuses(local, "bulk") == {"cancelled"}
    assert either.restart_jobs(ids)
    claimed = either.get_work("bulk", max_jobs=40)
    assert sorted(str(j.id) for j in claimed) == sorted(ids)
    assert either.complete_jobs(claimed, {"all": True}) == [True] * 40
    assert statuses(local, "bulk") == {"completed"}
    assert either.remove_jobs(ids)
    assert local.find({"type": "bulk"}) == []
    delayed = [
        str(i)
        for i in either.save_jobs([Job(either, "later", {}).delay(3_600_000) for _ in range(3)])
    ]
    assert not either.ready_jobs(delayed)
    assert either.ready_jobs(delayed, force=True, time=either.now_ms() + 3_600_000)
    assert statuses(local, "later") == {"ready"}


def test_complete_and_claim(either: JobCollection) -> None:
    either.save_jobs([Job(either, "cc", {"n": n}) for n in range(4)])
    first = either.get_work("cc", max_jobs=2)
    second = either.complete_and_claim(first, {"ok": 1}, "cc", max_jobs=2)
    assert len(second) == 2
    assert not {j.id for j in first} & {j.id for j in second}
    assert {status(either, j.id) for j in first} == {"completed"}
    assert {status(either, j.id) for j in second} == {"running"}
    assert either.complete_and_claim(second, None, "cc") == []
    assert statuses(either, "cc") == {"completed"}


# -- errors -------------------------------------------------------------------------------------


def test_errors_are_the_same(either: JobCollection) -> None:
    bad = {**Job(either, "t", {}).doc, "priority": "urgent"}
    with pytest.raises(ValidationError, match="priority"):
        either.call("jobSave", [bad])
    broken = Job(either, "t", {})
    broken.doc["retries"] = -1
    with pytest.raises(ValidationError, match=r"^jobs\[1\]\.retries: must be an integer >= 0"):
        either.save_jobs([Job(either, "t", {}), broken])
    assert either.find({"type": "t"}) == []  # nothing saved from the bad batch
    with pytest.raises(ValidationError, match="selector"):
        either.find({"owner": "ada"})
    with pytest.raises(ValidationError):
        Job(either, "t", {"tags": {"a", "b"}}).save()  # a set cannot be stored
    with pytest.raises(ValidationError):
        either.get_job(42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        either.get_work([])
    job = Job(either, "t", {})
    job.save()
    with pytest.raises(ValidationError):
        job.log("x", level="loud")
    with pytest.raises(ValidationError, match="is not running"):
        job.done()
    assert either.find({"type": "t"})[0].status == "ready"


# -- workers ------------------------------------------------------------------------------------


def test_process_jobs_runs_and_settles_every_job(
    either: JobCollection, local: JobCollection
) -> None:
    done: list[str] = []
    lock = threading.Lock()

    def work(job: Job) -> None:
        if job.data.get("bad"):
            raise RuntimeError("bad job")
        with lock:
            done.append(str(job.id))

    ids = either.save_jobs([Job(either, "w", {"n": n}) for n in range(30)])
    failing = Job(either, "w", {"bad": True}).retry(0)
    failing.save()
    queue = either.process_jobs("w", work, concurrency=2, payload=1, poll_interval=60_000)
    try:
        wait_for(lambda: len(done) == 30 and status(local, failing.id) == "failed")
        late = Job(local, "w", {})
        late.save()  # readiness is pushed (the poll is a minute away)
        wait_for(lambda: len(done) == 31, timeout=5)
    finally:
        queue.shutdown("soft")
    assert sorted(done) == sorted(str(i) for i in [*ids, late.id])
    fetched = either.get_job(str(failing.id), get_failures=True)
    assert fetched is not None
    assert "bad job" in str(fetched.doc["failures"][-1])


def test_workers_lists_a_running_queue(either: JobCollection) -> None:
    started = threading.Event()
    release = threading.Event()

    def work(job: Job) -> None:
        started.set()
        assert release.wait(10)

    Job(either, "reg", {}).save()
    queue = either.process_jobs("reg", work, concurrency=3)
    try:
        assert started.wait(10)
        [record] = either.workers()
        assert (record.status, record.types) == ("active", ("reg",))
        assert record.kind == ("local" if either.backend.engine else "remote")
        assert record.concurrency == 3
        wait_for(lambda: either.workers()[0].running == 1)
    finally:
        release.set()
        queue.shutdown("soft")
    assert either.workers() == []  # a graceful stop unregisters


def test_a_pool_process_reopens_the_same_collection(either: JobCollection) -> None:
    job = Job(either, "pool", {})
    job.save()
    spec = pickle.loads(pickle.dumps(either.backend.child_spec()))  # as a pool gets it
    child = spec.open()
    try:
        assert (child.root, [doc["_id"] for doc in child.find({"type": "pool"})]) == (
            "queue",
            [job.id],
        )
        [work] = either.get_work("pool")
        assert child.call("jobProgress", [work.id, work.run_id, 1, 2]) is True
    finally:
        child.close()


# -- live queries -------------------------------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()

    def add(self, kind: str, job_id: str, extra: object = None) -> None:
        with self.lock:
            self.events.append((kind, job_id, extra))

    def wait(self, count: int, timeout: float = 10) -> list[tuple[str, str, object]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, self.events
            time.sleep(0.005)
        return list(self.events)


def test_observe_reports_added_changed_removed(either: JobCollection, local: JobCollection) -> None:
    before = Job(local, "mail", {})
    before.save()
    seen = Seen()
    stop = either.observe(
        {"type": "mail", "status": {"$in": ["ready", "running"]}},
        added=lambda doc: seen.add("added", doc["_id"], doc["status"]),
        changed=lambda doc, fields: seen.add("changed", doc["_id"], ("status" in fields)),
        removed=lambda job_id: seen.add("removed", job_id),
    )
    try:
        assert seen.wait(1) == [("added", before.id, "ready")]
        other = Job(local, "sms", {})
        other.save()  # another type: not reported
        later = Job(local, "mail", {})
        later.save()
        assert seen.wait(2)[1] == ("added", later.id, "ready")
        [claimed] = local.get_work("mail")  # the oldest ready mail job
        assert claimed.id == before.id
        events = seen.wait(3)
        assert events[2] == ("changed", claimed.id, True)
        claimed.done()  # completed: leaves the selector
        assert seen.wait(4)[3] == ("removed", claimed.id, None)
    finally:
        stop()
    time.sleep(0.1)
    Job(local, "mail", {}).save()
    time.sleep(0.2)
    assert len(seen.events) == 4  # stopped: nothing more


def test_observe_refuses_a_bad_selector(either: JobCollection) -> None:
    with pytest.raises(ValidationError, match="selector"):
        either.observe({"owner": "ada"})


def test_blocking_watch_yields_then_ends_after_a_quiet_timeout(either: JobCollection) -> None:
    job = Job(either, "bw", {})
    job.save()
    seen = [(c.kind, c.id) for c in either.watch({"type": "bw"}, timeout=0.5)]
    assert seen == [("added", job.id)]


def test_watch_ready_rings_for_its_types(either: JobCollection, local: JobCollection) -> None:
    rang = threading.Event()
    stop = either.watch_ready(["bell"], rang.set)
    try:
        Job(local, "other", {}).save()
        Job(local, "bell", {}).save()
        assert rang.wait(10)
    finally:
        stop()


# -- the asyncio form ---------------------------------------------------------------------------


async def test_async_collection(either_async: AsyncJobCollection, local: JobCollection) -> None:
    jc = either_async
    job = AsyncJob(jc, "async", {"x": 1})
    assert await job.save()
    fetched = await jc.get_job(str(job.id))
    assert fetched is not None
    assert fetched.data == {"x": 1}
    assert [j.id for j in await jc.find({"type": "async"})] == [job.id]
    ids = await jc.save_jobs([AsyncJob(jc, "async", {"n": n}) for n in range(3)])
    claimed = await jc.get_work("async", max_jobs=4)
    assert sorted(str(j.id) for j in claimed) == sorted(str(i) for i in [job.id, *ids])
    assert await jc.complete_jobs(claimed[:2], {"ok": True}) == [True, True]
    assert len(await jc.complete_and_claim(claimed[2:], None, "async")) == 0
    assert {j.status for j in local.find({"type": "async"})} == {"completed"}
    with pytest.raises(ValidationError, match="selector"):
        await jc.find({"owner": "ada"})


async def test_async_queue_and_watch(either_async: AsyncJobCollection) -> None:
    jc = either_async
    changes: list[JobChange] = []

    async def follow() -> None:
        async for change in jc.watch({"type": "aw"}):
            changes.append(change)
            if len(changes) == 2:
                return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    job = jc.job("aw", {})
    await job.save()

    async def work(claimed: AsyncJob) -> None:
        await claimed.done({"by": "coroutine"})

    queue = await jc.process_jobs("aw", work)
    try:
        await asyncio.wait_for(follower, 10)
    finally:
        await queue.shutdown("soft")
    assert [(c.kind, c.id) for c in changes] == [("added", job.id), ("changed", job.id)]
    assert changes[1].doc is not None
    assert changes[1].doc["status"] in ("running", "completed")  # claimed (then done)
    assert "status" in changes[1].fields
    done = await jc.get_job(str(job.id))
    assert done is not None
    deadline = time.monotonic() + 10
    while done.status != "completed" and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        await done.refresh()
    assert (done.status, done.doc["result"]) == ("completed", {"by": "coroutine"})


# -- what only a collection on a database has ---------------------------------------------------


def test_rules_log_events_and_sweep_are_the_servers(either: JobCollection) -> None:
    heard: list[str] = []
    stop = either.events("call", lambda event: heard.append(event.method))
    Job(either, "e", {}).save()
    stop()
    if either.backend.engine is not None:  # a collection on a database
        assert isinstance(either.manager, JobManager)
        assert heard == ["jobSave"]
        either.deny(jobRemove="anyone")
        either.promote(1000)
        return
    assert heard == []  # announced on the server, not here
    with pytest.raises(JobCollectionError, match="remote collection has no local engine"):
        either.manager  # noqa: B018
    attempts: list[tuple[Callable[[], object], str]] = [
        (lambda: either.allow(admin="anyone"), "allow/deny"),
        (lambda: either.deny(admin="anyone"), "allow/deny"),
        (lambda: either.promote(1000), "promote"),
        (lambda: either.set_log_stream(io.StringIO()), "the call log"),
    ]
    for attempt, what in attempts:
        with pytest.raises(JobCollectionError, match=f"^{what} is configured on the server"):
            attempt()
