"""`jobcollection worker` as a real process: a job that calls `sys.exit()` fails, the worker goes
on, and SIGTERM still stops it in time (threads, asyncio and a process pool alike)."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _worker_processes import WorkerProcesses
from cli_run import WAIT_S, poll

from jobcollection import JobCollection

TASKS = textwrap.dedent(
    """
    import sys

    def exit_sync(job):
        if not job.data.get("ok"):
            sys.exit(4)
        return {"ran": True}

    async def exit_async(job):
        if not job.data.get("ok"):
            sys.exit(4)
        return {"ran": True}

    def interrupt(job):
        if not job.data.get("ok"):
            raise KeyboardInterrupt
        return {"ran": True}
    """
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    return tmp_path


@pytest.fixture
def run_worker(workdir: Path, db: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    workers = WorkerProcesses(workdir, db)

    def run(*args: str) -> subprocess.Popen[str]:
        return workers(*args, "--poll-interval", "100")

    yield run
    workers.stop_all()


def status_of(db: str, job_id: str) -> str:
    with JobCollection("queue", db) as jc:
        job = jc.get_job(job_id)
        assert job is not None
        return job.status


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        ["tasks:exit_sync"],
        ["tasks:exit_async"],
        ["tasks:interrupt"],
        ["tasks:exit_sync", "--processes", "2"],
    ],
    ids=["thread", "asyncio", "keyboard-interrupt", "process-pool"],
)
def test_a_job_calling_sys_exit_fails_and_sigterm_still_stops_the_worker(
    db: str, run_worker: Callable[..., subprocess.Popen[str]], options: list[str]
) -> None:
    with JobCollection("queue", db) as jc:
        bad = jc.job("t", {}).save()
        good = jc.job("t", {"ok": True}).save()
    assert bad
    assert good
    worker = run_worker(*options, "--type", "t")
    poll(lambda: status_of(db, bad) == "failed", "the exiting job to fail")
    poll(lambda: status_of(db, good) == "completed", "the next job to complete")
    assert worker.poll() is None  # the job's exit did not end the worker
    with JobCollection("queue", db) as jc:
        failed = jc.get_job(bad, get_failures=True)
        assert failed is not None
        assert failed.doc["failures"][0]["type"] in ("SystemExit", "KeyboardInterrupt")
    worker.send_signal(signal.SIGTERM)
    try:
        _, err = worker.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        _, err = worker.communicate(timeout=10)
        pytest.fail(f"the worker ignored SIGTERM; stderr:\n{err}")
    assert worker.returncode == 0, err
    assert "Task exception was never retrieved" not in err
    assert "Traceback" not in err
    assert "stopped" in err
