"""A peer's worker process as the harnesses run it: its output in a log file, its own process
group, a graceful stop signal and then SIGKILL to the whole group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STOP_TIMEOUT_S = 10.0  # grace for a worker to stop before its process group is killed
WAIT_POLL_S = 0.01  # how often the harness looks for the worker's stamp files
REPO_DIR = str(Path(__file__).resolve().parents[2])  # `benchmarks` imports from here


class PeerProcess:
    """``python -m MODULE ARGS...`` with `benchmarks` importable, logging to ``log_path``."""

    def __init__(
        self, name: str, args: list[str], log_path: Path, stop_signal: int = signal.SIGTERM
    ) -> None:
        self.name, self.log_path, self._stop_signal = name, log_path, stop_signal
        paths = [REPO_DIR, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self._log = log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *args],
                env=env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self._log.close()
            raise

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """The peer's graceful stop signal, then SIGKILL to the process group."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(self._stop_signal)
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            try:  # the process group: also anything it started
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc.poll() is None:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            self._log.close()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")

    def wait_text(self, path: Path, timeout: float, what: str) -> str:
        """Wait for the file ``path`` to appear (checking the process lives); its text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return path.read_text()
            self.check_alive()
            time.sleep(WAIT_POLL_S)
        raise TimeoutError(f"{self.name}: no {what} within {timeout} s\n{self.log_tail()}")
