"""End-to-end tests of `jobcollection serve` and `users` as a newcomer meets them: where the
server cannot listen, what `--help` offers, and what the server says to callers it refuses."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import run_cli

from storage_support import is_sqlite


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, env=env)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 that another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_serve_on_a_port_in_use_says_so_in_one_line(
    tmp_path: Path, db: str, taken_port: int
) -> None:
    done = run("serve", "--db", db, "--port", str(taken_port), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"--port {taken_port}: 127.0.0.1:{taken_port} is already in use" in done.stderr
    assert "Traceback" not in done.stderr
    if is_sqlite(db):
        assert not Path(db).exists()  # nothing opened


def test_serve_port_in_use_from_the_config_file(tmp_path: Path, db: str, taken_port: int) -> None:
    (tmp_path / "serve.toml").write_text(f'db = "{db}"\nport = {taken_port}\n', "utf-8")
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
    tmp_path: Path, db: str, host: str, problem: str
) -> None:
    done = run("serve", "--db", db, "--host", host, "--port", "0", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert problem in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    if is_sqlite(db):
        assert not Path(db).exists()  # nothing opened


# -- what a refused or misdirected remote caller is told ---------------------------------------

RULES = ("--collection", "emails", "--allow", "admin=ada")
_SERVING = re.compile(r"jobcollection: serving \S+ at (ws://\S+)/websocket and (http://\S+)/api")


@pytest.fixture
def emails_server(tmp_path: Path, db: str) -> Iterator[tuple[str, str]]:
    """`serve` of collection `emails` only, `ada` its admin, `bob` a user without rights."""
    for user in ("ada", "bob"):
        done = run("--db", db, "users", "add", user, "--password", "pw", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    out = (tmp_path / "serve.out").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jobcollection", "serve", "--db", db, "--port", "0", *RULES],
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (found := _SERVING.search((tmp_path / "serve.out").read_text())):
            assert server.poll() is None, "serve stopped"
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        yield found.group(1), found.group(2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        out.close()


def test_remote_refusals_say_what_is_missing(
    tmp_path: Path, emails_server: tuple[str, str]
) -> None:
    ws, http = emails_server
    login = {"PW": "pw"}

    def fails(*args: str) -> str:
        done = run("--server", ws, *args, cwd=tmp_path, env=login)
        assert done.returncode == 1, done.stdout
        assert done.stderr.count("\n") == 1, done.stderr
        return done.stderr

    assert fails("--user", "ada", "--password-env", "PW", "submit", "t") == (
        "jobcollection: error: Method 'queue_jobSave' not found;"
        " this server serves collections: emails [404]\n"
    )
    assert fails("--collection", "emails", "submit", "t") == (
        "jobcollection: error: Method not authorized; no user is logged in, and emails_jobSave"
        " needs one allowed under admin, creator or jobSave\n"
    )
    assert fails("--collection", "emails", "ls") == (
        "jobcollection: error: Method not authorized; no user is logged in, and"
        " emails_jobFind needs one allowed under admin or manager\n"
    )
    assert fails(
        "--collection", "emails", "--user", "bob", "--password-env", "PW", "submit", "t"
    ) == (
        "jobcollection: error: Method not authorized;"
        " Authenticated user is not permitted to invoke this method.\n"
    )

    request = urllib.request.Request(
        f"{http}/api/emails/jobSave", b"[]", {"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(request, timeout=10)
    assert anonymous.value.code == 401
    details = json.loads(anonymous.value.read())["error"]["details"]
    assert "no user is logged in" in details
    assert "Log in with POST /api/login" in details
    wrong = urllib.request.Request(f"{http}/api/queue/jobSave", b"[]")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(wrong, timeout=10)
    assert missing.value.code == 404
    assert "this server serves collections: emails" in missing.value.read().decode()


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["users", "list"],
        ["users", "add", "ada", "--password", "pw"],
        ["users", "passwd", "ada", "--password", "pw"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_commands_that_refuse_server_do_not_offer_it(tmp_path: Path, command: list[str]) -> None:
    for shown in (run(*command[:2], "--help", cwd=tmp_path), run("users", "--help", cwd=tmp_path)):
        assert shown.returncode == 0, shown.stderr
        assert "--db" in shown.stdout
        assert "--server" not in shown.stdout
    refused = run(*command, "--server", "ws://127.0.0.1:1", cwd=tmp_path)
    assert refused.returncode == 2
    assert "works on the database itself, not through a server" in refused.stderr


@pytest.mark.parametrize("command", [["submit"], ["ls"], ["worker"], ["cancel"]], ids=" ".join)
def test_commands_that_take_server_offer_it(tmp_path: Path, command: list[str]) -> None:
    shown = run(*command, "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "--server URL" in shown.stdout


# -- where serve listens -----------------------------------------------------------------------


def test_port_comes_from_the_flag_the_config_or_the_environment(
    tmp_path: Path, db: str, taken_port: int
) -> None:
    env = {"JOBCOLLECTION_PORT": str(taken_port)}
    from_env = run("serve", "--db", db, cwd=tmp_path, env=env)
    assert from_env.returncode == 1  # it tried the port the environment named
    assert f"--port {taken_port}: 127.0.0.1:{taken_port} is already in use" in from_env.stderr
    unusable = {"JOBCOLLECTION_PORT": "http"}  # read only when nothing else names a port
    (tmp_path / "serve.toml").write_text(f"port = {taken_port}\n", "utf-8")
    from_file = run("serve", "--config", "serve.toml", "--db", db, cwd=tmp_path, env=unusable)
    assert f"--port {taken_port}: 127.0.0.1:{taken_port} is already in use" in from_file.stderr
    flag = run("serve", "--db", db, "--port", str(taken_port), cwd=tmp_path, env=unusable)
    assert f"--port {taken_port}: 127.0.0.1:{taken_port} is already in use" in flag.stderr
    bad = run("serve", "--db", db, cwd=tmp_path, env=unusable)
    assert bad.returncode == 2
    assert bad.stderr == (
        "jobcollection: error: $JOBCOLLECTION_PORT: expected a port number 0-65535, got 'http'\n"
    )
    if is_sqlite(db):
        assert not Path(db).exists()  # nothing opened
