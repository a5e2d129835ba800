"""Server figures: a real `jobcollection serve` process, measured from outside.

- method round trip (one DDP connection, sequential `getJob` calls), p50/p99;
- remote processing rate with the original's node client (meteor-job JobQueue, c4 p10);
- enqueue -> start latency for a waiting worker (node: woken by the `queue.jobs` publication or
  by the `queue.readyTypes` doorbell; Python: by the doorbell), paced as the peers' samples:
  one job at a time, the next ``LATENCY_GAP_S`` after the previous one has started;
- fan-out: one change reaching 100 subscribers;
- server RSS holding 1,000 idle DDP connections.

The node figures need the npm packages of the interop tests (`tests/interop/install.sh`); the
directory holding their node_modules is found via $JOBCOLLECTION_NODE_MODULES or next to the
checkout, and the node figures are skipped (reported as such) without it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from ..api.collection import JobCollection
from ..api.job import Job
from . import databases
from .pace import LATENCY_GAP_S, QUIET_GAP_S

_URL_LINE = re.compile(r"at (ws://\S+)/websocket")
_CONNECT = json.dumps({"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]})
_NODE_SCRIPT = Path(__file__).with_name("node") / "remote_worker.js"


class ServerProcess:
    """`jobcollection serve` on a fresh database, everything allowed to anyone."""

    def __init__(self, db: str) -> None:
        self.db = db  # a SQLite path or a PostgreSQL URL (`databases.fresh`)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobcollection",
                "serve",
                "--db",
                db,
                "--port",
                "0",
                "--allow",
                "admin=anyone",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = _URL_LINE.search(line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.ws_url = found.group(1) + "/websocket"
        self.port = int(self.ws_url.rsplit(":", 1)[1].split("/")[0])

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            kb = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
        return int(kb) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def _server() -> Iterator[ServerProcess]:
    with databases.fresh() as db:
        server = ServerProcess(db)
        try:
            yield server
        finally:
            server.stop()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "samples": len(ordered),
    }


async def _ddp(url: str) -> ClientConnection:
    ws = await connect(url, max_size=None, ping_interval=None)
    await ws.recv()  # server_id
    await ws.send(_CONNECT)
    await ws.recv()  # connected
    return ws


async def _round_trips(url: str, job_id: str, n: int) -> list[float]:
    ws = await _ddp(url)
    samples = []
    for i in range(n):
        call = json.dumps(
            {"msg": "method", "id": str(i), "method": "queue_getJob", "params": [job_id]}
        )
        started = time.perf_counter()
        await ws.send(call)
        await ws.recv()  # result
        samples.append((time.perf_counter() - started) * 1000)
        await ws.recv()  # updated
    await ws.close()
    return samples[n // 10 :]  # the first tenth warms up


def method_round_trip(server: ServerProcess, n: int = 3000) -> dict[str, float]:
    with JobCollection(db=server.db) as jc:
        job = Job(jc, "rtt", {})
        job.save()
    return _percentiles(asyncio.run(_round_trips(server.ws_url, str(job.doc["_id"]), n)))


async def _fan_out(url: str, db: str, subscribers: int, changes: int) -> list[float]:
    clients = [await _ddp(url) for _ in range(subscribers)]
    selector = {"type": "fanout"}
    for ws in clients:
        await ws.send(
            json.dumps({"msg": "sub", "id": "s", "name": "queue.jobs", "params": [selector]})
        )
        while json.loads(await ws.recv()).get("msg") != "ready":
            pass
    caller = await _ddp(url)
    samples = []
    with JobCollection(db=db) as jc:
        for n in range(changes):
            job = Job(jc, "fanout", {"n": n})
            doc = {**job.doc}
            started = time.perf_counter()
            await caller.send(
                json.dumps(
                    {
                        "msg": "method",
                        "id": str(n),
                        "method": "queue_jobSave",
                        "params": [_wire_doc(doc)],
                    }
                )
            )

            async def added(ws: ClientConnection) -> None:
                while json.loads(await ws.recv()).get("msg") != "added":
                    pass

            await asyncio.gather(*(added(ws) for ws in clients))
            samples.append((time.perf_counter() - started) * 1000)
            await caller.recv()
            await caller.recv()
    for ws in [*clients, caller]:
        await ws.close()
    return samples


def _wire_doc(doc: dict[str, Any]) -> dict[str, Any]:
    from ..core import ejson
    from ..core.wire import doc_to_wire

    encoded: dict[str, Any] = ejson.to_ejson(doc_to_wire(doc))
    return encoded


def fan_out(server: ServerProcess, subscribers: int = 100, changes: int = 20) -> dict[str, float]:
    """Time from sending a jobSave until every subscriber has its `added` message."""
    return _percentiles(asyncio.run(_fan_out(server.ws_url, server.db, subscribers, changes)))


async def _idle(url: str, n: int, server: ServerProcess) -> dict[str, float]:
    before = server.rss_mb()
    clients = []
    for _ in range(n):
        clients.append(await _ddp(url))
    await asyncio.sleep(1.0)
    after = server.rss_mb()
    for ws in clients:
        await ws.close()
    return {
        "connections": n,
        "server_rss_mb": round(after, 1),
        "server_rss_before_mb": round(before, 1),
        "per_connection_kb": round((after - before) * 1024 / n, 1),
    }


def idle_connections(server: ServerProcess, n: int = 1000) -> dict[str, float]:
    return asyncio.run(_idle(server.ws_url, n, server))


# -- node (the original's client) ----------------------------------------------------------


def node_modules() -> Path | None:
    configured = os.environ.get("JOBCOLLECTION_NODE_MODULES")
    candidates = [Path(configured)] if configured else []
    here = Path(__file__).resolve()
    candidates += [parent / "tests/interop/node/node_modules" for parent in here.parents]
    return next((c for c in candidates if (c / "meteor-job").is_dir()), None)


def _node(modules: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NODE_PATH": str(modules)}
    return subprocess.Popen(
        ["node", str(_NODE_SCRIPT), *args], stdout=subprocess.PIPE, text=True, env=env
    )


def node_processing_rate(server: ServerProcess, modules: Path, n: int = 10000) -> float:
    with JobCollection(db=server.db) as jc:
        jc.save_jobs([Job(jc, "rate", {"n": i}) for i in range(n)])
    worker = _node(modules, str(server.port), "queue", "rate", str(n), "4", "10", "rate")
    out, _ = worker.communicate(timeout=300)
    if worker.returncode != 0:
        raise RuntimeError(f"node worker failed ({worker.returncode}): {out}")
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["processed"]) / float(result["seconds"])


def node_enqueue_to_start(
    server: ServerProcess,
    modules: Path,
    n: int = 200,
    *,
    through_server: bool = True,
    doorbell: bool = False,
    gap_s: float = LATENCY_GAP_S,
) -> dict[str, float]:
    """A waiting node worker (no polling: woken by the `queue.jobs` publication, or with
    ``doorbell`` by `queue.readyTypes`) and jobs saved one at a time: by a DDP client of the
    server (``through_server``), or by another process writing the database directly (the
    server notices via its change watcher)."""
    return _percentiles(
        _node_latencies(
            server, modules, n, through_server=through_server, doorbell=doorbell, gap_s=gap_s
        )
    )


def _node_latencies(
    server: ServerProcess,
    modules: Path,
    n: int,
    *,
    through_server: bool = True,
    doorbell: bool = False,
    gap_s: float = LATENCY_GAP_S,
) -> list[float]:
    """`node_enqueue_to_start`'s samples (ms), the first tenth (warming up) left out."""
    mode = "latency-bell" if doorbell else "latency"
    worker = _node(modules, str(server.port), "queue", "lat", str(n), "1", "1", mode)
    assert worker.stdout is not None
    if json.loads(worker.stdout.readline()).get("ready") is not True:
        raise RuntimeError("node worker did not subscribe")
    with JobCollection(db=server.db) as jc:
        if through_server:
            asyncio.run(_save_through(server.ws_url, jc, n, worker, gap_s))
        else:
            for _ in range(n):
                Job(jc, "lat", {"t": time.time() * 1000}).save()
                _next_sample(worker, gap_s)
    latencies: list[float] = _final_line(worker)["latencies_ms"]
    return latencies[n // 10 :]


def _final_line(worker: subprocess.Popen[str], timeout_s: float = 120) -> dict[str, Any]:
    """The worker's last stdout line, as JSON, once it has exited. Read through the same text
    stream as the cues (`communicate` reads the pipe directly and would miss a final line that
    arrived together with the last cue, already buffered in the stream)."""
    assert worker.stdout is not None
    with worker.stdout:
        rest = worker.stdout.read()
    worker.wait(timeout=timeout_s)
    lines = rest.strip().splitlines()
    if not lines:
        raise RuntimeError(f"the latency worker exited ({worker.returncode}) without its figures")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _next_sample(worker: subprocess.Popen[str], gap_s: float) -> None:
    """Wait until the worker reports the job started (one line), then pause ``gap_s`` (the
    peers pause `LATENCY_GAP_S`; a longer pause lets the machine fall idle in between)."""
    assert worker.stdout is not None
    if not worker.stdout.readline():
        raise RuntimeError(f"the latency worker ended early ({worker.wait()})")
    time.sleep(gap_s)


async def _save_through(
    url: str, jc: JobCollection, n: int, worker: subprocess.Popen[str], gap_s: float
) -> None:
    ws = await _ddp(url)
    for i in range(n):
        doc = _wire_doc(Job(jc, "lat", {"t": time.time() * 1000}).doc)
        call = {"msg": "method", "id": str(i), "method": "queue_jobSave", "params": [doc]}
        await ws.send(json.dumps(call))
        await ws.recv()
        await ws.recv()
        _next_sample(worker, gap_s)
    await ws.close()


# -- our own remote Python worker ------------------------------------------------------------


def python_processing_rate(server: ServerProcess, n: int = 10000) -> float:
    """A remote `process_jobs` (threads, concurrency 4, payload 10) over DDP, jobs queued
    first; from the queue's start until the last job is done."""
    from ..client.remote import connect

    with JobCollection(db=server.db) as jc:
        jc.save_jobs([Job(jc, "prate", {"n": i}) for i in range(n)])
    remote = connect(server.ws_url)
    done = threading.Event()
    count = [0]
    lock = threading.Lock()

    def work(jobs: list[Any]) -> None:
        with lock:
            count[0] += len(jobs)
            if count[0] >= n:
                done.set()

    try:
        started = time.perf_counter()
        queue = remote.process_jobs("prate", work, concurrency=4, payload=10)
        if not done.wait(300):
            raise RuntimeError(f"remote Python worker finished only {count[0]} of {n}")
        elapsed = time.perf_counter() - started
        queue.shutdown("soft")
    finally:
        remote.close()
    return n / elapsed


def python_enqueue_to_start(
    server: ServerProcess, n: int = 200, gap_s: float = LATENCY_GAP_S
) -> dict[str, float]:
    """An idle remote worker in its own process (poll interval 1 hour: only the server's
    doorbell wakes it); jobs saved one at a time by a client of the server in this process,
    paced as the peers' samples. Latency = the worker's start time - the time just before
    `save()`."""
    return _percentiles(_python_latencies(server, n, gap_s))


def _python_latencies(server: ServerProcess, n: int, gap_s: float = LATENCY_GAP_S) -> list[float]:
    """`python_enqueue_to_start`'s samples (ms), the first tenth (warming up) left out."""
    from ..client.remote import connect

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobcollection.bench.server",
            "--latency-worker",
            server.ws_url,
            str(n),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "ready":
        worker.kill()
        raise RuntimeError("the remote Python worker did not start")
    saver = connect(server.ws_url)
    try:
        for _ in range(n):
            Job(saver, "plat", {"t": time.time() * 1000}).save()
            _next_sample(worker, gap_s)
    finally:
        saver.close()
    latencies: list[float] = _final_line(worker)["latencies_ms"]
    return latencies[n // 10 :]


def interleaved(
    variants: dict[str, Callable[[int], list[float]]], n: int, blocks: int = 4
) -> dict[str, dict[str, float]]:
    """Percentiles of each variant's samples, taken in turns, ``n / blocks`` at a time, so
    that all of them see the same phases of a noisy machine (one after the other, the last
    ones measured would meet a different machine than the first)."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(blocks):
        for name, take in variants.items():
            samples[name] += take(max(n // blocks, 10))
    return {name: _percentiles(taken) for name, taken in samples.items()}


def _latency_worker(url: str, n: int) -> None:
    """The worker side of `python_enqueue_to_start` (run as a separate process)."""
    from ..client.remote import connect

    latencies: list[float] = []
    finished = threading.Event()

    def work(job: Any) -> None:
        latencies.append(time.time() * 1000 - job.data["t"])
        print("started", flush=True)  # the saver's cue for the next sample
        if len(latencies) >= n:
            finished.set()

    jc = connect(url)
    queue = jc.process_jobs("plat", work, poll_interval=3_600_000)
    print("ready", flush=True)
    finished.wait(300)
    queue.shutdown("soft")
    jc.close()
    print(json.dumps({"latencies_ms": latencies}), flush=True)


def run_all(quick: bool = False) -> dict[str, Any]:
    """Every server figure. Latencies come first, on a quiet server (after a 10,000-job rate
    run the server is still checkpointing it), their variants in turns (`interleaved`)."""
    figures: dict[str, Any] = {}
    samples = 50 if quick else 200
    with _server() as server:
        figures["method_round_trip"] = method_round_trip(server, 500 if quick else 3000)
        figures["fan_out_100_subscribers"] = fan_out(server, 100, 5 if quick else 20)
        modules = node_modules()
        if modules is None:
            figures["node"] = "skipped: no node_modules with meteor-job (tests/interop/install.sh)"
        else:
            node = functools.partial(_node_latencies, server, modules)
            latencies = interleaved(
                {
                    "node_enqueue_to_start": node,
                    "node_enqueue_to_start_doorbell": functools.partial(node, doorbell=True),
                    "node_enqueue_to_start_gap_20ms": functools.partial(node, gap_s=QUIET_GAP_S),
                    "node_enqueue_to_start_other_process": functools.partial(
                        node, through_server=False
                    ),
                },
                samples,
            )
            figures.update(latencies)
            figures["node_meteor_job_c4_p10_per_s"] = round(
                node_processing_rate(server, modules, 2000 if quick else 10000)
            )
    with _server() as server:
        python = functools.partial(_python_latencies, server)
        figures.update(
            interleaved(
                {
                    "python_enqueue_to_start": python,
                    "python_enqueue_to_start_gap_20ms": functools.partial(
                        python, gap_s=QUIET_GAP_S
                    ),
                },
                samples,
            )
        )
        figures["python_remote_c4_p10_per_s"] = round(
            python_processing_rate(server, 2000 if quick else 10000)
        )
    if isinstance(figures.get("node_meteor_job_c4_p10_per_s"), int):
        figures["python_over_node_rate"] = round(
            figures["python_remote_c4_p10_per_s"] / figures["node_meteor_job_c4_p10_per_s"], 2
        )
    with _server() as server:
        figures["idle_connections"] = idle_connections(server, 200 if quick else 1000)
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--latency-worker":
        _latency_worker(sys.argv[2], int(sys.argv[3]))
    else:
        print(json.dumps(run_all("--quick" in sys.argv), indent=2))
