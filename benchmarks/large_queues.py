"""Large queues: the CLI's reads, an idle server and the WAL under load, at 1,000,000 jobs.

    python benchmarks/large_queues.py                 # ~6 min: builds /tmp/jc-1m.db once
    python benchmarks/large_queues.py --only cli      # or: idle, load
    python benchmarks/large_queues.py --jobs 200000 --load-seconds 30   # a smaller run

Figures, printed as JSON:

- cli: wall time and peak RSS of the real `jobcollection` CLI, each run a fresh process (what
  a user or a monitoring script pays), for `ls --limit 50`, filtered `ls`es and `stats`;
  median and extremes of several runs, and the largest peak RSS of a few (from `wait4`, the
  CLI started by a small launcher so the peak is the CLI's own), with bytecode caches as an
  installed package has them. Beside them the
  command's own time (`main()` called to returned, in a fresh process) and the floor every
  CLI process pays before its command starts: the interpreter, and importing the CLI.
- idle: CPU of `jobcollection serve` doing nothing for a while (psutil, % of one core) over a
  1,000-job database and over the large one.
- load: a server over a copy of the large database, a producer saving jobs through it and a
  remote worker completing them; first without, then with `ls --limit 50` run every few
  seconds beside them. Per phase: the WAL file's largest and last size, the jobs completed
  per second and the round-trip of a `getJob` probe (p50/p99).

The database is built by `_big_db.build` (rows written by `executemany` straight into the
schema), kept between runs at `--db`; the load runs on a copy, so every run starts alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
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

import psutil
from websockets.asyncio.client import connect as ws_connect

sys.path.insert(0, str(Path(__file__).parent))
import _big_db

from jobcollection import Job, JobCollection, connect
from jobcollection.bench.server import ServerProcess

CLI = [sys.executable, "-m", "jobcollection"]
LOAD_TYPE = "load"
# The CLI runs as an installed package runs: from bytecode caches (kept in a folder of their
# own, written by a first run). An environment with PYTHONDONTWRITEBYTECODE set would make
# every process compile the whole package first, about doubling its start.
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CLI_ENV["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "jc-bench-pycache")


# A child's `ru_maxrss` also counts the memory it had before its exec: for a child of this
# process (which holds jobcollection, psutil and websockets) that is this process's. So the
# CLI's peak is taken as a grandchild's, forked from this small launcher.
_PEAK = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\n{usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def cli_run(db: Path, *args: str) -> float:
    """One CLI process: its wall time in ms. Its output is read and dropped."""
    started = time.perf_counter()
    done = subprocess.run(
        [*CLI, "--db", str(db), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        env=CLI_ENV,
    )
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"jobcollection {' '.join(args)} exited {done.returncode}")
    return wall


def cli_peak_mb(db: Path, *args: str) -> float:
    """The peak RSS of one CLI process, in MB."""
    argv = [sys.executable, "-c", _PEAK, *CLI, "--db", str(db), *args]
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, env=CLI_ENV
    )
    return int(done.stderr.decode().strip().splitlines()[-1]) / 1024


_IN_PROCESS = """
import sys, time
from jobcollection.cli.main import main
started = time.perf_counter()
try:
    main(sys.argv[1:])
finally:
    sys.stderr.write(f"\\n{(time.perf_counter() - started) * 1000:.3f}\\n")
"""


def command_ms(db: Path, *args: str) -> float:
    """The command's own time in a CLI process: from `main()` called to its return (the
    interpreter's start and the imports left out)."""
    done = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS, "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=True,
        env=CLI_ENV,
    )
    return float(done.stderr.strip().splitlines()[-1])


def _wall_ms(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=CLI_ENV)
    return (time.perf_counter() - started) * 1000


COMMANDS = {
    "ls --limit 50": ["ls", "--limit", "50"],
    "ls --status failed --limit 50": ["ls", "--status", "failed", "--limit", "50"],
    "ls --type email --status paused": ["ls", "--type", "email", "--status", "paused"],
    "stats": ["stats"],
}


def cli_figures(db: Path, runs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for args in COMMANDS.values():
        cli_run(db, *args)  # writes the bytecode caches; not measured
    for name, args in COMMANDS.items():
        walls = [cli_run(db, *args) for _ in range(runs)]
        own = [command_ms(db, *args) for _ in range(runs)]
        peaks = [cli_peak_mb(db, *args) for _ in range(min(runs, 3))]
        figures[name] = {
            "wall_ms_median": round(statistics.median(walls), 1),
            "wall_ms_min": round(min(walls), 1),
            "wall_ms_max": round(max(walls), 1),
            "peak_rss_mb_max": round(max(peaks), 1),
            "command_ms_median": round(statistics.median(own), 1),
            "command_ms_max": round(max(own), 1),
        }
    floors = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import jobcollection.cli.main": [sys.executable, "-c", "import jobcollection.cli.main"],
    }
    for name, argv in floors.items():
        walls = [_wall_ms(argv) for _ in range(runs)]
        figures[name] = {
            "wall_ms_median": round(statistics.median(walls), 1),
            "wall_ms_min": round(min(walls), 1),
        }
    return figures


# -- idle ------------------------------------------------------------------------------------


def idle_cpu_percent(db: Path, seconds: float) -> float:
    """CPU of `serve` over `db`, % of one core, measured after a few seconds of settling."""
    server = ServerProcess(db)
    try:
        time.sleep(3)
        process = psutil.Process(server.process.pid)
        before, started = process.cpu_times(), time.monotonic()
        time.sleep(seconds)
        after, ended = process.cpu_times(), time.monotonic()
    finally:
        server.stop()
    used = (after.user + after.system) - (before.user + before.system)
    return round(100 * float(used) / (ended - started), 2)


def idle_figures(big: Path, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jc-idle-") as folder:
        small = Path(folder) / "small.db"
        _big_db.build(small, 1000)
        small_cpu = idle_cpu_percent(small, seconds)
    return {
        "seconds": seconds,
        "small_db_cpu_percent": small_cpu,
        "large_db_cpu_percent": idle_cpu_percent(big, seconds),
    }


# -- mixed load ------------------------------------------------------------------------------


class _Sampler(threading.Thread):
    """The WAL file's size every half second."""

    def __init__(self, wal: Path) -> None:
        super().__init__(daemon=True)
        self.wal = wal
        self.sizes: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            with contextlib.suppress(FileNotFoundError):
                self.sizes.append(self.wal.stat().st_size)


def _produce(url: str, until: float, rate: int) -> None:
    """Save `rate` jobs a second (batches of 50) through the server until `until`."""
    with contextlib.closing(connect(url)) as jc:
        batch = 50
        while time.monotonic() < until:
            started = time.monotonic()
            jc.save_jobs([Job(jc, LOAD_TYPE, {"n": n}) for n in range(batch)])
            time.sleep(max(0.0, batch / rate - (time.monotonic() - started)))


async def _probe(url: str, job_id: str, until: float) -> list[float]:
    """`getJob` round trips on one DDP connection, one every 20 ms."""
    samples: list[float] = []
    async with ws_connect(url, max_size=None, ping_interval=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
        await ws.recv()
        n = 0
        while time.monotonic() < until:
            n += 1
            call = {"msg": "method", "id": str(n), "method": "queue_getJob", "params": [job_id]}
            started = time.perf_counter()
            await ws.send(json.dumps(call))
            while json.loads(await ws.recv()).get("msg") != "result":
                pass
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
    return samples


def _completed(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM jobs WHERE collection = 'queue' AND status = 'completed' "
            "AND type = ?",
            (LOAD_TYPE,),
        ).fetchone()
    return int(row[0])


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
    }


def _phase(
    server: ServerProcess, db: Path, seconds: float, poll_s: float | None, rate: int
) -> dict[str, Any]:
    until = time.monotonic() + seconds
    sampler = _Sampler(db.with_name(db.name + "-wal"))
    sampler.start()
    done_before, started = _completed(db), time.monotonic()
    producer = threading.Thread(target=_produce, args=(server.ws_url, until, rate))
    producer.start()
    with JobCollection(db=str(db)) as jc:
        probe_job = str(Job(jc, "probe", {}).save())
    probe: list[list[float]] = []
    prober = threading.Thread(
        target=lambda: probe.append(asyncio.run(_probe(server.ws_url, probe_job, until)))
    )
    prober.start()
    polls: list[float] = []
    while time.monotonic() < until:
        if poll_s is None:
            time.sleep(min(1.0, max(0.0, until - time.monotonic())))
            continue
        polls.append(cli_run(db, "ls", "--limit", "50"))
        time.sleep(max(0.0, min(poll_s, until - time.monotonic())))
    producer.join()
    prober.join()
    elapsed = time.monotonic() - started
    done = _completed(db) - done_before
    sampler.stop.set()
    sampler.join()
    mb = [size / 2**20 for size in sampler.sizes] or [0.0]
    return {
        "seconds": round(elapsed, 1),
        "ls_polls": len(polls),
        "ls_wall_ms_median": round(statistics.median(polls), 1) if polls else None,
        "ls_wall_ms_max": round(max(polls), 1) if polls else None,
        "wal_mb_max": round(max(mb), 1),
        "wal_mb_last": round(mb[-1], 1),
        "completed_per_s": round(done / elapsed, 1),
        "probe_round_trip": _percentiles(probe[0] if probe else []),
    }


@contextlib.contextmanager
def _worker(url: str) -> Iterator[None]:
    command = [*CLI, "--server", url.removesuffix("/websocket"), "worker"]
    command += ["jobcollection.bench.ours:noop", "--type", LOAD_TYPE]
    command += ["--concurrency", "4", "--payload", "10", "--poll-interval", "1000"]
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def load_figures(big: Path, seconds: float, poll_s: float, rate: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jc-load-", dir=big.parent) as folder:
        db = Path(folder) / "load.db"
        shutil.copyfile(big, db)
        server = ServerProcess(db)
        try:
            with _worker(server.ws_url):
                time.sleep(2)  # the worker connects
                quiet = _phase(server, db, seconds, None, rate)
                polled = _phase(server, db, seconds, poll_s, rate)
        finally:
            server.stop()
    return {"producer_jobs_per_s": rate, "without_ls": quiet, f"ls_every_{poll_s:g}s": polled}


# -- main ------------------------------------------------------------------------------------


def _fixture(db: Path, jobs: int, dependents: float) -> dict[str, Any]:
    """The database: reused when it holds as many jobs and dependent ones as asked."""
    found = {"path": str(db), "jobs": jobs, "dependents": round(jobs * dependents)}
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as conn:
            count = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
            waiting = conn.execute("SELECT count(*) FROM jobs WHERE depends != '[]'").fetchone()
        if count == jobs and abs(waiting[0] - jobs * dependents) < max(100, jobs / 100):
            return {**found, "built_s": None}
        db.unlink()
    seconds = _big_db.build(db, jobs, dependents=dependents)
    return {**found, "built_s": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/large_queues.py")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="default /tmp/jc-<jobs>.db")
    parser.add_argument("--only", choices=("cli", "idle", "load"), action="append")
    parser.add_argument("--runs", type=int, default=7, help="CLI processes per command")
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--load-seconds", type=float, default=90, help="per phase")
    parser.add_argument("--poll-seconds", type=float, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="jobs saved per second")
    parser.add_argument(
        "--dependents",
        type=float,
        default=0.1,
        help="the share of jobs waiting for another job (default 0.1)",
    )
    args = parser.parse_args(argv)
    db = args.db or Path(tempfile.gettempdir()) / f"jc-{args.jobs}.db"
    parts = args.only or ["cli", "idle", "load"]
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
        },
        "database": _fixture(db, args.jobs, args.dependents),
    }
    if "cli" in parts:
        report["cli"] = cli_figures(db, args.runs)
    if "idle" in parts:
        report["idle"] = idle_figures(db, args.idle_seconds)
    if "load" in parts:
        report["load"] = load_figures(db, args.load_seconds, args.poll_seconds, args.rate)
    report["machine"]["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
