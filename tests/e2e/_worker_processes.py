"""`jobcollection worker` processes for the end-to-end tests: started in a folder holding the
worker module, stopped (killed if need be) when the test ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

WAIT_S = 20.0  # upper bound of every polling loop


def poll(predicate: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def cli_env() -> dict[str, str]:
    """The environment of a CLI run: ours, without a database chosen for it."""
    env = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerProcesses:
    """Starts `jobcollection --db DB worker ARGS...` in `folder` (its stderr kept, for
    `communicate()`); `stop_all()` at the end."""

    def __init__(self, folder: Path, db: Path) -> None:
        self.folder = folder
        self.db = db
        self.started: list[subprocess.Popen[str]] = []

    def __call__(self, *args: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "jobcollection", "--db", str(self.db), "worker", *args]
        proc = subprocess.Popen(
            argv,
            cwd=self.folder,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,  # (small: what the tests read at the end)
            text=True,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
