"""A remote worker (`connect()`) whose result cannot be sent fails the job as a local one does,
with the same error naming the value; so does a job ending with `sys.exit()`."""

from __future__ import annotations

import asyncio
import datetime
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobcollection import AsyncJob, Job, JobCollection, JobValidationError, connect, connect_async

HINT = "(a job stores JSON values, bytes and jobcollection.Date)"
WAIT_S = 15.0


def wait_until(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def save(jc: JobCollection, job_type: str, count: int = 1, **data: Any) -> list[str]:
    ids = jc.save_jobs([jc.job(job_type, {"n": n, **data}).retry(1, wait=0) for n in range(count)])
    return [i for i in ids if i]


def settled(local: JobCollection, ids: list[str]) -> bool:
    return all(job.status in ("failed", "completed") for job in local.get_jobs(ids))


def failure_values(local: JobCollection, job_id: str) -> list[str]:
    job = local.get_job(job_id, get_failures=True)
    assert job is not None
    return [f["value"] for f in job.doc.get("failures") or []]


def test_remote_done_with_an_unstorable_result_raises_before_sending(
    remote: JobCollection, local: JobCollection
) -> None:
    [job_id] = save(local, "api")
    [job] = remote.get_work("api")
    with pytest.raises(JobValidationError, match=r"^result\.value: cannot store a set"):
        job.done({1, 2})
    with pytest.raises(JobValidationError, match=r"^options\.data\.at: cannot store a datetime"):
        job.log("x", data={"at": datetime.datetime.now(datetime.UTC)})
    stored = local.get_job(job_id)
    assert stored is not None
    assert stored.status == "running"
    assert job.done({"fine": True})  # the connection was not hurt


def test_remote_worker_with_an_unstorable_result_fails_its_job(
    remote: JobCollection, local: JobCollection
) -> None:
    bad = save(local, "rbad", 2)
    good = save(local, "rbad", 2, ok=True)
    reports: list[object] = []
    queue = remote.process_jobs(
        "rbad",
        lambda job: (
            {"ok": 1} if job.data.get("ok") else {"at": datetime.datetime.now(datetime.UTC)}
        ),
        error_callback=reports.append,
    )
    wait_until(lambda: settled(local, bad + good), "every job settled")
    queue.shutdown("soft", quiet=True)
    for job_id in bad:
        assert failure_values(local, job_id) == [f"result.at: cannot store a datetime {HINT}"] * 2
    assert all(job.status == "completed" for job in local.get_jobs(good))
    assert reports == []


def test_remote_batch_with_an_unstorable_result_fails_each_job(
    remote: JobCollection, local: JobCollection
) -> None:
    ids = save(local, "rbatch", 3)
    queue = remote.process_jobs("rbatch", lambda jobs: {len(jobs)}, payload=3)
    wait_until(lambda: settled(local, ids), "the batch settled")
    queue.shutdown("soft", quiet=True)
    for job_id in ids:
        assert failure_values(local, job_id) == [f"result.value: cannot store a set {HINT}"] * 2


def test_remote_job_calling_sys_exit_fails_and_the_queue_goes_on(
    remote: JobCollection, local: JobCollection
) -> None:
    def worker(job: Job) -> None:
        if not job.data.get("ok"):
            raise SystemExit(2)

    bad = save(local, "rexit")
    good = save(local, "rexit", ok=True)
    queue = remote.process_jobs("rexit", worker)
    wait_until(lambda: settled(local, bad + good), "both settled")
    queue.shutdown("soft", quiet=True)
    assert failure_values(local, bad[0]) == ["SystemExit: 2"] * 2
    assert [job.status for job in local.get_jobs(good)] == ["completed"]


async def test_remote_coroutine_worker_with_an_unstorable_result_fails_its_job(
    url: str, local: JobCollection
) -> None:
    [job_id] = save(local, "rasync")
    ajc = connect_async(url, username="ada", password="s3cret")
    try:

        async def worker(job: AsyncJob) -> object:
            return frozenset({1})

        queue = await ajc.process_jobs("rasync", worker)
        for _ in range(int(WAIT_S * 100)):
            if settled(local, [job_id]):
                break
            await asyncio.sleep(0.01)
        await queue.shutdown("soft", quiet=True)
    finally:
        await ajc.close()
    assert failure_values(local, job_id) == [f"result.value: cannot store a frozenset {HINT}"] * 2


@pytest.mark.slow
def test_remote_pool_process_with_an_unstorable_result_fails_its_job(
    url: str, local: JobCollection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "remote_tasks.py").write_text(
        textwrap.dedent(
            """
            import sys

            def work(job):
                if job.data.get("exit"):
                    sys.exit(5)
                return {"ok": 1} if job.data.get("ok") else {3}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import remote_tasks

    bad = save(local, "rpool", 2)
    exits = save(local, "rpool", 1, exit=True)
    good = save(local, "rpool", 2, ok=True)
    jc = connect(url, username="ada", password="s3cret")
    try:
        queue = jc.process_jobs("rpool", remote_tasks.work, processes=2, concurrency=2)
        wait_until(lambda: settled(local, bad + exits + good), "every job settled")
        queue.shutdown("soft", quiet=True)
    finally:
        jc.close()
    for job_id in bad:
        assert failure_values(local, job_id) == [f"result.value: cannot store a set {HINT}"] * 2
    assert failure_values(local, exits[0]) == ["SystemExit: 5"] * 2
    assert all(job.status == "completed" for job in local.get_jobs(good))
