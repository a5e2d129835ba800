"""With a work timeout, a queue keeps its long-running jobs alive; a dead worker's job expires."""

from __future__ import annotations

import time

from jobcollection import Job, JobCollection


def test_a_slow_but_live_worker_keeps_its_job(db: str) -> None:
    with JobCollection("keep", db=db) as jc:
        jc.start_job_server()
        job = Job(jc, "slow", {})
        job.retry(0).save()

        def slow(_: Job) -> dict[str, bool]:
            time.sleep(3.0)  # three times the work timeout
            return {"slept": True}

        # A timeout of 1 s (not less): the keepalive must beat it on a busy 2-core machine too.
        queue = jc.process_jobs("slow", slow, work_timeout=1000, poll_interval=50)
        deadline = time.monotonic() + 10
        while jc.get_job(job.id).doc["status"] == "ready" and time.monotonic() < deadline:
            time.sleep(0.01)
        while jc.get_job(job.id).doc["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        queue.shutdown("soft")
        finished = jc.get_job(job.id, get_log=True)
        assert finished is not None
        assert finished.doc["status"] == "completed", finished.doc["log"]


def test_without_reports_the_work_timeout_fails_the_run(db: str) -> None:
    with JobCollection("keep", db=db) as jc:
        jc.start_job_server()
        job = Job(jc, "slow", {})
        job.retry(0).save()
        [claimed] = jc.get_work("slow", work_timeout=200)  # a worker that then dies
        assert claimed.id == job.id
        deadline = time.monotonic() + 10
        while jc.get_job(job.id).doc["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert jc.get_job(job.id).doc["status"] == "failed"
