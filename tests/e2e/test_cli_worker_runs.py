"""End-to-end tests of `jobcollection worker` as a newcomer runs it: how many jobs run at once
with `--processes`, and what it prints per job (`--log-level`, one line per failed job)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_run import WAIT_S, clean_env, cli_ok, poll, run_cli

from storage_support import Databases

TASKS = """
    import logging
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
        logging.getLogger("tasks").info("working on %s", job.id)
        if job.data.get("fail"):
            raise ValueError(f"bad input {job.data['fail']}\\nsecond line of the message")
        if job.data.get("self"):
            job.fail({"value": "gave up\\nafter trying"})
            return None
        return {"ok": True}
"""


@dataclass(frozen=True)
class Here:
    """Where the commands run (the folder of tasks.py) and the database they use."""

    cwd: Path
    db: str


@pytest.fixture
def here(tmp_path: Path, db: str) -> Here:
    return Here(tmp_path, db)


def cli(here: Here, *args: str) -> str:
    if args[:1] == ("--server",):
        return cli_ok(here.cwd, *args)
    return cli_ok(here.cwd, "--db", here.db, *args)


def status(here: Here, job_id: str) -> str:
    return str(json.loads(cli(here, "show", job_id, "--json"))["status"])


class Worker:
    def __init__(self, cwd: Path, where: tuple[str, ...], *args: str) -> None:
        self.out, self.err = cwd / "worker.out", cwd / "worker.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobcollection", *where, "worker", *args],
                cwd=cwd,
                env=clean_env(),
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
def workers(here: Here) -> Iterator[Callable[..., Worker]]:
    (here.cwd / "tasks.py").write_text(textwrap.dedent(TASKS), "utf-8")
    started: list[Worker] = []

    def start(*args: str, where: tuple[str, ...] = ("--db", here.db)) -> Worker:
        started.append(Worker(here.cwd, where, *args))
        return started[-1]

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def test_processes_run_that_many_jobs_at_once(here: Here, workers: Callable[..., Worker]) -> None:
    ids = [cli(here, "submit", "meet", "--data", '{"n": 3}').strip() for _ in range(3)]
    worker = workers("tasks:meet", "--type", "meet", "--processes", "3", "--poll-interval", "200")
    poll(lambda: all(status(here, i) == "completed" for i in ids), "the jobs to complete")
    results = [json.loads(cli(here, "show", i, "--json"))["result"] for i in ids]
    assert [r["together"] for r in results] == [3, 3, 3]  # all three ran at the same time
    assert len({r["pid"] for r in results}) == 3
    worker.stop()


# -- one line per failed job -------------------------------------------------------------------

_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING jobcollection\.worker: (.*)$")


def failure_lines(stderr: str) -> set[str]:
    return {m.group(1) for line in stderr.splitlines() if (m := _LINE.match(line))}


def _submit_three(here: Here, *login: str) -> tuple[str, str, str]:
    def submit(data: str) -> str:
        return cli(here, *login, "submit", "flaky", "--data", data).strip()

    return submit('{"fail": 1}'), submit("{}"), submit('{"self": 1}')


def _expected(raised: str, gave_up: str) -> set[str]:
    return {
        f"job {raised} (flaky) failed: ValueError: bad input 1",
        f"job {gave_up} (flaky) failed: gave up",
    }


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["threads", "processes"])
def test_one_line_per_failed_job_on_a_file(
    here: Here, workers: Callable[..., Worker], processes: list[str]
) -> None:
    raised, fine, gave_up = _submit_three(here)
    worker = workers("tasks:flaky", "--type", "flaky", "--poll-interval", "200", *processes)
    poll(lambda: status(here, gave_up) == "failed", "the jobs to finish")
    poll(lambda: status(here, raised) == "failed", "the jobs to finish")
    assert status(here, fine) == "completed"
    _, err = worker.stop()
    assert failure_lines(err) == _expected(raised, gave_up), err
    assert "second line" not in err  # the first line of the error only
    assert fine not in err


def test_log_level_error_hides_them_and_info_shows_the_workers_own_logs(
    here: Here, workers: Callable[..., Worker]
) -> None:
    raised, _, _ = _submit_three(here)
    quiet = workers("tasks:flaky", "--type", "flaky", "--log-level", "error")
    poll(lambda: status(here, raised) == "failed", "the job to fail")
    _, err = quiet.stop()
    assert failure_lines(err) == set()

    again = cli(here, "submit", "flaky", "--data", '{"fail": 1}').strip()
    chatty = workers("tasks:flaky", "--type", "flaky", "--log-level", "info")
    poll(lambda: status(here, again) == "failed", "the job to fail")
    _, err = chatty.stop()
    assert f"INFO tasks: working on {again}" in err
    assert f"job {again} (flaky) failed: ValueError: bad input 1" in err


def test_bad_log_level_is_refused(tmp_path: Path) -> None:
    for command in (["worker", "tasks:flaky", "--type", "t"], ["serve"]):
        done = run_cli(tmp_path, *command, "--log-level", "loud")
        assert done.returncode == 2
        assert "--log-level: invalid choice: 'loud'" in done.stderr


OPEN = ("--allow", "creator=anyone", "--allow", "worker=anyone", "--log-level", "info")


@pytest.fixture
def open_server(tmp_path: Path, dbs: Databases) -> Iterator[str]:
    """A `jobcollection serve` that lets anyone create and work on jobs."""
    out = (tmp_path / "serve.out").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobcollection",
            "serve",
            "--db",
            dbs("server"),
            "--port",
            "0",
            *OPEN,
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    serving = re.compile(r"serving \S+ at (ws://\S+)/websocket")
    try:
        poll(lambda: serving.search((tmp_path / "serve.out").read_text()) is not None, "serve")
        found = serving.search((tmp_path / "serve.out").read_text())
        assert found is not None
        yield found.group(1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        out.close()
    assert "INFO" in (tmp_path / "serve.out").read_text()  # --log-level info reached uvicorn


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["threads", "processes"])
def test_one_line_per_failed_job_through_a_server(
    here: Here, workers: Callable[..., Worker], open_server: str, processes: list[str]
) -> None:
    def remote_status(job_id: str) -> str:
        shown = cli(here, "--server", open_server, "show", job_id, "--json")
        return str(json.loads(shown)["status"])

    raised, fine, _ = _submit_three(here, "--server", open_server)
    worker = workers(
        "tasks:flaky",
        "--type",
        "flaky",
        "--poll-interval",
        "200",
        *processes,
        where=("--server", open_server),
    )
    poll(lambda: remote_status(raised) == "failed", "the job to fail")
    poll(lambda: remote_status(fine) == "completed", "the job to complete")
    _, err = worker.stop()
    # Through a server, the worker sees the exceptions its function raises.
    assert f"job {raised} (flaky) failed: ValueError: bad input 1" in failure_lines(err), err
