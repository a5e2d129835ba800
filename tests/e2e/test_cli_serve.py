"""End-to-end tests of `jobcollection serve` and `users` as a newcomer meets them: where the
server cannot listen, what `--help` offers, and what the server says to callers it refuses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
    return subprocess.run(
        [sys.executable, "-m", "jobcollection", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 that another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path, taken_port: int) -> None:
    done = run("serve", "--db", "jobs.db", "--port", str(taken_port), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"--port {taken_port}: 127.0.0.1:{taken_port} is already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "jobs.db").exists()  # nothing opened


def test_serve_port_in_use_from_the_config_file(tmp_path: Path, taken_port: int) -> None:
    (tmp_path / "serve.toml").write_text(f'db = "jobs.db"\nport = {taken_port}\n', "utf-8")
    done = run("serve", "--config", "serve.toml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"127.0.0.1:{taken_port} is already in use" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("nosuch.invalid", "--host nosuch.invalid: not an address of this machine"),
        ("192.0.2.1", "--host 192.0.2.1: not an address of this machine"),  # TEST-NET-1
    ],
)
def test_serve_on_a_foreign_host_says_so_in_one_line(
    tmp_path: Path, host: str, problem: str
) -> None:
    done = run("serve", "--db", "jobs.db", "--host", host, "--port", "0", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert problem in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "jobs.db").exists()
