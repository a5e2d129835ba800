"""Wake-ups and live updates across servers: a job saved through server B starts on an idle
worker connected to server A, and reaches a subscriber on A — how soon?

Two `jobcollection serve` processes on one database (PostgreSQL: the feed's LISTEN/NOTIFY; a
SQLite file works too, through its change watcher). In this process: a remote queue on A whose
poll interval is ten minutes (so only a wake-up can start a job), an `observe` on A, and a
client of B that saves one job at a time and waits for it to start and to be seen.

    python -m benchmarks.cross_server [--storage postgresql://...|sqlite] [--samples 200]

(`--storage` names a PostgreSQL server — the run uses a schema of its own, dropped after — or
`sqlite` for a temporary file.)

Prints JSON: save -> start and save -> seen on A, p50 / p95 / max in ms (the issue's goal:
10 ms p50, 100 ms max). Exits 1 when a job never starts or is never seen.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from jobcollection import Job, JobCollection, connect
from jobcollection.bench import databases

COLLECTION = "crossq"
SAMPLE_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
GAP_S = 0.01  # between samples: the worker goes idle again
_SERVING = re.compile(r"jobcollection: serving \S+ at (ws://\S+)/websocket")


@contextmanager
def serve(db: str, folder: Path, name: str) -> Iterator[str]:
    """A `jobcollection serve` of COLLECTION on ``db`` (anyone is admin: 127.0.0.1 only);
    its websocket URL. SIGTERM, then SIGKILL, at exit."""
    log_path = folder / f"{name}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jobcollection", "serve", "--db", db, "--port", "0",
             "--collection", COLLECTION, "--allow", "admin=anyone"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (found := _SERVING.search(log_path.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve {name} did not start:\n{log_path.read_text()}")
            time.sleep(0.02)
        yield found.group(1)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Stamps:
    """When each sample's job started (worker on A) and was first seen (subscriber on A)."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.seen: dict[int, float] = {}
        self._cond = threading.Condition()

    def note(self, where: dict[int, float], sample: object) -> None:
        now = time.perf_counter()
        if isinstance(sample, int):
            with self._cond:
                where.setdefault(sample, now)
                self._cond.notify_all()

    def wait(self, sample: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: sample in self.started and sample in self.seen, timeout
            )


def measure(db: str, samples: int) -> dict[str, Any]:
    """Run the two servers and the samples; the figures (ms) and how many samples failed."""
    stamps = Stamps()
    starts: list[float] = []
    seens: list[float] = []
    lost = 0
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jc-cross-")))
        url_a = stack.enter_context(serve(db, folder, "A"))
        url_b = stack.enter_context(serve(db, folder, "B"))
        on_a: JobCollection = stack.enter_context(connect(url_a, COLLECTION))
        on_b: JobCollection = stack.enter_context(connect(url_b, COLLECTION))

        def work(job: Any) -> None:
            stamps.note(stamps.started, job.data.get("sample"))

        queue = on_a.process_jobs("ping", work, poll_interval=600_000)
        stack.callback(queue.shutdown, "hard")
        stop = on_a.observe(
            {"type": "ping"},
            added=lambda doc: stamps.note(stamps.seen, doc["data"].get("sample")),
        )
        stack.callback(stop)
        for sample in range(-3, samples):  # three warm-up samples, not counted
            begin = time.perf_counter()
            Job(on_b, "ping", {"sample": sample}).save()
            if not stamps.wait(sample, SAMPLE_TIMEOUT_S):
                lost += 1
            elif sample >= 0:
                starts.append((stamps.started[sample] - begin) * 1000)
                seens.append((stamps.seen[sample] - begin) * 1000)
            time.sleep(GAP_S)
    return {
        "storage": databases.kind(),
        "samples": samples,
        "lost": lost,
        "save_to_start_ms": _summary(starts),
        "save_to_seen_ms": _summary(seens),
    }


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "max": round(ordered[-1], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cross_server")
    parser.add_argument("--storage", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    databases.use(None if args.storage == "sqlite" else args.storage)
    with databases.fresh() as db:
        report = measure(db, args.samples)
    print(json.dumps(report, indent=2))
    return 1 if report["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
