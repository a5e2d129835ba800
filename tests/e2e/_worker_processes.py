"""`jobcollection worker` processes for the end-to-end tests: started in a folder holding the
worker module, stopped (killed if need be) when the test ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_run import clean_env


class WorkerProcesses:
    """Starts `jobcollection --db DB worker ARGS...` in `folder` (its stderr kept, for
    `communicate()`); `stop_all()` at the end."""

    def __init__(self, folder: Path, db: str) -> None:
        self.folder = folder
        self.db = db
        self.started: list[subprocess.Popen[str]] = []

    def __call__(self, *args: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "jobcollection", "--db", self.db, "worker", *args]
        proc = subprocess.Popen(
            argv,
            cwd=self.folder,
            env=clean_env(),
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
