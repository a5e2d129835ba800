"""`observe` and `watch`: live queries on local and remote collections alike."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ddp_harness import serving

from jobcollection import AsyncJobCollection, Job, JobCollection, ValidationError, connect
from jobcollection.core.live import JobChange
from jobcollection.server import Server


@pytest.fixture
def local(tmp_path: Path) -> Iterator[JobCollection]:
    with JobCollection("queue", db=tmp_path / "jobs.db") as jc:
        jc.allow(admin="anyone")
        jc.start_job_server()
        yield jc


@pytest.fixture(params=["local", "remote"])
def either(request: pytest.FixtureRequest, local: JobCollection) -> Iterator[JobCollection]:
    if request.param == "local":
        yield local
        return
    with serving(Server(local)) as url:
        remote = connect(url)
        try:
            yield remote
        finally:
            remote.close()


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


async def test_watch_iterates_changes(local: JobCollection, tmp_path: Path) -> None:
    async with AsyncJobCollection("queue", db=tmp_path / "jobs.db") as jc:
        changes: list[JobChange] = []

        async def follow() -> None:
            async for change in jc.watch({"type": "w"}):
                changes.append(change)
                if len(changes) == 2:
                    return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.1)
        job = jc.job("w", {})
        await job.save()
        await (await jc.get_job(job.id)).cancel()  # type: ignore[union-attr]
        await asyncio.wait_for(follower, 10)
        assert [(c.kind, c.id) for c in changes] == [("added", job.id), ("changed", job.id)]
        assert changes[1].doc is not None
        assert changes[1].doc["status"] == "cancelled"
        assert "status" in changes[1].fields


def test_blocking_watch_yields_then_ends_after_a_quiet_timeout(either: JobCollection) -> None:
    job = Job(either, "bw", {})
    job.save()
    seen = [(c.kind, c.id) for c in either.watch({"type": "bw"}, timeout=0.5)]
    assert seen == [("added", job.id)]
