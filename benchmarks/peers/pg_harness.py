"""The PostgreSQL peers' harness: a fresh database per run, the worker subprocess, the figures.

``pg_peers`` describes what is measured and holds the three peers; this module knows none of
them. A peer is a ``Client`` (in this process: enqueue one, enqueue a batch, enqueue a latency
stamp, close) plus an ``unfinished`` SQL query and a worker subcommand of ``pg_peers``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from jobcollection.bench.pace import LATENCY_GAP_S, QUIET_GAP_S

from ._process import PeerProcess
from .probe import Probe, write_ns

ADMIN_DSN = os.environ.get(
    "JOBCOLLECTION_BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TIMEOUT_S = 120.0  # upper bound on any single wait (worker start, draining a queue)
# Upper bound on one measured latency sample: above the peers' 5 s polling fallbacks, so that
# a missed wake-up shows in p99 instead of ending the run. Warm-up samples: TIMEOUT_S (the
# first ones may race a worker still setting up its LISTEN).
SAMPLE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 2
LATENCY_WARMUP = 10  # samples taken and discarded before the measured ones
WAIT_POLL_S = 0.01  # how often this process looks for the worker's stamps / the settled queue
BATCH = 1000  # jobs per call of a peer's batch-enqueue API


# -- PostgreSQL: availability, a fresh database per run ---------------------------------------


def _admin() -> Any:
    import psycopg

    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


def unreachable() -> str | None:
    """Why PostgreSQL at ``ADMIN_DSN`` cannot host a benchmark database, or None."""
    try:
        with _admin() as conn:
            row = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except Exception as exc:  # psycopg.OperationalError, auth errors...
        return f"PostgreSQL at {ADMIN_DSN} is not reachable ({type(exc).__name__}: {exc})"
    if not row or not row[0]:
        return f"the role of {ADMIN_DSN} may not create databases"
    return None


def server_version() -> str:
    with _admin() as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def _dsn_for(db: str) -> str:
    """``ADMIN_DSN`` (a ``postgresql://`` URL) naming the database ``db`` instead."""
    return urlsplit(ADMIN_DSN)._replace(path=f"/{db}").geturl()


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create ``jcbench_<random>`` on the server, yield its DSN, drop it (FORCE) afterwards."""
    name = f"jcbench_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _dsn_for(name)
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count(dsn: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


# -- in the worker process --------------------------------------------------------------------


class RssProbe(Probe):
    """``Probe``, plus, when ``done`` is written, a file ``rss``: the process's own peak RSS
    (KiB, ``_peak_rss_kib``) and the current RSS of its live child processes (KiB, summed)."""

    def __init__(self, state: Path, expect: int) -> None:
        super().__init__(state, expect)
        self._path, self._n, self._left = state, expect, expect

    def completed(self, *args: Any, **kwargs: Any) -> None:
        super().completed(*args, **kwargs)
        self._left -= 1  # every job runs on the worker's one event-loop thread
        if self._left == 0 and self._n:
            peak = _peak_rss_kib()
            (self._path / "rss.tmp").write_text(f"{peak} {_children_rss_kib()}")
            os.replace(self._path / "rss.tmp", self._path / "rss")


def _peak_rss_kib() -> int:
    """This process's peak RSS, KiB: ``VmHWM``, which belongs to the address space and so
    starts afresh at ``exec``. (``ru_maxrss`` does not: Linux keeps it across ``execve``, so a
    child forked from a large parent reports at least the parent's RSS at the fork.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # not Linux


def _children_rss_kib() -> int:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total // 1024


def mark_ready(state: Path) -> None:
    write_ns(state / "ready")


def send_stamp(port: int, enqueued_at: float) -> None:
    """The latency job's body: the start time first, then one datagram to the parent."""
    started = time.time()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"{enqueued_at!r} {started!r}".encode(), ("127.0.0.1", port))


# -- the worker subprocess --------------------------------------------------------------------


class Worker(PeerProcess):
    """``python -m MODULE worker PEER DSN STATE EXPECT CONCURRENCY PORT`` in a subprocess."""

    def __init__(self, module: str, peer: str, dsn: str, state: Path, expect: int, conc: int,
                 port: int) -> None:  # fmt: skip
        self.peer, self.state = peer, state
        args = [module, "worker", peer, dsn, str(state), str(expect), str(conc), str(port)]
        super().__init__(peer, args, state / f"{peer}-worker.log")

    def __enter__(self) -> Worker:
        return self

    def wait_file(self, name: str, timeout: float = TIMEOUT_S) -> int:
        """Wait for the file ``name`` in the state directory; return the (first) integer in it."""
        return self.wait_ints(name, timeout)[0]

    def wait_ints(self, name: str, timeout: float = TIMEOUT_S) -> list[int]:
        """Wait for the file ``name`` in the state directory; return the integers in it."""
        return [int(v) for v in self.wait_text(self.state / name, timeout, repr(name)).split()]


# -- figures ----------------------------------------------------------------------------------


class Client(Protocol):
    async def enqueue(self, i: int) -> None: ...
    async def enqueue_batch(self, first: int, count: int) -> None: ...
    async def stamp(self, enqueued_at: float) -> None: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class Peer:
    name: str
    module: str  # runs the worker: ``python -m module worker ...``
    connect: Callable[[str, int], Awaitable[Client]]  # (dsn, queue concurrency) -> installed
    unfinished: str  # SQL: jobs not yet in a finished state


def _enqueue(peer: Peer, dsn: str, conc: int, n: int, batched: bool) -> float:
    """Install the peer's schema in ``dsn``; enqueue ``n`` no-op jobs; return jobs/s."""

    async def go() -> float:
        client = await peer.connect(dsn, conc)
        try:
            t0 = time.perf_counter()
            if batched:
                for first in range(0, n, BATCH):
                    await client.enqueue_batch(first, min(BATCH, n - first))
            else:
                for i in range(n):
                    await client.enqueue(i)
            return n / (time.perf_counter() - t0)
        finally:
            await client.close()

    return asyncio.run(go())


def process_run(peer: Peer, n: int, conc: int, batched: bool, tmp: Path) -> dict[str, float]:
    """One run in a fresh database: enqueue ``n`` jobs (one at a time or batched), then start
    a worker at concurrency ``conc`` and time it draining them; see pg_peers' docstring."""
    with fresh_database() as dsn:
        enqueue_rate = _enqueue(peer, dsn, conc, n, batched)
        state = tmp / f"{peer.name}-{uuid.uuid4().hex[:8]}"
        state.mkdir()
        with Worker(peer.module, peer.name, dsn, state, n, conc, 0) as worker:
            ready = worker.wait_file("ready")
            done = worker.wait_file("done")
            first = worker.wait_file("first", timeout=1.0)
            deadline = time.monotonic() + TIMEOUT_S
            while (left := count(dsn, peer.unfinished)) and time.monotonic() < deadline:
                worker.check_alive()
                time.sleep(WAIT_POLL_S)
            settled = time.time_ns()
            rss_kib, children_kib = worker.wait_ints("rss", timeout=1.0)
        if left:
            raise RuntimeError(f"{peer.name}: {left} of {n} jobs unfinished after {TIMEOUT_S} s")
    start = min(ready, first)
    return {
        "enqueue_per_s": enqueue_rate,
        "process_per_s": n / ((done - start) / 1e9),
        "process_committed_per_s": n / ((max(settled, done) - start) / 1e9),
        "rss_mb": rss_kib / 1024,
        "children_rss_mb": children_kib / 1024,
    }


def latency(peer: Peer, samples: int, conc: int, tmp: Path) -> dict[str, float]:
    """Enqueue -> start (ms) of one stamp job at a time on an idle worker, at both paces."""
    with (
        fresh_database() as dsn,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        ExitStack() as stack,  # the worker: stopped before the database is dropped
    ):
        sock.bind(("127.0.0.1", 0))
        state = tmp / f"{peer.name}-lat-{uuid.uuid4().hex[:8]}"
        state.mkdir()

        async def go() -> dict[str, float]:
            client = await peer.connect(dsn, conc)  # installs the schema before the worker starts
            out: dict[str, float] = {}
            try:
                worker = stack.enter_context(
                    Worker(peer.module, peer.name, dsn, state, 0, conc, sock.getsockname()[1])
                )
                worker.wait_file("ready")
                for label, gap in (("", LATENCY_GAP_S), ("_gap_20ms", QUIET_GAP_S)):
                    lat = []
                    for k in range(LATENCY_WARMUP + samples):
                        sock.settimeout(TIMEOUT_S if k < LATENCY_WARMUP else SAMPLE_TIMEOUT_S)
                        t = time.time()
                        await client.stamp(t)
                        try:
                            data = sock.recv(200)
                        except TimeoutError:
                            worker.check_alive()
                            msg = f"{peer.name}: no sample in {sock.gettimeout()} s"
                            raise TimeoutError(msg) from None
                        enqueued, started = (float(v) for v in data.split())
                        if enqueued != t:
                            raise RuntimeError(f"{peer.name}: sample for {enqueued}, sent {t}")
                        lat.append((started - enqueued) * 1000)
                        await asyncio.sleep(gap)
                    q = statistics.quantiles(lat[LATENCY_WARMUP:], n=100, method="inclusive")
                    out[f"latency{label}_p50_ms"], out[f"latency{label}_p99_ms"] = q[49], q[98]
            finally:
                await client.close()
            return out

        return asyncio.run(go())
