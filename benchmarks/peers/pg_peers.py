"""PostgreSQL-backed peers, measured on this machine: pgqueuer, procrastinate and chancy.

Every peer runs the same two jobs, defined here: ``noop(i)``, a no-op taking a small payload
(``{"i": <int>}``, as JSON: pgqueuer's raw ``bytes`` payload, decoded by the job;
procrastinate's and chancy's keyword arguments, decoded by them), and ``stamp(t)``, the latency
probe. Both are ``async def``; each peer's worker is asyncio-based. The figures (pg_harness.py
runs them), each a median over ``runs`` runs except latency:

Enqueue one at a time (``enqueue_per_s``)
    ``n`` no-op jobs enqueued by one client in this process, one call (and one transaction)
    each, with the peer's own async API (pgqueuer ``Queries.enqueue`` on an asyncpg
    connection; procrastinate ``Task.defer_async``; chancy ``Chancy.push``). Nothing else runs.
    Wall time from the first call to the last return.

Enqueue batched (``enqueue_batched_per_s``)
    The same ``n`` jobs with the peer's batch API, ``BATCH`` (1,000) jobs per call (pgqueuer
    ``Queries.enqueue`` with lists; procrastinate ``Task.batch_defer_async``; chancy
    ``Chancy.push_many`` with ``batch_size=1000``, one transaction per batch).

Processing (``process_per_s_c4``, ``process_per_s_c1``; pgqueuer ``_defaults``, see below)
    Each run: a fresh database, the ``n`` jobs enqueued (one at a time for c4, batched for c1:
    the rows are the same), then one worker process started with concurrency 4 (or 1). In the
    worker the jobs' bodies stamp ``time.time_ns()`` into a state directory (``probe.Probe``:
    a lock and an integer increment per job): ``first`` when the first job starts, ``done``
    when the ``n``-th job's body has returned; ``ready`` is written just before the peer's run
    loop is entered (chancy: once ``Worker.start`` returned). The rate is
    ``n / (done - min(ready, first))``: interpreter start-up, imports and connecting are
    excluded, every job's fetch and execution is included. ``process_committed_per_s_*``
    runs to the moment this process saw no job left unfinished in the database instead (it
    polls every 10 ms after ``done``), so it also includes completion writes that a peer
    buffers (pgqueuer flushes its status log every 0.1 s or batch_size jobs; chancy sends job
    updates once a second). Peak RSS (``worker_peak_rss_mb_c4``/``_c1``): the worker's own
    peak (``VmHWM``; not ``ru_maxrss``, which Linux carries over from the forking parent)
    when ``done`` is written; ``worker_children_rss_mb_*``: the RSS of its live
    child processes at that moment (0 but for chancy, see below; the jobs themselves run in
    the worker's own event loop for every peer).

Enqueue -> start latency (``latency_p50_ms`` / ``latency_p99_ms``)
    A fresh database; the worker (concurrency 4) is started and waited for (``ready``), then
    ``LATENCY_WARMUP`` samples are taken and discarded. Each sample: this process takes
    ``t = time.time()`` and enqueues one ``stamp(t)`` (the single-enqueue API); the job's first
    statement is ``started = time.time()``, then it sends ``"t started"`` in one UDP datagram
    to this process, which waits for it. Latency is ``started - t``; one sample is in flight at
    a time, with ``LATENCY_GAP_S`` between samples, so the worker is idle and waiting each
    time. ``latency_gap_20ms_*``: the same, in the same worker, with ``QUIET_GAP_S`` (20 ms),
    after its own warm-up. A measured sample may take up to 10 s (above the peers' 5 s polling
    fallbacks, so a missed wake-up lands in p99), a warm-up one up to 120 s.

Peers and settings (every setting not named is the peer's default):

* pgqueuer: ``QueueManager`` on one asyncpg connection (what ``pgq run`` builds when asyncpg is
  installed, its recommended driver), entrypoints without limits, concurrency 4 as
  ``QueueManager.run(max_concurrent_tasks=4, batch_size=2)``: the worker-wide cap on picked
  jobs, which pgqueuer requires to be at least twice ``batch_size`` (default 10, i.e. a cap
  of 20 or more). Other ``run()`` settings are defaults (LISTEN/NOTIFY wake-up, 30 s dequeue
  timeout). Not used: the per-entrypoint ``concurrency_limit=4``, a database-wide limit that
  throttles one worker to about 4 jobs per 0.1 s poll here (~40 jobs/s). A cap of 1 is
  impossible (2 x batch_size >= 2), so instead of ``_c1`` pgqueuer reports ``_defaults``:
  ``run()`` with all defaults (batch 10, no cap: every fetched job runs at once; the jobs
  enqueued batched, as for c1). Stopped by setting ``qm.shutdown`` on SIGTERM, as its CLI
  does.
* procrastinate: ``App(PsycopgConnector)``, ``run_worker_async(concurrency=<concurrency>)``
  with its defaults (LISTEN/NOTIFY, 5 s polling fallback, jobs kept in the table as
  ``succeeded``); its own SIGTERM handler.
* chancy: ``Chancy(dsn, log=<a logger at WARNING>)`` with its default plugins (leadership,
  pruner, recovery, metrics, workflow), ``Worker`` defaults, one queue declared
  ``Queue("bench", concurrency=<concurrency>, executor=AsyncExecutor, eager_polling=True)``.
  Changed from the defaults: the executor (the default ``ProcessExecutor`` runs each job in a
  process pool; an ``async`` no-op belongs on chancy's ``AsyncExecutor``, and the in-job
  probes need one process); ``eager_polling`` (without it the worker fetches up to
  ``concurrency`` jobs and then sleeps until a push notification or the 5 s
  ``polling_interval``: a pre-filled queue drains at about 4 jobs per 5 s); the logger
  (chancy's default one writes an INFO line per job pulled, through ``rich`` when installed;
  huey's harness likewise runs it with ``-q``). Its own SIGTERM handler. Every chancy
  ``Worker`` also declares and serves a ``default`` queue (a ``ProcessExecutor`` pool of child
  processes, idle here): ``worker_children_rss_mb_*`` is their RSS when ``done`` is written.

Isolation: every run creates a database ``jcbench_<random>`` on the server (``ADMIN_DSN``:
``postgresql://postgres@127.0.0.1:5432/postgres`` unless ``JOBCOLLECTION_BENCH_PG_ADMIN_DSN``
says otherwise), the peer installs its own schema there, and the database is dropped
(``WITH (FORCE)``) afterwards. Every subprocess runs in its own session, is bounded by timeouts
and always stopped: SIGTERM first, SIGKILL to its process group after ``STOP_TIMEOUT_S``. A
peer whose packages are missing, or PostgreSQL unreachable, reports ``{"skipped": "<why>"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import signal
import statistics
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from . import pg_harness as h

_MODULE = "benchmarks.peers.pg_peers"
QUEUE = "bench"
_PROBE: h.RssProbe | None = None  # set in the worker process only
_PORT = 0  # the parent's UDP port for latency stamps (worker process only)


async def noop_job(i: int) -> None:
    """The no-op (procrastinate and chancy pass ``i`` decoded; pgqueuer's wrapper decodes)."""
    if _PROBE is not None:
        _PROBE.started()
        _PROBE.completed()


async def stamp_job(t: float) -> None:
    h.send_stamp(_PORT, t)


def _payload(i: int) -> bytes:
    return json.dumps({"i": i}, separators=(",", ":")).encode()


# -- pgqueuer ---------------------------------------------------------------------------------


class _PgqClient:
    def __init__(self, conn: Any, queries: Any) -> None:
        self.conn, self.q = conn, queries

    @classmethod
    async def connect(cls, dsn: str, _conc: int) -> _PgqClient:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]
        from pgqueuer import Queries

        conn = await asyncpg.connect(dsn)
        q = Queries.from_asyncpg_connection(conn)
        if not await q.schema_is_installed():
            await q.install()
        return cls(conn, q)

    async def enqueue(self, i: int) -> None:
        await self.q.enqueue("noop", _payload(i))

    async def enqueue_batch(self, first: int, count: int) -> None:
        payloads = [_payload(i) for i in range(first, first + count)]
        await self.q.enqueue(["noop"] * count, payloads, [0] * count)

    async def stamp(self, enqueued_at: float) -> None:
        await self.q.enqueue("stamp", repr(enqueued_at).encode())

    async def close(self) -> None:
        await self.conn.close()


async def _pgq_worker(dsn: str, state: Path, conc: int) -> None:
    import asyncpg  # type: ignore[import-untyped,unused-ignore]
    from pgqueuer import Job, Queries, QueueManager

    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries.from_asyncpg_connection(conn))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        await noop_job(**json.loads(job.payload or b"{}"))

    @qm.entrypoint("stamp")
    async def stamp(job: Job) -> None:
        await stamp_job(float(job.payload or b"0"))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, qm.shutdown.set)
    # ``conc`` 0: run()'s defaults (batch_size=10, no cap); else the worker-wide cap, which
    # pgqueuer requires to be at least twice the batch size.
    options: dict[str, Any] = (
        {"batch_size": conc // 2, "max_concurrent_tasks": conc} if conc else {}
    )
    h.mark_ready(state)
    try:
        await qm.run(**options)
    finally:
        await conn.close()


# -- procrastinate ----------------------------------------------------------------------------


def _procrastinate_app(dsn: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    app.task(name="noop", queue=QUEUE)(noop_job)
    app.task(name="stamp", queue=QUEUE)(stamp_job)
    return app


class _ProcrastinateClient:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.noop, self.stamp_task = app.tasks["noop"], app.tasks["stamp"]

    @classmethod
    async def connect(cls, dsn: str, _conc: int) -> _ProcrastinateClient:
        app = _procrastinate_app(dsn)
        await app.open_async()
        if await _scalar_async(app, "SELECT to_regclass('procrastinate_jobs') IS NULL") == 1:
            await app.schema_manager.apply_schema_async()
        return cls(app)

    async def enqueue(self, i: int) -> None:
        await self.noop.defer_async(i=i)

    async def enqueue_batch(self, first: int, count: int) -> None:
        await self.noop.batch_defer_async(*({"i": i} for i in range(first, first + count)))

    async def stamp(self, enqueued_at: float) -> None:
        await self.stamp_task.defer_async(t=enqueued_at)

    async def close(self) -> None:
        await self.app.close_async()


async def _scalar_async(app: Any, sql: str) -> int:
    row = await app.connector.execute_query_one_async(f"SELECT ({sql})::int AS n")
    return int(row["n"])


async def _procrastinate_worker(dsn: str, state: Path, conc: int) -> None:
    app = _procrastinate_app(dsn)
    async with app.open_async():
        h.mark_ready(state)
        await app.run_worker_async(queues=[QUEUE], concurrency=conc)


# -- chancy -----------------------------------------------------------------------------------

_CHANCY_EXECUTOR = "chancy.executors.asyncex.AsyncExecutor"


def _chancy_log() -> logging.Logger:
    """Warnings only: chancy's default logger writes an INFO line for every job it pulls."""
    log = logging.getLogger("jcbench.chancy")
    if not log.handlers:
        log.addHandler(logging.StreamHandler())
        log.setLevel(logging.WARNING)
    return log


class _ChancyClient:
    def __init__(self, chancy: Any) -> None:
        self.chancy = chancy

    @classmethod
    async def connect(cls, dsn: str, conc: int) -> _ChancyClient:
        from chancy import Chancy, Queue  # type: ignore[import-untyped,unused-ignore]

        chancy = Chancy(dsn, log=_chancy_log())
        await chancy.__aenter__()
        try:
            await chancy.migrate()
            queue = Queue(QUEUE, concurrency=conc, executor=_CHANCY_EXECUTOR, eager_polling=True)
            await chancy.declare(queue, upsert=True)
        except BaseException:
            await chancy.__aexit__(None, None, None)
            raise
        return cls(chancy)

    @staticmethod
    def _job(func: Any, **kwargs: Any) -> Any:
        from chancy import Job  # type: ignore[import-untyped,unused-ignore]

        return Job.from_func(func, queue=QUEUE, kwargs=kwargs)

    async def enqueue(self, i: int) -> None:
        await self.chancy.push(self._job(noop_job, i=i))

    async def enqueue_batch(self, first: int, count: int) -> None:
        jobs = [self._job(noop_job, i=i) for i in range(first, first + count)]
        async for _ in self.chancy.push_many(jobs, batch_size=h.BATCH):
            pass

    async def stamp(self, enqueued_at: float) -> None:
        await self.chancy.push(self._job(stamp_job, t=enqueued_at))

    async def close(self) -> None:
        await self.chancy.__aexit__(None, None, None)


async def _chancy_worker(dsn: str, state: Path, conc: int) -> None:
    from chancy import Chancy, Worker  # type: ignore[import-untyped,unused-ignore]

    async with Chancy(dsn, log=_chancy_log()) as chancy, Worker(chancy) as worker:
        h.mark_ready(state)
        await worker.wait_for_shutdown()


# -- the peers, figures -----------------------------------------------------------------------

PEERS = {
    "pgqueuer": h.Peer(
        "pgqueuer",
        _MODULE,
        _PgqClient.connect,
        "SELECT count(*) FROM pgqueuer",  # finished jobs move to pgqueuer_log
    ),
    "procrastinate": h.Peer(
        "procrastinate",
        _MODULE,
        _ProcrastinateClient.connect,
        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
    ),
    "chancy": h.Peer(
        "chancy",
        _MODULE,
        _ChancyClient.connect,
        "SELECT count(*) FROM chancy_jobs WHERE state NOT IN ('succeeded', 'failed')",
    ),
}
_NEEDS = {
    "pgqueuer": ("pgqueuer", "asyncpg", "psycopg"),
    "procrastinate": ("procrastinate", "psycopg"),
    "chancy": ("chancy", "psycopg", "psycopg_pool"),
}
_DISTS = {
    "pgqueuer": ("pgqueuer", "asyncpg"),
    "procrastinate": ("procrastinate", "psycopg"),
    "chancy": ("chancy", "psycopg", "psycopg-pool"),
}
# The second processing figure: concurrency 1, or (0) pgqueuer's run() defaults.
_SECOND = {"pgqueuer": 0, "procrastinate": 1, "chancy": 1}
_WORKERS = {
    "pgqueuer": "QueueManager.run(batch_size={b}, max_concurrent_tasks={c}); asyncpg",
    "procrastinate": "run_worker_async(concurrency={c}) defaults; PsycopgConnector",
    "chancy": "Worker defaults; Queue(concurrency={c}, AsyncExecutor, eager_polling=True)",
}


def unavailable(peer: str) -> str | None:
    """Why ``peer`` cannot run here (a package missing, PostgreSQL unreachable), or None."""
    for module in _NEEDS[peer]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"python package {module!r} is not installed ({exc})"
    return h.unreachable()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def measure(peer: str, n: int, samples: int, runs: int = 1) -> dict[str, Any]:
    """One peer's figures, or ``{"skipped": why}``; see the module docstring."""
    why = unavailable(peer)
    if why is not None:
        return {"skipped": why}
    p = PEERS[peer]
    with tempfile.TemporaryDirectory(prefix="jc-pg-peer-") as tmp_dir:
        tmp = Path(tmp_dir)
        c4 = [h.process_run(p, n, 4, False, tmp) for _ in range(runs)]
        # pgqueuer: no cap of 1 (it must be >= 2 x batch_size >= 2); its defaults instead.
        second = [h.process_run(p, n, _SECOND[peer], True, tmp) for _ in range(runs)]
        lat = h.latency(p, samples, 4, tmp)

    def med(rs: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in rs), 1)

    label = "c1" if _SECOND[peer] == 1 else "defaults"
    report: dict[str, Any] = {
        "enqueue_per_s": med(c4, "enqueue_per_s"),
        "enqueue_batched_per_s": med(second, "enqueue_per_s"),
        "process_per_s_c4": med(c4, "process_per_s"),
        "process_per_s_c4_runs": [round(r["process_per_s"], 1) for r in c4],
        "process_committed_per_s_c4": med(c4, "process_committed_per_s"),
        "worker_peak_rss_mb_c4": med(c4, "rss_mb"),
        "worker_children_rss_mb_c4": med(c4, "children_rss_mb"),
        f"process_per_s_{label}": med(second, "process_per_s"),
        f"process_committed_per_s_{label}": med(second, "process_committed_per_s"),
        f"worker_peak_rss_mb_{label}": med(second, "rss_mb"),
        f"worker_children_rss_mb_{label}": med(second, "children_rss_mb"),
    }
    report |= {key: round(value, 3) for key, value in lat.items()}
    return report | {
        "jobs": n,
        "runs": runs,
        "batch": h.BATCH,
        "latency_samples": samples,
        "worker": _WORKERS[peer].format(c=4, b=2),
        "versions": {
            **{d: _version(d) for d in _DISTS[peer]},
            "postgresql": h.server_version(),
        },
    }


def run_all(
    n: int = 1000, samples: int = 50, runs: int = 1, peers: list[str] | None = None
) -> dict[str, Any]:
    return {peer: measure(peer, n, samples, runs) for peer in peers or list(PEERS)}


def _worker_main(peer: str, dsn: str, state: str, expect: str, conc: str, port: str) -> None:
    global _PROBE, _PORT
    _PROBE, _PORT = h.RssProbe(Path(state), int(expect)), int(port)
    entry = {"pgqueuer": _pgq_worker, "procrastinate": _procrastinate_worker}
    asyncio.run(entry.get(peer, _chancy_worker)(dsn, Path(state), int(conc)))


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        _worker_main(*argv[1:7])
        return
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    parser.add_argument("--runs", type=int, default=3, help="runs per processing figure")
    parser.add_argument("--n", type=int, default=10_000, help="jobs per run")
    parser.add_argument("--samples", type=int, default=300, help="latency samples per pace")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE")
    args = parser.parse_args(argv)
    report = run_all(args.n, args.samples, args.runs, args.peers.split(","))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    # Re-enter through the package module, so that the jobs defined here are the same objects
    # (and importable names) in this process and in the worker subprocesses, not "__main__.*".
    importlib.import_module(_MODULE).main(sys.argv[1:])
