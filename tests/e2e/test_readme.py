"""Every code block of the README runs as written.

Each block is run as a newcomer would run it: shell blocks with bash, Python blocks as scripts,
the TOML block as `serve --config`'s file, the node.js block with node. What a block needs
around it (a server, a user, a password, a free port) the test provides, through the
environment the block reads (`ADA_PASSWORD`, `JOBCOLLECTION_PORT`). `test_every_block_is_run`
fails when a block is added without a test here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_run import WAIT_S, poll

from jobcollection import JobCollection
from node_clients import NODE_DIR, require_node
from storage_support import is_sqlite

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int


def _blocks() -> list[Block]:
    text = README.read_text("utf-8")
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)
    ]


# Each block is told by a line of its own; each test below runs the blocks named here.
MARKERS = {
    "setup": "pip install -e '.[test]'",
    "worker": "jobcollection worker examples.hello:greet --type greet",
    "submit": "job=$(jobcollection submit greet",
    "quick": 'jobs = JobCollection("myJobQueue", db="jobs.db")',
    "quick output": "['Constructed', 'Job Submitted',",
    "async": 'AsyncJobCollection("images", db="jobs.db")',
    "serve": "jobcollection serve --allow admin=ada --allow worker=users",
    "toml": "[collections.queue.allow]",
    "node": "require('meteor-job')",
    "server": "server = Server(emails)",
    "connect": 'jobs = connect(f"ws://127.0.0.1:{port}", "myJobQueue",',
    "scale": 'jobcollection db copy --from jobcollection.db --to "$DATABASE_URL"',
}


def block(name: str) -> Block:
    (found,) = [b for b in _blocks() if MARKERS[name] in b.text]
    return found


def test_every_block_is_run() -> None:
    for found in _blocks():
        claimed = [name for name, marker in MARKERS.items() if marker in found.text]
        assert len(claimed) == 1, f"README.md:{found.line}: a {found.lang} block run by {claimed}"


# -- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(port: int | None = None, **extra: str) -> dict[str, str]:
    """A newcomer's shell: this checkout's `jobcollection` and `python` first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBCOLLECTION_", "JC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["ADA_PASSWORD"] = PASSWORD
    if port is not None:
        env["JOBCOLLECTION_PORT"] = str(port)
    env.update(extra)
    return env


def run(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


class Background:
    """A long-running block (a worker, a server), in a process group of its own."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], name: str) -> None:
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
            )

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_for(self, text: str) -> None:
        def seen() -> bool:
            assert self.proc.poll() is None, f"it stopped:\n{self.output()}"
            return text in self.output()

        poll(seen, repr(text))

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=WAIT_S)
            raise


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    started: list[Background] = []

    def start(argv: list[str], cwd: Path, env: dict[str, str], name: str) -> Background:
        started.append(Background(argv, cwd, env, name))
        return started[-1]

    yield start
    for process in started:
        if process.proc.poll() is None:
            os.killpg(process.proc.pid, signal.SIGKILL)
            process.proc.wait(timeout=WAIT_S)


def http(url: str, body: object = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, headers, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def login(port: int) -> str:
    status, body = http(
        f"http://127.0.0.1:{port}/api/login",
        {"user": {"username": "ada"}, "password": PASSWORD},
    )
    assert status == 200, body
    token: str = body["result"]["token"]
    return token


def jobs_in(db: str, root: str = "queue") -> list[dict[str, Any]]:
    with JobCollection(root, db) as jc:
        found = [jc.get_job(str(job.id), get_log=True) for job in jc.find()]
        return [job.doc for job in found if job is not None]


@dataclass(frozen=True)
class ReadmeDb:
    url: str  # where the blocks keep their jobs
    env: dict[str, str]  # what tells the blocks so


@pytest.fixture
def readme_db(tmp_path: Path, db: str) -> ReadmeDb:
    """The database of the blocks that name none: on SQLite their default, ./jobcollection.db
    in their working directory, as a newcomer gets it; else `db`, told by $JOBCOLLECTION_DB."""
    if is_sqlite(db):
        return ReadmeDb(str(tmp_path / "jobcollection.db"), {})
    return ReadmeDb(db, {"JOBCOLLECTION_DB": db})


def add_ada(cwd: Path, env: dict[str, str], db: str) -> None:
    run(
        ["jobcollection", "--db", db, "users", "add", "ada", "--password-env", "ADA_PASSWORD"],
        cwd,
        env,
    )


def serve_block(
    cwd: Path, db: ReadmeDb, port: int, background: Callable[..., Background]
) -> tuple[Background, dict[str, str]]:
    """The README's `serve` block, running on `db` (it adds user `ada` first)."""
    env = environment(port, **db.env)
    server = background(["bash", "-c", block("serve").text], cwd, env, "serve")
    server.wait_for(f"serving queue at ws://127.0.0.1:{port}/websocket")
    return server, env


# -- Set up ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)  # a pip install into a fresh environment: ~80 s here, more when busy
def test_setup_block_installs_and_collects_the_tests_in_a_fresh_environment(
    tmp_path: Path,
) -> None:
    """The install line as written, in a fresh virtual environment; the test line as written
    too, told by the environment to only collect (this suite is what it would run)."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, environment(), timeout=120)
    env = environment(PYTEST_ADDOPTS="--collect-only -q -p no:cacheprovider")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    done = run(["bash", "-e", "-c", block("setup").text], ROOT, env, timeout=900)
    assert (venv / "bin" / "jobcollection").exists()
    collected = re.search(r"^(\d+) tests collected", done.stdout, flags=re.M)
    assert collected is not None, done.stdout[-2000:]
    assert int(collected.group(1)) > 1000


def test_worker_and_cli_blocks(
    tmp_path: Path, readme_db: ReadmeDb, background: Callable[..., Background]
) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # as in a checkout's root
    env = environment(**readme_db.env)
    worker = background(["bash", "-c", block("worker").text], tmp_path, env, "worker")
    worker.wait_for("serving greet with examples.hello:greet")
    done = run(["bash", "-e", "-c", block("submit").text], tmp_path, env)
    (job,) = jobs_in(readme_db.url)
    assert re.search(rf"^{job['_id']}\s+greet\s+", done.stdout, flags=re.M)  # ls: a table
    assert re.search(rf"^_id:\s+{job['_id']}$", done.stdout, flags=re.M)  # show: the job
    poll(lambda: jobs_in(readme_db.url)[0]["status"] == "completed", "the job")
    (job,) = jobs_in(readme_db.url)
    assert job["result"] == {"greeting": "Hello, Ada!"}
    assert worker.stop(signal.SIGINT) == 0, worker.output()  # Ctrl-C


# -- Quick example -----------------------------------------------------------------------------


def _python(code: str, cwd: Path, env: dict[str, str]) -> str:
    script = cwd / "example.py"
    script.write_text(code, "utf-8")
    return run([sys.executable, str(script)], cwd, {**env, "PYTHONWARNINGS": "error"}).stdout


@pytest.mark.sqlite_only(reason="the README's block names its SQLite file, jobs.db")
def test_quick_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    printed = _python(block("quick").text, tmp_path, environment())
    assert printed == block("quick output").text
    assert (tmp_path / "jobs.db").exists()


@pytest.mark.sqlite_only(reason="the README's block names its SQLite file, jobs.db")
def test_async_example(tmp_path: Path) -> None:
    assert _python(block("async").text, tmp_path, environment()) == "{'resized': 'a.png'}\n"


# -- Serving over the network ------------------------------------------------------------------


def test_serve_block(
    tmp_path: Path, readme_db: ReadmeDb, background: Callable[..., Background]
) -> None:
    port = free_port()
    server, _ = serve_block(tmp_path, readme_db, port, background)
    token = login(port)
    status, body = http(f"http://127.0.0.1:{port}/api/queue/startJobServer", [], token)
    assert (status, body) == (200, {"result": True})  # ada is admin
    assert server.stop() == 0, server.output()  # SIGTERM: a graceful stop


def test_toml_block_serves_what_the_command_line_uses(
    tmp_path: Path, readme_db: ReadmeDb, background: Callable[..., Background]
) -> None:
    port = free_port()
    env = environment(port, **readme_db.env)
    (tmp_path / "serve.toml").write_text(block("toml").text, "utf-8")
    add_ada(tmp_path, env, readme_db.url)
    readme = " ".join(README.read_text("utf-8").split())
    command = re.search(r"`jobcollection serve --config serve.toml`", readme)
    assert command is not None
    server = background(
        ["jobcollection", "serve", "--config", "serve.toml"], tmp_path, env, "serve"
    )
    server.wait_for(f"serving queue, emails at ws://127.0.0.1:{port}/websocket")
    submit = re.search(
        r"`(jobcollection --server ws://127\.0\.0\.1:3000 [^`]+ submit [^`]+)`", readme
    )
    assert submit is not None
    argv = ["bash", "-c", submit.group(1).replace(":3000", f":{port}")]
    saved = run(argv, tmp_path, env).stdout.strip()
    emails = run([*argv[:2], argv[2] + " --collection emails"], tmp_path, env).stdout.strip()
    assert [job["_id"] for job in jobs_in(readme_db.url)] == [saved]
    assert [job["_id"] for job in jobs_in(readme_db.url, "emails")] == [emails]
    assert server.stop() == 0, server.output()


@pytest.mark.node
def test_node_worker_block(
    tmp_path: Path, readme_db: ReadmeDb, background: Callable[..., Background]
) -> None:
    node = require_node()
    port = free_port()
    _, env = serve_block(tmp_path, readme_db, port, background)
    data = '{"address": "bozo@clowns.com"}'
    job_id = run(["jobcollection", "submit", "sendEmail", "--data", data], tmp_path, env).stdout
    (tmp_path / "worker.js").write_text(block("node").text, "utf-8")
    node_env = {**env, "NODE_PATH": str(NODE_DIR / "node_modules")}  # the pinned npm clients
    background([node, "worker.js"], tmp_path, node_env, "node")

    def completed() -> bool:
        (job,) = jobs_in(readme_db.url)
        return bool(job["status"] == "completed")

    poll(completed, "the node worker to complete the job")
    (job,) = jobs_in(readme_db.url)
    assert job["_id"] == job_id.strip()
    assert "Sending to bozo@clowns.com" in [entry["message"] for entry in job["log"]]


@pytest.mark.sqlite_only(reason="the README's block names its SQLite file, jobs.db")
def test_python_server_block(tmp_path: Path, background: Callable[..., Background]) -> None:
    port = free_port()
    env = environment(port)
    add_ada(tmp_path, env, db="jobs.db")
    (tmp_path / "server.py").write_text(block("server").text, "utf-8")
    server = background(
        [sys.executable, "server.py"], tmp_path, {**env, "PYTHONWARNINGS": "error"}, "server"
    )

    def listening() -> bool:
        assert server.proc.poll() is None, server.output()
        try:
            return http(f"http://127.0.0.1:{port}/api/openapi.json")[0] == 200
        except OSError:
            return False

    poll(listening, "the server")
    save = f"http://127.0.0.1:{port}/api/emails/jobSave"
    doc = {"type": "sendEmail", "data": {}, "status": "waiting", "priority": 0}
    assert http(save, [doc])[0] == 401  # creators must be logged in
    status, body = http(f"http://127.0.0.1:{port}/api/emails/getJob", ["x"], login(port))
    assert (status, body) == (200, {"result": None})  # the function rule lets users read
    assert server.stop() == 0, server.output()


# -- Working remotely --------------------------------------------------------------------------


def test_connect_block(
    tmp_path: Path, readme_db: ReadmeDb, background: Callable[..., Background]
) -> None:
    port = free_port()
    env = environment(port, **readme_db.env)
    add_ada(tmp_path, env, readme_db.url)
    readme = " ".join(README.read_text("utf-8").split())
    command = re.search(r"talks to `(jobcollection serve [^`]+)`", readme)
    assert command is not None
    server = background(["bash", "-c", command.group(1)], tmp_path, env, "serve")
    server.wait_for(f"serving myJobQueue at ws://127.0.0.1:{port}/websocket")
    printed = _python(block("connect").text, tmp_path, env)
    (job,) = jobs_in(readme_db.url, "myJobQueue")
    assert (job["status"], job["result"]) == ("completed", {"sent": True})
    assert f"added {job['_id']}" in printed
    assert re.search(rf"^changed {job['_id']} \(.*'status'", printed, flags=re.M), printed
    assert "failed:" not in printed
    assert server.stop() == 0, server.output()


# -- Scaling out -------------------------------------------------------------------------------


@pytest.mark.sqlite_only(reason="the block copies the SQLite file jobcollection.db itself")
def test_scale_out_block_copies_then_serves_the_postgres_database(
    tmp_path: Path, background: Callable[..., Background]
) -> None:
    from pg_support import fresh_database

    with JobCollection("queue", str(tmp_path / "jobcollection.db")) as jc:
        jc.job("greet", {"name": "Ada"}).save()
    with fresh_database() as url:
        port = free_port()
        env = environment(port, DATABASE_URL=url)
        add_ada(tmp_path, env, str(tmp_path / "jobcollection.db"))
        copy, serve = block("scale").text.strip().splitlines()
        done = run(["bash", "-e", "-c", copy], tmp_path, env)
        assert "queue: 1 job" in done.stdout
        server = background(["bash", "-c", serve], tmp_path, env, "serve")
        server.wait_for(f"serving queue at ws://127.0.0.1:{port}/websocket")
        token = login(port)  # ada came with the copy
        status, body = http(f"http://127.0.0.1:{port}/api/queue/startJobServer", [], token)
        assert (status, body) == (200, {"result": True})  # and is admin there
        assert server.stop() == 0, server.output()
        ((job,),) = [jobs_in(url)]
        assert (job["type"], job["data"]) == ("greet", {"name": "Ada"})
