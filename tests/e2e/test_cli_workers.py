"""`jobcollection workers`: the registry as a table and as JSON; `--lost-after` on `worker`
and `serve`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _worker_processes import WorkerProcesses
from cli_run import WAIT_S, poll, run_cli

from storage_support import is_sqlite


def cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(workdir, *args)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text("def work(job):\n    return None\n")
    return tmp_path


@pytest.fixture
def worker(workdir: Path, db: str) -> Iterator[subprocess.Popen[str]]:
    workers = WorkerProcesses(workdir, db)
    options = ("--type", "mail", "sms", "--concurrency", "2", "--lost-after", "4000")
    yield workers("tasks:work", *options)
    workers.stop_all()


def test_workers_lists_nothing_without_workers(workdir: Path, db: str) -> None:
    done = cli(workdir, "--db", db, "workers")
    assert (done.returncode, done.stdout, done.stderr) == (0, "no workers\n", "")
    done = cli(workdir, "--db", db, "workers", "--json")
    assert (done.returncode, done.stdout) == (0, "")


@pytest.mark.slow
def test_workers_shows_a_running_worker_then_forgets_it_when_it_stops(
    workdir: Path, db: str, worker: subprocess.Popen[str]
) -> None:

    def listed() -> str:
        done = cli(workdir, "--db", db, "workers")
        assert done.returncode == 0, done.stderr
        return done.stdout

    poll(lambda: "local" in listed(), "the worker to register")
    header, row = listed().splitlines()
    assert header.split() == [
        "ID", "KIND", "STATUS", "TYPES", "CONC", "RUNNING", "WHERE", "USER", "STARTED", "SEEN"
    ]  # fmt: skip
    cells = row.split()
    where = f"{socket.gethostname()}:{worker.pid}"
    assert cells[1:7] == ["local", "active", "mail,sms", "2", "0", where]
    assert cells[7] == "-"
    assert cells[-1] == "ago"
    done = cli(workdir, "--db", db, "workers", "--json")
    [line] = done.stdout.splitlines()
    record = json.loads(line)
    assert record["kind"] == "local"
    assert (record["pid"], record["types"]) == (worker.pid, ["mail", "sms"])
    assert record["lostAfter"] == 4000
    assert set(record) == {
        "id", "kind", "status", "types", "started", "lastSeen", "lostAfter", "host", "pid",
        "concurrency", "address", "userId", "username", "running",
    }  # fmt: skip
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=WAIT_S) == 0
    assert listed() == "no workers\n"


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "tasks:work", "--type", "t", "--lost-after", "999"],
        ["worker", "tasks:work", "--type", "t", "--lost-after", "soon"],
        ["serve", "--lost-after", "0"],
        ["serve", "--lost-after", "86400001"],
    ],
)
def test_a_bad_lapse_is_one_line_and_exit_2(workdir: Path, db: str, args: list[str]) -> None:
    done = cli(workdir, "--db", db, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("jobcollection: error: --lost-after: must be a number of ms")
    assert done.stderr.count("\n") == 1
    if is_sqlite(db):
        assert not Path(db).exists()  # nothing opened


def test_a_bad_lapse_in_the_serve_config_is_refused(workdir: Path, db: str) -> None:
    (workdir / "serve.toml").write_text("lost_after = 10\n")
    done = cli(workdir, "--db", db, "serve", "--config", "serve.toml")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("jobcollection: error: config: lost_after must be a number")
