"""Redis-backed peers, measured on this machine: huey (``RedisHuey``) and Celery (Redis broker).

Figures often quoted for scale are huey (Redis) at about 2,700 jobs/s and Celery (Redis) at
about 1,000 jobs/s with their own workers. This module measures both here, two figures each:

Processing rate (``process_per_s_w4``)
    ``n`` no-op tasks are enqueued first (no consumer running; the time this takes is reported
    as ``enqueue_per_s``), then the consumer process is started with 4 worker threads. Inside
    the consumer, hooks write ``time.time_ns()`` stamps into a state directory: ``ready`` when
    the consumer is up (huey: the first worker thread's startup hook; Celery: the
    ``worker_ready`` signal), ``first`` when the first task starts (huey ``SIGNAL_EXECUTING``;
    Celery ``task_prerun``) and ``done`` when the ``n``-th task has finished (huey
    ``SIGNAL_COMPLETE``; Celery ``task_postrun``, counted under a lock). The rate is
    ``n / (done - min(ready, first))``: interpreter start-up and imports are excluded, every
    task's dequeue, execution and completion bookkeeping is included. The hooks cost a lock
    and an integer increment per task; the tasks themselves make no Redis calls. Afterwards
    the queue is checked to be empty. ``runs`` such runs (fresh keys each) give the median.

Enqueue -> start latency (``latency_p50_ms`` / ``latency_p99_ms``)
    The consumer is started first and waited for (``ready`` stamp), then
    ``LATENCY_WARMUP`` samples are taken and discarded. Each sample: this process takes
    ``t = time.time()`` and enqueues one task with ``t`` as its argument; the task's first
    statement is ``started = time.time()``, then it RPUSHes ``"t started"`` to a Redis list,
    which this process BLPOPs. Latency is ``started - t``; one sample is in flight at a time,
    with ``LATENCY_GAP_S`` between samples, so the consumer is idle and waiting each time.
    ``latency_gap_20ms_*``: the same with ``QUIET_GAP_S`` (20 ms) between samples.

Peers and settings:

* huey: ``RedisHuey`` defaults (``blocking=True``: an idle worker waits in BRPOP with a 1 s
  read timeout, so there is no polling delay; results stored, but no-op tasks return
  ``None``, which huey does not store). Consumer: huey's own ``Consumer`` built from
  huey_consumer options ``-k thread -w 4 -n -q`` (thread workers, no periodic tasks,
  warnings-only logging), exactly as the ``huey_consumer`` script does.
* Celery: Redis broker, no result backend (``task_ignore_result=True``); the latency figure
  reads the task's own stamp from Redis, so no backend is needed and none is paid for.
  Worker: ``celery worker -P threads -c 4`` (the thread pool, supported since Celery 5.0;
  the hooks count completions in-process, which a prefork pool would not allow) with
  ``--without-mingle --without-gossip --without-heartbeat`` (cluster-event traffic, not
  per-task work) and ``--loglevel WARNING``. Prefetch settings are Celery's defaults
  (``worker_prefetch_multiplier=4``, early acks); so are all other task and broker settings.

Isolation: each measured run uses a unique name (``jcbench_<random>``: the huey instance name;
Celery's ``global_keyprefix`` transport option, which prefixes every kombu key) in a Redis
database that was empty and is claimed with ``SET NX`` for the run. Every key holding that
name is deleted before and after the run (rather than FLUSHDB, so nobody else's keys can be
lost), and the claim is released.

Every subprocess runs in its own session, is bounded by timeouts, and is always stopped: a
graceful signal first (huey SIGINT, Celery SIGTERM), SIGKILL to its process group after
``_process.STOP_TIMEOUT_S``. If Redis is unreachable or a peer's packages are missing, that peer
reports ``{"skipped": "<why>"}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from jobcollection.bench.pace import LATENCY_GAP_S, QUIET_GAP_S

from ._process import PeerProcess
from .probe import Probe

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
WORKERS = 4
HUEY_CONSUMER_OPTIONS = ("-k", "thread", "-w", str(WORKERS), "-n", "-q")
CELERY_WORKER_OPTIONS = (
    "-P",
    "threads",
    "-c",
    str(WORKERS),
    "--loglevel",
    "WARNING",
    "--without-mingle",
    "--without-gossip",
    "--without-heartbeat",
)
TIMEOUT_S = 120.0  # upper bound on any single wait (consumer start, draining a queue)
SAMPLE_TIMEOUT_S = 5.0  # upper bound on one latency sample
CONNECT_TIMEOUT_S = 2.0
LATENCY_WARMUP = 10  # samples taken and discarded before the measured ones
CLAIM_KEY = "jcbench:claim"  # marks a Redis database as in use by one benchmark run
CLAIM_TTL_S = 1800
_MODULE = "benchmarks.peers.redis_peers"


# -- Redis: availability, a claimed database, a unique name ---------------------------------


def _redis(db: int, timeout: float = SAMPLE_TIMEOUT_S + 5) -> Any:
    import redis

    return redis.Redis(
        host=REDIS_HOST,
        port=REDIS_PORT,
        db=db,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=timeout,
    )


def unavailable(peer: str) -> str | None:
    """Why ``peer`` ("huey_redis" or "celery_redis") cannot run here, or None if it can."""
    needs = {"huey_redis": ("redis", "huey"), "celery_redis": ("redis", "celery")}[peer]
    for module in needs:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"python package {module!r} is not installed ({exc})"
    try:
        conn = _redis(0, timeout=CONNECT_TIMEOUT_S)
        try:
            conn.ping()
        finally:
            conn.close()
    except Exception as exc:  # redis.ConnectionError, TimeoutError, auth errors...
        return f"Redis at {REDIS_HOST}:{REDIS_PORT} is not reachable ({type(exc).__name__}: {exc})"
    return None


@dataclass(frozen=True)
class _Slot:
    db: int
    name: str  # unique per run; every key of the run contains it

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.db}"

    @property
    def latency_key(self) -> str:
        return f"{self.name}:latency"


def _delete_keys(conn: Any, name: str) -> None:
    keys = list(conn.scan_iter(match=f"*{name}*", count=1000))
    for i in range(0, len(keys), 1000):
        conn.delete(*keys[i : i + 1000])


@contextmanager
def _slot() -> Iterator[_Slot]:
    """A unique name in a Redis database that was empty and is now claimed by this run."""
    name = f"jcbench_{uuid.uuid4().hex[:12]}"
    for db in range(15, 0, -1):
        conn = _redis(db)
        try:
            if conn.dbsize() == 0 and conn.set(CLAIM_KEY, name, nx=True, ex=CLAIM_TTL_S):
                break
        except Exception:
            conn.close()
            raise
        conn.close()
    else:
        raise RuntimeError("no empty Redis database (1-15) to run the benchmark in")
    try:
        _delete_keys(conn, name)
        yield _Slot(db, name)
    finally:
        _delete_keys(conn, name)
        if conn.get(CLAIM_KEY) == name.encode():
            conn.delete(CLAIM_KEY)
        conn.close()


# -- probes (in the consumer process) and the consumer process ------------------------------


class _Consumer(PeerProcess):
    """``python -m benchmarks.peers.redis_peers KIND DB NAME STATE EXPECT`` in a subprocess."""

    def __init__(self, kind: str, slot: _Slot, state: Path, expect: int, stop_signal: int) -> None:
        self.kind, self.state = kind, state
        args = [_MODULE, kind, str(slot.db), slot.name, str(state), str(expect)]
        super().__init__(kind, args, state / f"{kind}.log", stop_signal)

    def __enter__(self) -> _Consumer:
        return self

    def wait_ns(self, name: str, timeout: float = TIMEOUT_S) -> int:
        """Wait for the stamp file ``name``; return the stamp in it."""
        return int(self.wait_text(self.state / name, timeout, f"{name!r} stamp"))


# -- the two peers: tasks, consumer entry points -------------------------------------------


@dataclass
class _Peer:
    """One side's handles in this process: enqueue a no-op, enqueue a stamp, close, pending."""

    noop: Callable[[], object]
    stamp: Callable[[float], object]
    pending: Callable[[], int]
    close: Callable[[], None]


def _stamp_body(conn: Any, key: str) -> Callable[[float], None]:
    def stamp(enqueued_at: float) -> None:
        started = time.time()
        conn.rpush(key, f"{enqueued_at!r} {started!r}")

    return stamp


def _noop() -> None:
    return None


def _huey_app(slot: _Slot) -> tuple[Any, Any, Any]:
    from huey import RedisHuey  # type: ignore[import-untyped]

    huey: Any = RedisHuey(name=slot.name, host=REDIS_HOST, port=REDIS_PORT, db=slot.db)
    noop = huey.task(name="noop")(_noop)
    stamp = huey.task(name="stamp")(_stamp_body(huey.storage.conn, slot.latency_key))
    return huey, noop, stamp


def _huey_peer(slot: _Slot) -> _Peer:
    huey, noop, stamp = _huey_app(slot)
    return _Peer(
        noop=noop,
        stamp=stamp,
        pending=lambda: int(huey.storage.queue_size()),
        close=lambda: huey.storage.pool.disconnect(),
    )


def _huey_consumer_main(db: int, name: str, state: Path, expect: int) -> None:
    from huey.consumer_options import (  # type: ignore[import-untyped]
        ConsumerConfig,
        OptionParserHandler,
    )
    from huey.signals import SIGNAL_COMPLETE, SIGNAL_EXECUTING  # type: ignore[import-untyped]

    options, _ = OptionParserHandler().get_option_parser().parse_args(list(HUEY_CONSUMER_OPTIONS))
    config: Any = ConsumerConfig(**{k: v for k, v in vars(options).items() if v is not None})
    config.validate()
    config.setup_logger(logging.getLogger("huey"))
    huey, _, _ = _huey_app(_Slot(db, name))
    probe = Probe(state, expect)
    huey.on_startup(name="bench_probe")(probe.ready)
    huey.signal(SIGNAL_EXECUTING)(probe.started)
    huey.signal(SIGNAL_COMPLETE)(probe.completed)
    huey.create_consumer(**config.values).run()


def _celery_app(slot: _Slot) -> tuple[Any, Any, Any]:
    from celery import Celery  # type: ignore[import-untyped]

    app: Any = Celery(slot.name, broker=slot.url, set_as_current=False)
    app.conf.update(
        broker_transport_options={"global_keyprefix": f"{slot.name}:"},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
    )
    noop = app.task(name="jcbench.noop")(_noop)
    stamp = app.task(name="jcbench.stamp")(_stamp_body(_redis(slot.db), slot.latency_key))
    return app, noop, stamp


def _celery_pending(slot: _Slot) -> int:
    conn = _redis(slot.db)
    try:
        return int(conn.llen(f"{slot.name}:celery"))
    finally:
        conn.close()


def _celery_peer(slot: _Slot) -> _Peer:
    app, noop, stamp = _celery_app(slot)
    return _Peer(
        noop=lambda: noop.delay(),
        stamp=lambda t: stamp.delay(t),
        pending=lambda: _celery_pending(slot),
        close=lambda: app.close(),
    )


def _celery_worker_main(db: int, name: str, state: Path, expect: int) -> None:
    from celery import signals

    app, _, _ = _celery_app(_Slot(db, name))
    probe = Probe(state, expect)
    signals.worker_ready.connect(probe.ready, weak=False)
    signals.task_prerun.connect(probe.started, weak=False)
    signals.task_postrun.connect(probe.completed, weak=False)
    app.worker_main(["worker", *CELERY_WORKER_OPTIONS, "-n", f"{name}@%h"])


@dataclass(frozen=True)
class _Kind:
    consumer: str  # subcommand of this module that runs the consumer
    peer: Callable[[_Slot], _Peer]
    stop_signal: int


_KINDS = {
    "huey_redis": _Kind("huey-consumer", _huey_peer, signal.SIGINT),
    "celery_redis": _Kind("celery-worker", _celery_peer, signal.SIGTERM),
}


@contextmanager
def _run(kind: _Kind) -> Iterator[tuple[_Slot, _Peer, Path]]:
    with _slot() as slot, tempfile.TemporaryDirectory(prefix="jc-redis-peer-") as tmp:
        peer = kind.peer(slot)
        try:
            yield slot, peer, Path(tmp)
        finally:
            peer.close()


# -- figures ----------------------------------------------------------------------------------


def _process_run(kind: _Kind, n: int) -> tuple[float, float]:
    """(process jobs/s, enqueue jobs/s) for ``n`` pre-enqueued no-op tasks; see the docstring."""
    with _run(kind) as (slot, peer, state):
        t0 = time.perf_counter()
        for _ in range(n):
            peer.noop()
        enqueue_s = time.perf_counter() - t0
        with _Consumer(kind.consumer, slot, state, n, kind.stop_signal) as consumer:
            ready = consumer.wait_ns("ready")
            done = consumer.wait_ns("done")
            first = consumer.wait_ns("first", timeout=1.0)
        left = peer.pending()
        if left:
            raise RuntimeError(f"{kind.consumer}: completion reported with {left} tasks queued")
    return n / ((done - min(ready, first)) / 1e9), n / enqueue_s


def _latency(kind: _Kind, samples: int, gap_s: float = LATENCY_GAP_S) -> dict[str, float]:
    """Enqueue -> start latency (ms) of one task at a time on an idle, warmed-up consumer."""
    with _run(kind) as (slot, peer, state):
        conn = _redis(slot.db)
        try:
            with _Consumer(kind.consumer, slot, state, 0, kind.stop_signal) as consumer:
                consumer.wait_ns("ready")
                lat = []
                for _ in range(LATENCY_WARMUP + samples):
                    t = time.time()
                    peer.stamp(t)
                    got = conn.blpop([slot.latency_key], timeout=SAMPLE_TIMEOUT_S)
                    if got is None:
                        consumer.check_alive()
                        raise TimeoutError(f"{kind.consumer}: no sample in {SAMPLE_TIMEOUT_S} s")
                    enqueued, started = (float(v) for v in got[1].split())
                    if enqueued != t:
                        raise RuntimeError(f"{kind.consumer}: sample for {enqueued}, sent {t}")
                    lat.append((started - enqueued) * 1000)
                    time.sleep(gap_s)
        finally:
            conn.close()
    q = statistics.quantiles(lat[LATENCY_WARMUP:], n=100, method="inclusive")
    return {"p50_ms": q[49], "p99_ms": q[98]}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def measure(peer: str, n: int, samples: int, runs: int = 1) -> dict[str, Any]:
    """One peer's figures ("huey_redis" or "celery_redis"), or ``{"skipped": why}``."""
    why = unavailable(peer)
    if why is not None:
        return {"skipped": why}
    kind = _KINDS[peer]
    rates = [_process_run(kind, n) for _ in range(runs)]
    lat = _latency(kind, samples)
    quiet = _latency(kind, samples, QUIET_GAP_S)
    conn = _redis(0)
    try:
        server = str(conn.info("server").get("redis_version", "?"))
    finally:
        conn.close()
    dists = ("huey", "redis") if peer == "huey_redis" else ("celery", "kombu", "redis")
    return {
        "process_per_s_w4": round(statistics.median(r[0] for r in rates), 1),
        "process_per_s_runs": [round(r[0], 1) for r in rates],
        "enqueue_per_s": round(statistics.median(r[1] for r in rates), 1),
        "latency_p50_ms": round(lat["p50_ms"], 3),
        "latency_p99_ms": round(lat["p99_ms"], 3),
        "latency_gap_20ms_p50_ms": round(quiet["p50_ms"], 3),
        "latency_gap_20ms_p99_ms": round(quiet["p99_ms"], 3),
        "jobs": n,
        "latency_samples": samples,
        "consumer": " ".join(
            HUEY_CONSUMER_OPTIONS if peer == "huey_redis" else CELERY_WORKER_OPTIONS
        ),
        "versions": {**{d: _version(d) for d in dists}, "redis-server": server},
    }


def run_all(quick: bool) -> dict[str, Any]:
    """Both peers: quick = 1,000 jobs x 1 run, 50 latency samples; else 10,000 x 3, 300."""
    n, samples, runs = (1000, 50, 1) if quick else (10_000, 300, 3)
    return {peer: measure(peer, n, samples, runs) for peer in _KINDS}


def main(argv: list[str]) -> None:
    entry = {"huey-consumer": _huey_consumer_main, "celery-worker": _celery_worker_main}
    if argv[:1] and argv[0] in entry:
        db, name, state, expect = argv[1:5]
        entry[argv[0]](int(db), name, Path(state), int(expect))
        return
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    args = parser.parse_args(argv)
    print(json.dumps(run_all(args.quick), indent=2))


if __name__ == "__main__":
    # Re-enter through the package module, so that the tasks defined here are the same objects
    # (and names) in this process and in the consumer subprocesses, not "__main__.*".
    importlib.import_module(_MODULE).main(sys.argv[1:])
