"""Run the real npm clients against a real `jobcollection serve` process.

`Served` starts ``python -m jobcollection serve --port 0`` on a fresh database (one user, rules
from ``--allow``) and reads the URL it prints. `run_node` runs one scenario script of
``node/`` to its end; `NodeProcess` runs one in the background and lets the test act while it
observes. Scripts print one JSON object per line; both keep those lines as ``events``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node_clients import NODE_DIR, require_node
from node_clients import skip_without_node as skip_without_node  # for the tests

ROOT = "myJobQueue"
USER, PASSWORD, EMAIL = "ada", "correct horse battery staple", "ada@example.com"
NODE_TIMEOUT_S = 60  # every node process is killed after this (the scripts stop themselves at 45)
SERVE_START_S = 30
_SERVING = re.compile(r"jobcollection: serving (\S+) at (ws://\S+/websocket) and (http://\S+/api)")
_OUR_ENV = ("METEOR_TOKEN", "JC_", "JOBCOLLECTION_DB")


def cli(db: str, *args: str) -> str:
    """Run ``python -m jobcollection --db DB ARGS``; returns stdout (stripped), asserts exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "jobcollection", "--db", db, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        check=False,
    )
    assert done.returncode == 0, f"jobcollection {' '.join(args)}: {done.stderr}{done.stdout}"
    return done.stdout.strip()


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OUR_ENV)}
    env.update(extra or {})
    return env


class Served:
    """A `jobcollection serve` subprocess on 127.0.0.1 and a free port, on database `db` (a
    fresh one), with user `ada`; its output goes to `tmp`; ``options`` are more `serve`
    options. `restart` serves again on the same port."""

    def __init__(self, tmp: Path, db: str, *rules: str, options: tuple[str, ...] = ()) -> None:
        self.db = db
        self.user_id = cli(self.db, "users", "add", USER, "--password", PASSWORD, "--email", EMAIL)
        self._out = tmp / "serve.out"
        self._err = tmp / "serve.err"
        self._command = [sys.executable, "-m", "jobcollection", "serve", "--db", self.db]
        self._command += ["--host", "127.0.0.1", "--collection", ROOT, "--promote", "1000"]
        for rule in rules or (f"admin={USER}",):
            self._command += ["--allow", rule]
        self._command += options
        self.starts = 0
        self._start("0")

    def _start(self, port: str) -> None:
        self.starts += 1
        with self._out.open("w") as out, self._err.open("a") as err:
            self.process = subprocess.Popen(
                [*self._command, "--port", port],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_clean_env(),
            )
        self.ws_url, self.http_url = self._wait_serving()

    def restart(self) -> None:
        """SIGTERM (a graceful stop), then serve again on the same port."""
        port = self.http_url.rsplit(":", 1)[1].split("/")[0]
        self.stop()
        assert self.process.returncode == 0, self.output()
        self._start(port)

    def _wait_serving(self) -> tuple[str, str]:
        deadline = time.monotonic() + SERVE_START_S
        while time.monotonic() < deadline:
            found = _SERVING.search(self._out.read_text(encoding="utf-8"))
            if found:
                assert found.group(1) == ROOT, found.group(0)
                assert found.group(2).startswith("ws://127.0.0.1:"), found.group(0)
                return found.group(2), found.group(3)
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"jobcollection serve did not start: {self.output()}")

    def output(self) -> str:
        return f"stdout: {self._out.read_text()!r} stderr: {self._err.read_text()!r}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _events(lines: list[str]) -> list[dict[str, Any]]:
    events = []
    for line in lines:
        if line.startswith("{"):
            event = json.loads(line)
            if isinstance(event, dict) and "event" in event:
                events.append(event)
    return events


@dataclass
class NodeRun:
    """What one scenario printed."""

    script: str
    returncode: int | None
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"node {self.script} exited {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    def ok(self) -> NodeRun:
        assert self.returncode == 0, self.describe()
        return self

    def all(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == name]

    def one(self, name: str) -> dict[str, Any]:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name!r} event\n{self.describe()}"
        return found[0]


def node_env(
    account: str | None = USER, password: str | None = PASSWORD, **extra: str
) -> dict[str, str]:
    env = {"JC_ROOT": ROOT, "JC_TIMEOUT_MS": str((NODE_TIMEOUT_S - 15) * 1000), **extra}
    if account is not None:
        env["JC_ACCOUNT"] = account
    if password is not None:
        env["JC_PASSWORD"] = password
    return env


def run_node(script: str, served: Served, *args: str, env: dict[str, str] | None = None) -> NodeRun:
    """Run ``node/SCRIPT URL ARGS`` to its end (stdin closed: any prompt fails the run)."""
    command = [require_node(), str(NODE_DIR / script), served.ws_url, *args]
    try:
        done = subprocess.run(
            command,
            cwd=NODE_DIR,
            env=_clean_env(node_env() if env is None else env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as timeout:
        out, err = (_text(timeout.stdout), _text(timeout.stderr))
        pytest.fail(f"node {script} killed after {NODE_TIMEOUT_S} s\n{out}\n{err}")
    return NodeRun(
        script, done.returncode, done.stdout, done.stderr, _events(done.stdout.split("\n"))
    )


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


class NodeProcess:
    """A scenario running in the background; `wait_for` an event, act, then `finish`."""

    def __init__(self, script: str, served: Served, *args: str, env: dict[str, str]) -> None:
        self.script = script
        self.process = subprocess.Popen(
            [require_node(), str(NODE_DIR / script), served.ws_url, *args],
            cwd=NODE_DIR,
            env=_clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._stderr: list[str] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            for event in _events([line]):
                self._queue.put(event)
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def wait_for(self, name: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                break
            if event["event"] == name:
                return event
        self.kill()
        pytest.fail(f"no {name!r} event from node {self.script}\n{self.result().describe()}")

    def seen(self, name: str) -> list[dict[str, Any]]:
        """The ``name`` events printed so far (the process may still run)."""
        return [event for event in _events(list(self.lines)) if event["event"] == name]

    def finish(self, timeout: float = NODE_TIMEOUT_S) -> NodeRun:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"node {self.script} still running after {timeout} s\n{self.result().describe()}"
            )
        return self.result()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """Never leave a node process behind (a failed assertion, a timeout)."""
        self.kill()
        self.result()

    def result(self) -> NodeRun:
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        stdout = "".join(self.lines)
        return NodeRun(
            self.script,
            self.process.returncode,
            stdout,
            "".join(self._stderr),
            _events(stdout.split("\n")),
        )
