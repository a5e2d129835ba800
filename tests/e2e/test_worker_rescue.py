"""A dead worker's jobs come back without `workTimeout`: `jobcollection worker` processes are
SIGKILLed mid-job and another process (this one, its job server started) fails their running
jobs once the heartbeat lapses, so that they are retried. Real processes, real time."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _worker_processes import WorkerProcesses
from cli_run import WAIT_S, poll

from jobcollection import JobCollection

LAPSE_MS = 1000
# How much later than the lapse the rescue may come and still count as "in time": the
# sweeper wakes at the earliest deadline it knows of, and at least once a second; the rest
# is this shared machine's scheduling.
SLACK_S = 1.5

TASKS = textwrap.dedent(
    """
    import time

    def slow(job):
        if job.data.get("once") and job.doc["retried"] > 1:
            return {"slept": False}  # a second run is quick
        time.sleep(float(job.data.get("seconds", 60)))
        return {"slept": True}
    """
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    return tmp_path


@pytest.fixture
def sweeper(db: str) -> Iterator[JobCollection]:
    """This process, with its job server started: it rescues what dead workers leave."""
    with JobCollection("queue", db) as jc:
        jc.start_job_server()
        yield jc


@pytest.fixture
def spawn(workdir: Path, db: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    workers = WorkerProcesses(workdir, db)

    def run(*args: str) -> subprocess.Popen[str]:
        return workers("tasks:slow", "--poll-interval", "100", *args)

    yield run
    workers.stop_all()


def status(jc: JobCollection, job_id: str) -> str:
    job = jc.get_job(job_id)
    assert job is not None
    return job.status


def kill_mid_job(
    sweeper: JobCollection, spawn: Callable[..., subprocess.Popen[str]], trial: int
) -> float:
    """Start a worker, SIGKILL it while it runs a job; seconds until the job was rescued."""
    job_type = f"trial{trial}"
    job_id = sweeper.job(job_type, {}).retry(3, wait=0).save()
    assert job_id
    worker = spawn("--type", job_type, "--lost-after", str(LAPSE_MS))
    poll(lambda: status(sweeper, job_id) == "running", "the worker to take the job")
    [record] = [w for w in sweeper.workers() if w.pid == worker.pid]
    assert (record.kind, record.status, record.running) == ("local", "active", 1)
    time.sleep(0.2 * (trial % 5))  # killed at another moment of its heartbeat each time
    worker.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    worker.wait(timeout=10)
    poll(lambda: status(sweeper, job_id) != "running", "the rescue")
    delay = time.monotonic() - killed
    job = sweeper.get_job(job_id, get_failures=True)
    assert job is not None
    assert job.status == "ready"  # retried per its policy (at once: retry wait 0)
    assert [f["value"] for f in job.doc["failures"]] == ["Worker lost"]
    assert record.id in job.doc["failures"][0]["message"]
    lost = next(w for w in sweeper.workers() if w.id == record.id)
    assert (lost.status, lost.running) == ("lost", 0)
    return delay


@pytest.mark.slow
def test_sigkilled_workers_jobs_are_retried_within_the_lapse(
    sweeper: JobCollection, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    delays = [kill_mid_job(sweeper, spawn, trial) for trial in range(10)]
    print(f"rescued after SIGKILL in {', '.join(f'{d:.2f}' for d in delays)} s")
    assert max(delays) < LAPSE_MS / 1000 + SLACK_S, delays


@pytest.mark.slow
def test_a_slow_worker_that_heartbeats_keeps_its_job(
    sweeper: JobCollection, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    job_id = sweeper.job("slow", {"seconds": 3.5}).save()  # three and a half lapses
    assert job_id
    worker = spawn("--type", "slow", "--lost-after", str(LAPSE_MS))
    poll(lambda: status(sweeper, job_id) == "completed", "the slow job to complete")
    job = sweeper.get_job(job_id, get_failures=True)
    assert job is not None
    assert not job.doc.get("failures")
    [record] = [w for w in sweeper.workers() if w.pid == worker.pid]
    assert record.status == "active"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=WAIT_S) == 0
    assert [w for w in sweeper.workers() if w.pid == worker.pid] == []  # unregistered


@pytest.mark.slow
def test_a_worker_started_after_the_death_rescues_too(
    db: str, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    """No other process runs a job server when the worker dies: the next worker to start
    rescues its jobs (and, here, runs them)."""
    with JobCollection("queue", db) as jc:
        job_id = jc.job("again", {"once": True}).retry(3, wait=0).save()
        assert job_id
    first = spawn("--type", "again", "--lost-after", str(LAPSE_MS))
    with JobCollection("queue", db) as jc:
        poll(lambda: status(jc, job_id) == "running", "the first worker to take the job")
    first.send_signal(signal.SIGKILL)  # it slept on its first run; the second is quick
    first.wait(timeout=10)
    time.sleep(LAPSE_MS / 1000 + 0.2)
    second = spawn("--type", "again", "--lost-after", str(LAPSE_MS))
    with JobCollection("queue", db) as jc:
        poll(lambda: status(jc, job_id) == "completed", "the second worker to finish the job")
        job = jc.get_job(job_id, get_failures=True)
        assert job is not None
        assert [f["value"] for f in job.doc["failures"]] == ["Worker lost"]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=WAIT_S) == 0
