"""huey (``SqliteHuey``, file-backed) side of the benchmark: one function per figure.

Every figure runs on a fresh SQLite file in its own temporary directory, removed afterwards.
The consumer is a subprocess, ``python -m benchmarks.peers.huey_sqlite consumer [huey_consumer
options] DB STATE_DIR EXPECT``: it parses huey_consumer's own options with huey's own parser and
calls ``huey.create_consumer(**config.values).run()``, exactly as the ``huey_consumer`` script
does, plus two probes that write ``time.time_ns()`` stamps into STATE_DIR: ``ready`` when the
first worker starts, ``done`` when the EXPECT-th task has completed.

Consumer settings (``CONSUMER_OPTIONS``):

* ``-k thread``: thread workers (``-w`` per figure).
* ``-d 0.001 -m 0.001 -b 1``: an idle worker polls the queue every 1 ms and never backs off.
  huey 3.5 enforces no minimum on ``-d``/``-m`` (``ConsumerConfig.validate`` only requires
  ``backoff >= 1``; ``Worker.sleep`` is ``stop_flag.wait(delay)``). 0 would be allowed but is a
  busy loop that steals a core from the enqueuing process on this 2-core machine, so 1 ms is
  the floor used here.
* ``-n``: no periodic tasks. ``-q``: warnings only, so huey does not write its default INFO
  line per executed task.

Storage: ``SqliteHuey`` defaults (WAL journal, 8 MB page cache, results stored; ``None``
results are not stored; ``fsync=None`` leaves SQLite's default ``synchronous=FULL``, i.e. an
fsync on every commit, which dominates every figure here: with ``fsync=False`` huey drains
10-16k jobs/s on this machine instead of ~3k). Compare against our queue at the same
durability.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
from huey import SqliteHuey  # type: ignore[import-untyped]
from huey.signals import SIGNAL_COMPLETE  # type: ignore[import-untyped]

from jobcollection.bench.pace import LATENCY_GAP_S

from .probe import Probe

POLL_S = 0.001
CONSUMER_OPTIONS = ("-k", "thread", "-d", str(POLL_S), "-m", str(POLL_S), "-b", "1", "-n", "-q")
TIMEOUT_S = 120.0  # upper bound on any single wait (consumer start, draining a queue)
RESULT_TIMEOUT_S = 5.0  # upper bound on one latency sample
LATENCY_WARMUP = 10  # samples taken and discarded before the measured ones
# How often this process checks the probe files and samples RSS. Timings come from the
# consumer's own stamps, so this only bounds how much CPU the watcher takes from it.
WAIT_POLL_S = 0.01
_MODULE = "benchmarks.peers.huey_sqlite"
_REPO_DIR = str(Path(__file__).resolve().parents[2])  # `benchmarks` imports from here


def _noop() -> None:
    return None


def _stamp() -> int:
    return time.time_ns()


@dataclass
class _Peer:
    huey: Any
    noop: Any
    stamp: Any


def _open(db: Path) -> _Peer:
    h: Any = SqliteHuey(name="bench", filename=str(db))
    return _Peer(h, h.task(name="noop")(_noop), h.task(name="stamp")(_stamp))


@contextmanager
def _fresh_peer() -> Iterator[tuple[_Peer, Path]]:
    with tempfile.TemporaryDirectory(prefix="jc-huey-") as tmp:
        peer = _open(Path(tmp) / "huey.db")
        try:
            yield peer, Path(tmp)
        finally:
            peer.huey.storage.close()


def _consumer_main(argv: list[str]) -> None:
    from huey.consumer_options import (  # type: ignore[import-untyped]
        ConsumerConfig,
        OptionParserHandler,
    )

    options, args = OptionParserHandler().get_option_parser().parse_args(argv)
    db, state, expect = args
    config: Any = ConsumerConfig(**{k: v for k, v in vars(options).items() if v is not None})
    config.validate()
    config.setup_logger(logging.getLogger("huey"))
    peer = _open(Path(db))
    probe = Probe(Path(state), int(expect))
    peer.huey.on_startup(name="bench_probe")(probe.ready)
    peer.huey.signal(SIGNAL_COMPLETE)(probe.completed)
    peer.huey.create_consumer(**config.values).run()


class _Consumer:
    """A huey consumer subprocess on ``state/huey.db``; tracks its peak RSS while waiting."""

    def __init__(self, state: Path, workers: int, expect: int = 0) -> None:
        self.state = state
        self.peak_rss = 0
        opts = [*CONSUMER_OPTIONS, "-w", str(workers)]
        cmd = [sys.executable, "-m", _MODULE, "consumer", *opts, str(state / "huey.db")]
        paths = [_REPO_DIR, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self._log = (state / "consumer.log").open("wb")
        self.proc: Any = psutil.Popen(
            [*cmd, str(state), str(expect)], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def __enter__(self) -> _Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)  # huey: graceful shutdown
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    def sample_rss(self) -> None:
        try:
            self.peak_rss = max(self.peak_rss, int(self.proc.memory_info().rss))
        except psutil.Error:
            pass

    def wait_ns(self, name: str, timeout: float = TIMEOUT_S) -> int:
        """Wait for the probe file ``name``; return the stamp in it."""
        path, deadline = self.state / name, time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample_rss()
            if path.exists():
                return int(path.read_text())
            if self.proc.poll() is not None:
                log = (self.state / "consumer.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"huey consumer exited ({self.proc.returncode}):\n{log}")
            time.sleep(WAIT_POLL_S)
        raise TimeoutError(f"huey consumer: no {name!r} within {timeout} s")


def enqueue_rate(n: int = 5000) -> float:
    """Jobs/s enqueuing ``n`` no-op tasks one at a time (no consumer running)."""
    with _fresh_peer() as (peer, _):
        t0 = time.perf_counter()
        for _ in range(n):
            peer.noop()
        return n / (time.perf_counter() - t0)


def _process_run(n: int, workers: int) -> tuple[float, float]:
    """(jobs/s, consumer peak RSS in MiB) draining ``n`` pre-enqueued no-op tasks."""
    with _fresh_peer() as (peer, state):
        for _ in range(n):
            peer.noop()
        with _Consumer(state, workers, expect=n) as consumer:
            start = consumer.wait_ns("ready")
            end = consumer.wait_ns("done")
            consumer.sample_rss()
        if peer.huey.pending_count() != 0:
            raise RuntimeError("huey reported completion with tasks still queued")
    return n / ((end - start) / 1e9), consumer.peak_rss / 2**20


def process_rate(n: int = 5000, workers: int = 1) -> float:
    """Jobs/s from consumer start (first worker up) until the n-th task has completed."""
    return _process_run(n, workers)[0]


def _one_latency_ms(peer: _Peer) -> float:
    t0 = time.time_ns()
    started = peer.stamp().get(blocking=True, timeout=RESULT_TIMEOUT_S, backoff=1, max_delay=POLL_S)
    time.sleep(LATENCY_GAP_S)
    return float(started - t0) / 1e6


def latency(samples: int = 300) -> dict[str, float]:
    """Enqueue-to-start latency (ms) of one task at a time on an idle 1-worker consumer.

    Start is the ``time.time_ns()`` the task body returns (stored as its result), compared
    with ``time.time_ns()`` taken just before the enqueue call in this process.
    """
    with _fresh_peer() as (peer, state), _Consumer(state, workers=1) as consumer:
        consumer.wait_ns("ready")
        lat = [_one_latency_ms(peer) for _ in range(LATENCY_WARMUP + samples)][LATENCY_WARMUP:]
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50_ms": q[49], "p99_ms": q[98]}


def run_all(n: int = 5000, samples: int = 300) -> dict[str, float]:
    """All figures; each processing run also yields that consumer's peak RSS."""
    rate1, rss1 = _process_run(n, 1)
    rate4, rss4 = _process_run(n, 4)
    lat = latency(samples)
    figures = {
        "enqueue_per_s": statistics.median(enqueue_rate(n) for _ in range(3)),  # as ours
        "process_per_s_w1": rate1,
        "process_per_s_w4": rate4,
        "latency_p50_ms": lat["p50_ms"],
        "latency_p99_ms": lat["p99_ms"],
        "consumer_peak_rss_mb_w1": rss1,
        "consumer_peak_rss_mb_w4": rss4,
    }
    return {k: round(v, 2) for k, v in figures.items()}


def main(argv: list[str]) -> None:
    if argv[:1] == ["consumer"]:
        _consumer_main(argv[1:])
    else:
        print(json.dumps(run_all(), indent=2))


if __name__ == "__main__":
    # Re-enter through the package module so that huey's task names (module-qualified) are
    # the same here and in the consumer subprocess, not "__main__.noop".
    importlib.import_module(_MODULE).main(sys.argv[1:])
