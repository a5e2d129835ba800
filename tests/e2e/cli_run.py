"""Helpers of the end-to-end tests: run `python -m jobcollection` as a newcomer would (without
the test runner's `JOBCOLLECTION_*` settings), and wait for something with a bounded poll."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

WAIT_S = 30.0  # upper bound of every wait


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCOLLECTION_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m jobcollection ARGS`` in `cwd`; the caller checks the outcome."""
    return subprocess.run(
        [sys.executable, "-m", "jobcollection", *args],
        cwd=cwd,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_ok(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Its stdout; the command must succeed."""
    done = run_cli(cwd, *args, env=env)
    assert done.returncode == 0, f"jobcollection {' '.join(args)}: {done.stderr}"
    return done.stdout


def poll(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
