"""The asyncio twin end to end: every AsyncJob operation against a real collection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jobcollection import AsyncJob, AsyncJobCollection


@pytest.fixture(params=[False, True], ids=["helper-thread", "inline"])
async def ajc(db: str, request: pytest.FixtureRequest) -> AsyncIterator[AsyncJobCollection]:
    collection = AsyncJobCollection("aio", db, run_inline=request.param)
    await collection.start_job_server()
    yield collection
    await collection.close()


async def _status(ajc: AsyncJobCollection, job_id: str) -> str:
    job = await ajc.get_job(job_id)
    assert job is not None
    return job.status


async def test_async_job_lifecycle(ajc: AsyncJobCollection) -> None:
    job = ajc.job("t", {"n": 1}).retry(2, wait=0).priority("high")
    assert await job.log("before save")  # unsaved: kept locally, sent with save()
    job_id = await job.save()
    assert job_id is not None
    assert await job.refresh(get_log=True)
    assert [e["message"] for e in job.doc["log"]][:2] == ["Constructed", "before save"]

    (work,) = await ajc.get_work("t")
    assert await work.log("working", level="success", data={"k": 1})
    assert await work.progress(5, 10)
    assert work.doc["progress"]["percent"] == 50
    assert await work.fail(RuntimeError("boom"))
    assert await _status(ajc, job_id) in ("waiting", "ready")

    (work,) = await ajc.get_work("t")
    assert await work.done({"ok": True}) is True
    assert await _status(ajc, job_id) == "completed"
    new_id = await AsyncJob(ajc, work.doc).rerun(wait=0)
    assert isinstance(new_id, str)
    stored = await ajc.get_job(job_id, get_failures=True)
    assert stored is not None
    assert stored.doc["failures"][0]["type"] == "RuntimeError"
    assert await stored.remove()
    assert await ajc.get_job(job_id) is None


async def test_async_job_control(ajc: AsyncJobCollection) -> None:
    job = ajc.job("c", {}).delay(60_000)
    job_id = await job.save()
    assert job_id is not None
    assert await job.pause()
    assert await _status(ajc, job_id) == "paused"
    assert await job.resume()
    assert not await job.ready(force=True)  # force skips dependencies, not `after`
    assert await job.ready(time=ajc.now_ms() + 120_000, force=True)
    assert await _status(ajc, job_id) == "ready"
    assert await job.cancel()
    assert await job.restart(retries=2)
    assert await _status(ajc, job_id) == "ready"
    assert await ajc.pause_jobs([job_id])
    assert await ajc.resume_jobs([job_id])
    assert await ajc.cancel_jobs([job_id])
    assert await ajc.restart_jobs([job_id])
    assert await ajc.ready_jobs() is False  # nothing waiting is due
    found = await ajc.find({"status": "ready"})
    assert [j.id for j in found] == [job_id]
    assert (await ajc.find_one({"_id": job_id})) is not None
    assert await ajc.cancel_jobs([job_id])
    assert await ajc.remove_jobs([job_id])
    assert await ajc.shutdown_job_server(timeout=1000)


async def test_async_batches_and_queue(ajc: AsyncJobCollection) -> None:
    ids = await ajc.save_jobs([ajc.job("b", {"n": n}) for n in range(6)])
    assert all(ids)
    batch = await ajc.get_work("b", max_jobs=2)
    assert await ajc.complete_jobs(batch, {"done": 1}) == [True, True]
    more = await ajc.complete_and_claim(await ajc.get_work("b"), None, "b", max_jobs=2)
    assert len(more) == 2
    for job in more:
        assert await job.done()
    seen: list[int] = []

    async def worker(job: AsyncJob) -> dict[str, int]:
        seen.append(job.data["n"])
        return {"n": job.data["n"]}

    queue = await ajc.process_jobs("b", worker, concurrency=2)
    for _ in range(500):
        if len(seen) == 1:
            break
        await asyncio.sleep(0.01)
    await queue.shutdown("soft")
    assert len(seen) == 1
    assert {s for s, _, _ in ajc.stats()} == {"completed"}
