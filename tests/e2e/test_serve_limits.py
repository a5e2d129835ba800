"""`serve`'s connection limits: flags and TOML settings reach the server; bad values are
usage errors that name the setting."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobcollection.cli.errors import UsageError
from jobcollection.cli.main import build_parser
from jobcollection.cli.serve import plan_from


def _plan(tmp_path: Path, *args: str, toml: str | None = None) -> dict[str, object]:
    argv = ["serve", *args]
    if toml is not None:
        config = tmp_path / "serve.toml"
        config.write_text(toml)
        argv += ["--config", str(config)]
    return plan_from(build_parser().parse_args(argv)).limits()


def test_limits_come_from_flags_then_the_config_file(tmp_path: Path) -> None:
    assert _plan(tmp_path) == {}  # the defaults of Limits
    toml = "max_connections = 50\nhandshake_timeout = 2.5\n"
    assert _plan(tmp_path, toml=toml) == {"max_connections": 50, "handshake_timeout": 2.5}
    flags = ("--max-connections", "7", "--handshake-timeout", "0.5")
    assert _plan(tmp_path, *flags, toml=toml) == {"max_connections": 7, "handshake_timeout": 0.5}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("max_connections = 0", "max_connections must be positive"),
        ('max_connections = "many"', "max_connections must be a int"),
        ("handshake_timeout = -1", "handshake_timeout must be positive"),
        ("handshake_timeout = true", "handshake_timeout must be a number"),
    ],
)
def test_bad_limits_in_the_config_file_are_usage_errors(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        _plan(tmp_path, toml=toml)


@pytest.mark.parametrize(
    "flags",
    [
        ("--max-connections", "0"),
        ("--max-connections", "x"),
        ("--handshake-timeout", "0"),
        ("--handshake-timeout", "nan"),
        ("--handshake-timeout", "inf"),
    ],
)
def test_bad_limit_flags_are_usage_errors(flags: tuple[str, ...]) -> None:
    with pytest.raises(UsageError, match=f"^{flags[0]}: expected a positive"):
        build_parser().parse_args(["serve", *flags])


def test_serve_closes_a_silent_connection_after_its_handshake_timeout(db: str) -> None:
    command = [sys.executable, "-m", "jobcollection", "serve", "--db", db]
    command += ["--port", "0", "--handshake-timeout", "0.5"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        port = int(line.split("/api")[0].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server, nothing said
            assert 0.4 < time.monotonic() - started < 5
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def test_the_drain_timeout_comes_from_the_flag_then_the_config_file(tmp_path: Path) -> None:
    def drain(*args: str, toml: str | None = None) -> object:
        argv = ["serve", *args]
        if toml is not None:
            (tmp_path / "d.toml").write_text(toml)
            argv += ["--config", str(tmp_path / "d.toml")]
        return plan_from(build_parser().parse_args(argv)).drain_timeout

    assert drain() is None  # Server.run's default, 10 s
    assert drain(toml="drain_timeout = 30") == 30
    assert drain("--drain-timeout", "2.5", toml="drain_timeout = 30") == 2.5
    with pytest.raises(UsageError, match="drain_timeout must be positive"):
        drain(toml="drain_timeout = 0")
    with pytest.raises(UsageError, match=r"^--drain-timeout: expected a positive"):
        drain("--drain-timeout", "-1")
