"""End-to-end tests of the CLI acting through a server: `jobcollection --server URL --user NAME
--password-env VAR COMMAND ...` against a real `jobcollection serve` subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_run import poll

from jobcollection import JobCollection

WAIT_S = 30.0  # upper bound of every wait
USER, PASSWORD, PASSWORD_VAR = "ada", "correct horse battery", "JC_TEST_PASSWORD"
_SERVING = re.compile(r"jobcollection: serving \S+ at ws://\S+ and (http://\S+)/api")

WORKER_MODULE = """
    import os
    import pathlib
    import time

    def work(job):
        if job.data.get("block"):
            pathlib.Path(f"started-{job.id}").write_text("")
            deadline = time.monotonic() + 60
            while not pathlib.Path(f"release-{job.id}").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(job.data.get("sleep", 0))
        return {"double": job.data.get("n", 0) * 2, "pid": os.getpid(), "jc": id(job.collection)}
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def jobcollection(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jobcollection ARGS`` (bounded by a timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "jobcollection", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Served:
    """A `jobcollection serve` subprocess and a CLI that talks to it from another directory."""

    db: str
    url: str
    cwd: Path  # where the CLI runs: it must never create a database here
    process: subprocess.Popen[bytes]

    @property
    def login(self) -> tuple[str, ...]:
        return ("--server", self.url, "--user", USER, "--password-env", PASSWORD_VAR)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jobcollection", *self.login, *args]

    @property
    def env(self) -> dict[str, str]:
        return _env(**{PASSWORD_VAR: PASSWORD})

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = self.env if env is None else env
        return jobcollection(*self.login, *args, cwd=self.cwd, env=environ)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        return done.stdout

    def submit(self, job_type: str, *options: str) -> str:
        job_id = self.ok("submit", job_type, *options).strip()
        assert len(job_id) == 17, job_id
        return job_id

    def doc(self, job_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.ok("show", job_id, "--json"))
        return document

    def stored(self) -> dict[str, dict[str, Any]]:
        """The jobs as the server's database holds them, read in-process."""
        with JobCollection("queue", self.db) as jc:
            return {str(job.id): job.doc for job in jc.find()}


@pytest.fixture
def served(tmp_path: Path, db: str) -> Iterator[Served]:
    logs = tmp_path / "server"
    logs.mkdir()
    add = jobcollection(
        *("--db", db, "users", "add", USER, "--password-env", PASSWORD_VAR),
        cwd=tmp_path,
        env=_env(**{PASSWORD_VAR: PASSWORD}),
    )
    assert add.returncode == 0, add.stderr
    out, err = logs / "serve.out", logs / "serve.err"
    command = [sys.executable, "-m", "jobcollection", "serve", "--db", db, "--port", "0"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--allow", f"admin={USER}", "--promote", "1000"],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=_env(),
        )
    cwd = tmp_path / "client"
    cwd.mkdir()
    (cwd / "tasks.py").write_text(textwrap.dedent(WORKER_MODULE))
    try:
        poll(
            lambda: _SERVING.search(out.read_text()) is not None or process.poll() is not None,
            "the server to start",
        )
        found = _SERVING.search(out.read_text())
        assert found is not None, err.read_text()
        yield Served(db, found.group(1), cwd, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    assert list(cwd.glob("*.db*")) == []  # the CLI never opened a local database


# -- one-shot commands ------------------------------------------------------------------------


def test_commands_act_through_the_server(served: Served) -> None:
    first = served.submit("email", "--data", '{"to": "a@example.com"}', "--priority", "high")
    second = served.submit("email", "--depends", first)
    third = served.submit("sms", "--delay", "600000")
    stored = served.stored()
    assert set(stored) == {first, second, third}
    assert (stored[first]["priority"], stored[first]["data"]) == (-10, {"to": "a@example.com"})
    assert stored[second]["depends"] == [first]
    assert stored[third]["status"] == "waiting"

    listed = [json.loads(line) for line in served.ok("ls", "--json").splitlines()]
    assert {doc["_id"] for doc in listed} == {first, second, third}
    only_sms = served.ok("ls", "--type", "sms")  # a table
    assert third in only_sms
    assert first not in only_sms
    assert served.doc(first)["log"][0]["message"].startswith("Constructed")
    assert "a@example.com" in served.ok("show", first)
    summary = json.loads(served.ok("stats", "--json"))
    assert summary["total"] == 3
    assert (summary["by_type"]["email"]["ready"], summary["by_type"]["email"]["waiting"]) == (1, 1)
    assert summary["by_type"]["sms"]["total"] == 1

    # The options work after the command too, as --db and --collection do.
    late = jobcollection("cancel", first, *served.login, cwd=served.cwd, env=served.env)
    assert late.returncode == 0, late.stderr
    assert late.stdout == f"{first}: ok\n"
    stored = served.stored()
    assert stored[first]["status"] == "cancelled"
    assert stored[second]["status"] == "cancelled"  # with its dependents, as Job.cancel does

    assert served.ok("restart", first) == f"{first}: ok\n"
    assert served.stored()[first]["status"] == "ready"
    assert served.ok("pause", third) == f"{third}: ok\n"
    assert served.ok("resume", third) == f"{third}: ok\n"
    assert served.ok("cancel", third) == f"{third}: ok\n"
    assert served.ok("remove", third) == f"{third}: ok\n"
    assert third not in served.stored()

    missing = served.run("show", "NoSuchJobNoSuchJo")
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1
    assert "NoSuchJobNoSuchJo" in missing.stderr
    assert served.url in missing.stderr  # says where it looked


def test_other_collections_are_reached_with_collection(served: Served) -> None:
    done = served.run("--collection", "elsewhere", "ls")
    assert done.returncode == 1  # the server does not serve it
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("jobcollection: error: ")


# -- the worker -------------------------------------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text()


@pytest.fixture
def start_worker(served: Served) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(*options: str) -> Worker:
        out, err = (
            served.cwd / f"worker{len(started)}.out",
            served.cwd / f"worker{len(started)}.err",
        )
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                served.argv("worker", "tasks:work", *options),
                cwd=served.cwd,
                env=served.env,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        worker = Worker(proc, out, err)
        started.append(worker)
        poll(lambda: "serving" in out.read_text() or proc.poll() is not None, "the worker")
        assert proc.poll() is None, err.read_text()
        line = out.read_text()
        assert line.count("\n") == 1
        assert f"from server {served.url} as {USER}" in line
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def _statuses(served: Served, ids: list[str]) -> list[str]:
    stored = served.stored()
    return [stored[job_id]["status"] for job_id in ids]


def test_remote_worker_completes_jobs_and_soft_stops(
    served: Served, start_worker: Callable[..., Worker]
) -> None:
    early = served.submit("calc", "--data", '{"n": 21}')
    worker = start_worker("--type", "calc", "--concurrency", "2")
    late = [served.submit("calc", "--data", f'{{"n": {n}}}') for n in range(3)]
    ids = [early, *late]
    poll(lambda: _statuses(served, ids) == ["completed"] * 4, "jobs to complete")
    stored = served.stored()
    assert [stored[i]["result"]["double"] for i in ids] == [42, 0, 2, 4]
    assert {stored[i]["result"]["pid"] for i in ids} == {worker.proc.pid}

    blocking = served.submit("calc", "--data", '{"block": true}')
    poll((served.cwd / f"started-{blocking}").exists, "the blocking job to start")
    worker.proc.send_signal(signal.SIGINT)
    poll(lambda: "finishing" in worker.stderr(), "the soft-shutdown notice")
    with pytest.raises(subprocess.TimeoutExpired):
        worker.proc.wait(timeout=0.3)  # waits for the running job
    (served.cwd / f"release-{blocking}").write_text("")
    assert worker.proc.wait(timeout=WAIT_S) == 0, worker.stderr()
    assert _statuses(served, [blocking]) == ["completed"]
    assert "stopped" in worker.stderr()
    assert "Traceback" not in worker.stderr()


def test_remote_worker_in_processes_connects_once_per_process(
    served: Served, start_worker: Callable[..., Worker]
) -> None:
    ids = [served.submit("calc", "--data", f'{{"n": {n}, "sleep": 0.3}}') for n in range(8)]
    worker = start_worker("--type", "calc", "--processes", "2", "--concurrency", "2")
    poll(lambda: _statuses(served, ids) == ["completed"] * 8, "jobs to complete")
    results = [served.stored()[i]["result"] for i in ids]
    assert [r["double"] for r in results] == [2 * n for n in range(8)]
    pids = {r["pid"] for r in results}
    assert worker.proc.pid not in pids  # run in the pool processes
    assert len(pids) == 2
    for pid in pids:  # each process keeps one collection (one connection) for all its jobs
        assert len({r["jc"] for r in results if r["pid"] == pid}) == 1
    worker.proc.send_signal(signal.SIGINT)
    assert worker.proc.wait(timeout=WAIT_S) == 0, worker.stderr()
    assert "Traceback" not in worker.stderr()


# -- errors -----------------------------------------------------------------------------------


def _one_line(done: subprocess.CompletedProcess[str], code: int, *named: str) -> None:
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("jobcollection: error: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    for text in named:
        assert text in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_login_and_connection_failures_exit_1_and_change_nothing(served: Served) -> None:
    before = served.stored()
    wrong = served.run("submit", "t", env=_env(**{PASSWORD_VAR: "not the password"}))
    _one_line(wrong, 1, "login as 'ada' refused", "Incorrect username or password")
    anonymous = jobcollection("--server", served.url, "submit", "t", cwd=served.cwd, env=_env())
    _one_line(anonymous, 1, "not authorized")  # the rules let no one in anonymously
    unreachable = f"http://127.0.0.1:{_free_port()}"
    gone = jobcollection("--server", unreachable, "stats", cwd=served.cwd, env=_env())
    _one_line(gone, 1, unreachable, "could not connect")
    assert served.stored() == before


def test_a_missing_password_variable_exits_2_before_connecting(served: Served) -> None:
    before = served.stored()
    for argv in (["submit", "t"], ["worker", "tasks:work", "--type", "t"]):
        _one_line(
            served.run(*argv, env=_env()),
            2,
            f"--password-env: environment variable {PASSWORD_VAR!r} is not set",
        )
    _one_line(served.run("ls", env=_env(**{PASSWORD_VAR: ""})), 2, f"{PASSWORD_VAR!r} is empty")
    assert served.stored() == before


def test_a_resume_token_logs_in(served: Served) -> None:
    from jobcollection import connect

    jc = connect(served.url, username=USER, password=PASSWORD)
    try:
        token = jc.backend.client.token  # type: ignore[attr-defined]
        assert isinstance(token, str)
        done = jobcollection(
            "--server",
            served.url,
            "--token-env",
            "JC_TOKEN",
            "submit",
            "t",
            cwd=served.cwd,
            env=_env(JC_TOKEN=token),
        )
        assert done.returncode == 0, done.stderr
        assert list(served.stored()) == [done.stdout.strip()]
    finally:
        jc.close()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--server", "ws://127.0.0.1:1"], "--server: serve works on the database"),
        (["--server", "ws://127.0.0.1:1", "serve"], "--server: serve works on the database"),
        (["users", "list", "--server", "ws://127.0.0.1:1"], "--server: users works"),
        (["--server", "http://127.0.0.1:1", "users", "add", "bo", "--password", "pw"], "users"),
        (["--server", "ws://127.0.0.1:1", "--db", "x.db", "ls"], "--db: give either"),
        (["--server", "ws://127.0.0.1:1", "--token-env", "V", "--user", "ada", "ls"], "--token"),
        (["--server", "nonsense", "ls"], "--server: expected an http(s):// or ws(s):// URL"),
        (["--user", "ada", "ls"], "--user: needs --server"),
        (["--server", "ws://127.0.0.1:1", "--user", "ada", "ls"], "--user: needs --password-env"),
        (["--server", "ws://127.0.0.1:1", "--password-env", "V", "ls"], "--password-env: needs"),
        (["--password-env", "V", "users", "list"], "--password-env: only with --server"),
    ],
)
def test_server_option_usage_errors_need_no_server(
    tmp_path: Path, argv: list[str], named: str
) -> None:
    done = jobcollection(*argv, cwd=tmp_path, env=_env(V="x"))
    _one_line(done, 2, named)
    assert list(tmp_path.iterdir()) == []  # no database created
