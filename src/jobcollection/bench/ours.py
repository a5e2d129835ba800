"""Our figures: enqueue, processing, latency, claim time under a backlog, peak RSS.

Every figure runs on a fresh SQLite file (WAL, synchronous=NORMAL) in a temporary folder and
with bounded loops; see `jobcollection.bench.__main__` for the report.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..api.collection import JobCollection
from ..api.job import Job
from ..core.constants import FOREVER_DATE
from ..core.ids import random_id
from ..storage import migrations
from ..storage._columns import USUAL_COLUMNS
from ..storage.sqlite import AUTOCHECKPOINT_PAGES, DIALECT

_TIMEOUT_S = 120.0


@contextlib.contextmanager
def _collection() -> Iterator[JobCollection]:
    with tempfile.TemporaryDirectory(prefix="jc-bench-") as folder:
        jc = JobCollection("bench", str(Path(folder) / "bench.db"))
        try:
            yield jc
        finally:
            jc.close()


def enqueue_rate(n: int = 20000) -> float:
    """Jobs saved per second, one `save()` (one transaction) at a time."""
    with _collection() as jc:
        start = time.perf_counter()
        for i in range(n):
            Job(jc, "noop", {"i": i}).save()
        return n / (time.perf_counter() - start)


def enqueue_batched_rate(n: int = 50000, batch: int = 1000) -> float:
    """Jobs saved per second with `save_jobs` in batches."""
    with _collection() as jc:
        start = time.perf_counter()
        for first in range(0, n, batch):
            jc.save_jobs([Job(jc, "noop", {"i": i}) for i in range(first, first + batch)])
        return n / (time.perf_counter() - start)


def raw_sqlite_batched_rate(n: int = 50000, batch: int = 1000) -> float:
    """The floor under `enqueue_batched_rate`: rows like those `save_jobs` stores (built before
    the clock starts) and one change-feed row per batch, inserted by plain sqlite3 `executemany`,
    one transaction per batch, into the same schema with the same pragmas (no watcher thread,
    no validation, no encoding)."""
    now = int(time.time() * 1000)
    entries = [("Constructed", now - 1), ("Job Submitted", now), ("Promoted to ready", now)]
    log = "[" + ",".join(
        f'{{"time":{t},"runId":null,"level":"info","message":"{m}"}}' for m, t in entries
    ) + "]"  # fmt: skip
    progress = '{"completed":0,"total":1,"percent":0}'
    constant = (1, 0, 1, 300000, "constant", 0, 0, FOREVER_DATE, "300000", progress, "[]", "[]")
    head = ("noop", "ready", 0, FOREVER_DATE, now, now, now)
    data = [json.dumps({"i": i}, separators=(",", ":")) for i in range(n)]
    rows = [("bench", random_id(), *head, *constant, text, log) for text in data]
    batch_ids = [
        ",".join(row[1] for row in rows[first : first + batch]) for first in range(0, n, batch)
    ]
    changes = [("bench", ids, "insert", "noop", "ready", "*") for ids in batch_ids]
    columns = ", ".join(USUAL_COLUMNS)
    insert_job = f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * len(USUAL_COLUMNS))})"
    insert_change = (
        "INSERT INTO changes (collection, job_id, op, type, status, fields) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    with tempfile.TemporaryDirectory(prefix="jc-bench-") as folder:
        conn = sqlite3.connect(str(Path(folder) / "raw.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        conn.execute("PRAGMA synchronous = NORMAL")
        for migration in migrations.migrations(DIALECT):
            conn.executescript(migration.script)
        start = time.perf_counter()
        for first in range(0, n, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert_job, rows[first : first + batch])
            conn.execute(insert_change, changes[first // batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return n / elapsed


def _noop(job: Any) -> None:
    return None


def process_rate(n: int = 20000, concurrency: int = 1, payload: int = 1) -> float:
    """No-op jobs completed per second by one in-process queue, backlog saved beforehand."""
    with _collection() as jc:
        for first in range(0, n, 1000):
            jc.save_jobs([Job(jc, "noop", {}) for _ in range(first, min(first + 1000, n))])
        jc.start_job_server()
        done = threading.Event()
        finished = [0]
        lock = threading.Lock()

        def on_done(_: object) -> None:
            with lock:
                finished[0] += 1
                if finished[0] >= n:
                    done.set()

        jc.events("jobDone", on_done)
        start = time.perf_counter()
        queue = jc.process_jobs(
            "noop", _noop, concurrency=concurrency, payload=payload, poll_interval=1000
        )
        done.wait(_TIMEOUT_S)
        elapsed = time.perf_counter() - start
        queue.shutdown("soft", quiet=True)
        if finished[0] < n:
            raise RuntimeError(f"only {finished[0]} of {n} jobs finished in {_TIMEOUT_S} s")
        return n / elapsed


def latency(samples: int = 300, warmup: int = 20, delay_ms: int = 0) -> dict[str, float]:
    """Enqueue -> worker start, ms, with an idle queue that only the change feed can wake.

    With `delay_ms`, each job is saved with that delay and the figure is how late after its
    due time it started (the scheduler readies it; no sweep is involved).
    """
    with _collection() as jc:
        jc.start_job_server()
        started = threading.Event()
        stamp = [0.0]

        def worker(job: Any) -> None:
            stamp[0] = time.perf_counter()
            started.set()

        queue = jc.process_jobs("ping", worker, poll_interval=60000)
        times: list[float] = []
        for i in range(samples + warmup):
            time.sleep(0.003)
            started.clear()
            t0 = time.perf_counter()
            Job(jc, "ping", {}).delay(delay_ms).save()
            t0 += delay_ms / 1000
            if not started.wait(5):
                raise RuntimeError("latency sample timed out")
            if i >= warmup:
                times.append((stamp[0] - t0) * 1000)
        queue.shutdown("soft", quiet=True)
    q = statistics.quantiles(times, n=100)
    return {"p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3)}


def claim_time_ms(waiting: int, claims: int = 1000) -> float:
    """Mean ms per `get_work` of one ready job beside `waiting` jobs due in the far future."""
    with _collection() as jc:
        far = jc.forever_date - 1
        for first in range(0, waiting, 5000):
            count = min(5000, waiting - first)
            jc.save_jobs([Job(jc, "noop", {}).after(far) for _ in range(count)])
        jc.save_jobs([Job(jc, "noop", {}) for _ in range(claims)])
        jc.start_job_server()
        start = time.perf_counter()
        for _ in range(claims):
            if not jc.get_work("noop"):
                raise RuntimeError("no ready job to claim")
        return (time.perf_counter() - start) * 1000 / claims


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far.

    Linux's `VmHWM` belongs to the process image, so it starts afresh at exec; `ru_maxrss`
    would also count the parent's memory a child had before exec.
    """
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def noop(job: Any) -> None:
    """The worker the RSS figure runs (`jobcollection worker jobcollection.bench.ours:noop`)."""


def worker_peak_rss_mb(n: int = 5000, concurrency: int = 4) -> float:
    """Peak RSS (VmHWM) of a `jobcollection worker` process draining `n` jobs (compare: huey's
    consumer process)."""
    with tempfile.TemporaryDirectory(prefix="jc-bench-") as folder:
        db = str(Path(folder) / "rss.db")
        with JobCollection("bench", db) as jc:
            jc.save_jobs([Job(jc, "noop", {}) for _ in range(n)])
            command = [sys.executable, "-m", "jobcollection", "--db", db, "--collection", "bench"]
            command += ["worker", "jobcollection.bench.ours:noop", "--type", "noop"]
            command += ["--concurrency", str(concurrency), "--poll-interval", "1000"]
            worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + _TIMEOUT_S
                while sum(c for s, _, c in jc.stats() if s == "completed") < n:
                    if time.monotonic() > deadline or worker.poll() is not None:
                        raise RuntimeError("the worker did not finish its jobs")
                    time.sleep(0.05)
                return _vm_hwm_mb(worker.pid)
            finally:
                worker.terminate()
                worker.wait(30)


def stamp(job: Any) -> dict[str, int]:
    """Worker for the cross-process figure: when did the job start (wall clock, ns)."""
    return {"started_ns": time.time_ns()}


def cross_process_latency(samples: int = 200) -> dict[str, float]:
    """save() in this process -> start in a separate `jobcollection worker` process whose
    queue polls only every 60 s (so only the change feed can wake it), ms."""
    with tempfile.TemporaryDirectory(prefix="jc-bench-") as folder:
        db = str(Path(folder) / "x.db")
        command = [sys.executable, "-m", "jobcollection", "--db", db, "--collection", "bench"]
        command += ["worker", "jobcollection.bench.ours:stamp", "--type", "stamp"]
        command += ["--poll-interval", "60000"]
        with JobCollection("bench", db) as jc:
            worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                assert worker.stdout is not None
                worker.stdout.readline()  # "serving ..." once it is ready
                times = [_one_remote_sample(jc) for _ in range(samples + 10)][10:]
            finally:
                worker.terminate()
                worker.wait(30)
    q = statistics.quantiles(times, n=100)
    return {"p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3)}


def _one_remote_sample(jc: JobCollection) -> float:
    time.sleep(0.005)
    saved_ns = time.time_ns()
    job_id = Job(jc, "stamp", {}).save()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = jc.get_job(str(job_id))
        if job is not None and job.status == "completed":
            started_ns: int = job.doc["result"]["started_ns"]
            return (started_ns - saved_ns) / 1e6
        time.sleep(0.002)
    raise RuntimeError("the worker process did not take the job")


def _vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc (not Linux?)")
