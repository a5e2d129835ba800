"""End-to-end tests of `jobcollection worker` as a newcomer runs it: how many jobs run at once
with `--processes`, and what it prints per job (`--log-level`, one line per failed job)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

WAIT_S = 30.0

TASKS = """
    import os
    import pathlib
    import time

    def meet(job):
        # Waits until job.data["n"] jobs have started (or 10 s), returns how many had.
        pathlib.Path(f"started-{job.id}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 10
        while len(list(pathlib.Path().glob("started-*"))) < job.data["n"]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return {"together": len(list(pathlib.Path().glob("started-*"))), "pid": os.getpid()}

    def flaky(job):
        if job.data.get("fail"):
            raise ValueError(f"bad input {job.data['fail']}\\nsecond line of the message")
        return {"ok": True}
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jobcollection", "--db", "jobs.db", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def status(cwd: Path, job_id: str) -> str:
    return str(json.loads(cli(cwd, "show", job_id, "--json"))["status"])


class Worker:
    def __init__(self, cwd: Path, *args: str) -> None:
        self.out, self.err = cwd / "worker.out", cwd / "worker.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobcollection", "--db", "jobs.db", "worker", *args],
                cwd=cwd,
                env=_env(),
                stdout=out,
                stderr=err,  # files, not a terminal: what a service manager collects
            )
        poll(lambda: "serving" in self.out.read_text() or self.proc.poll() is not None, "it")
        assert self.proc.poll() is None, self.err.read_text()

    def stop(self) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=WAIT_S) == 0, self.err.read_text()
        return self.out.read_text(), self.err.read_text()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS), "utf-8")
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        started.append(Worker(tmp_path, *args))
        return started[-1]

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def test_processes_run_that_many_jobs_at_once(
    tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    ids = [cli(tmp_path, "submit", "meet", "--data", '{"n": 3}').strip() for _ in range(3)]
    worker = workers("tasks:meet", "--type", "meet", "--processes", "3", "--poll-interval", "200")
    poll(lambda: all(status(tmp_path, i) == "completed" for i in ids), "the jobs to complete")
    results = [json.loads(cli(tmp_path, "show", i, "--json"))["result"] for i in ids]
    assert [r["together"] for r in results] == [3, 3, 3]  # all three ran at the same time
    assert len({r["pid"] for r in results}) == 3
    worker.stop()
