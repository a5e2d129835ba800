"""The processes of benchmarks/scale_out.py: `jobcollection serve` processes on one database,
Python `jobcollection worker` processes and node meteor-job workers connected to them, and
the schema they share. Everything listens on 127.0.0.1; `Fleet.close()` stops it all."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobcollection.bench.server import node_modules

ROOT = "scale"
TYPE = "scale"
HERE = Path(__file__).resolve().parent
NODE_WORKER = HERE / "node" / "scale_worker.js"
SERVE_START_S = 30
_SERVING = re.compile(r"serving \S+ at (ws://127\.0\.0\.1:(\d+))/websocket")
_OURS = ("JOBCOLLECTION_", "JC_", "METEOR_TOKEN")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(extra)
    return env


@contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    """An empty schema of its own on the PostgreSQL server at `server_url`: the URL whose
    sessions use it (libpq `options`), dropped afterwards."""
    import psycopg

    schema = f"jc_scale_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            joined = f"options=-csearch_path%3D{schema}&application_name={schema}"
            yield f"{server_url}{'&' if '?' in server_url else '?'}{joined}"
        finally:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class Server:
    """One `jobcollection serve` process; `kill9()` then `start()` serves again on its port."""

    def __init__(self, name: str, db: str, folder: Path) -> None:
        self.name = name
        self.db = db
        self.folder = folder
        self.port = "0"
        self.url = ""
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process (`wait_serving` then waits for its URL)."""
        self.starts += 1
        self._out = self.folder / f"{self.name}.{self.starts}.out"
        command = [sys.executable, "-m", "jobcollection", "serve", "--db", self.db]
        command += ["--host", "127.0.0.1", "--port", self.port, "--collection", ROOT]
        command += ["--allow", "admin=anyone", "--promote", "1000"]
        with self._out.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=clean_env(),
            )  # fmt: skip

    def wait_serving(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + SERVE_START_S
        while not (found := _SERVING.search(self._out.read_text(errors="replace"))):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self._out.read_text()}")
            time.sleep(0.05)
        self.url, self.port = found.group(1), found.group(2)

    def start(self) -> None:
        self.launch()
        self.wait_serving()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


class Fleet:
    """The servers and the worker processes (their run files in `runs`)."""

    def __init__(self, db: str, folder: Path, servers: int = 3) -> None:
        self.folder = folder
        self.runs = folder / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.servers = [Server(f"server{i}", db, folder) for i in range(servers)]
        self.workers: list[subprocess.Popen[bytes]] = []
        self.served_by: dict[str, str] = {}  # a worker's run file -> its server's name
        # (a worker's name, the file saying when it connected, what such a line holds)
        self._connections: list[tuple[str, Path, str]] = []
        self._files: list[object] = []

    def start_servers(self) -> None:
        for server in self.servers:  # together: the first migrates, the others wait its lock
            server.launch()
        for server in self.servers:
            server.wait_serving()

    def python_worker(self, server: Server, concurrency: int, work_timeout_ms: int) -> None:
        command = [sys.executable, "-m", "jobcollection", "worker", "--server", server.url]
        command += ["--collection", ROOT, "--type", TYPE, "--concurrency", str(concurrency)]
        command += ["--work-timeout", str(work_timeout_ms)]
        command += ["--log-level", "info", "scale_out_worker:work"]  # info: its reconnections
        path = self.folder / f"py-{server.name}-{len(self.workers)}.log"
        self._connections.append((f"{server.name} python", path, "DDP client: reconnected"))
        log = path.open("wb")
        self._files.append(log)
        env = clean_env(SCALE_OUT_RUNS=str(self.runs), PYTHONUNBUFFERED="1")
        worker = subprocess.Popen(command, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.workers.append(worker)
        self.served_by[f"py-{worker.pid}.runs"] = server.name

    def node_worker(self, server: Server, concurrency: int, work_timeout_ms: int) -> None:
        modules = node_modules()
        node = shutil.which("node")
        if modules is None or node is None:
            raise RuntimeError(
                "node workers need node and the npm clients (tests/interop/install.sh, or "
                "$JOBCOLLECTION_NODE_MODULES); --no-node runs without them"
            )
        name = f"node-{server.name}-{len(self.workers)}"
        out = (self.runs / f"{name}.runs").open("wb")
        err = (self.folder / f"{name}.err").open("wb")
        self._files += [out, err]
        self.served_by[f"{name}.runs"] = server.name
        self._connections.append((f"{server.name} node", self.runs / f"{name}.runs", "connected"))
        command = [node, str(NODE_WORKER), f"{server.url}/websocket", ROOT, TYPE]
        command += [str(concurrency), str(work_timeout_ms)]
        env = clean_env(NODE_PATH=str(modules))
        self.workers.append(subprocess.Popen(command, stdout=out, stderr=err, env=env))

    def reconnections(self) -> dict[str, int]:
        """Each worker's reconnections so far (node: connections after the first)."""
        found = {}
        for name, path, mark in self._connections:
            lines = path.read_text(errors="replace").splitlines()
            if mark == "connected":  # node: a line of its own, the first one included
                found[name] = sum(1 for line in lines if line == mark) - 1
            else:
                found[name] = sum(1 for line in lines if mark in line)
        return found

    def dead_workers(self) -> list[str]:
        return [" ".join(map(str, w.args[:4])) for w in self.workers if w.poll() is not None]

    def close(self) -> None:
        """Workers first (SIGTERM: a soft stop), then the servers; nothing is left running."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
        for server in self.servers:
            server.stop()
        for file in self._files:
            file.close()  # type: ignore[attr-defined]
