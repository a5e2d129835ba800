"""Our figures beside the peers', same machine, same run; JSON out, with the ratios.

    pip install -r benchmarks/requirements.txt      # huey, Celery, redis, psutil
    python -m benchmarks.side_by_side --out bench.json              # ~2-3 min; ours and huey
    python -m benchmarks.side_by_side --server --out server.json    # ~2 min; Redis must run
    python -m benchmarks.side_by_side --postgres --out pg.json      # PostgreSQL peers

Run from the repository root. Without ``--server``: the report of ``jobcollection bench``
plus huey on SQLite (``peers/huey_sqlite.py``) and ``ratio_ours_over_huey``. With
``--server``: the report of ``jobcollection bench --server`` plus huey and Celery on Redis
(``peers/redis_peers.py``; a peer whose Redis or packages are missing reports ``skipped``),
``ratio_processing`` and ``ratio_latency_p50``. Every ratio is > 1 where we are ahead.
With ``--postgres``: pgqueuer, procrastinate and chancy on the PostgreSQL at
127.0.0.1:5432 (``peers/pg_peers.py``; each run in its own fresh database; ``--quick``: 1,000
jobs x 1 run, 50 latency samples, else 10,000 x 3 and 300), under ``postgres.peers``. Our own
PostgreSQL figures are not there yet: ``postgres.jobcollection`` says so until the PostgreSQL
adapter lands (see ``add_postgres``), and no ratio is computed.
Options: those of ``jobcollection bench``, ``--no-huey`` (our figures alone) and
``--postgres``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from typing import Any

from jobcollection.bench import report as ours
from jobcollection.bench.options import add_options


def ratio(mine: float, theirs: float, higher_is_better: bool = True) -> float:
    if not theirs or not mine:
        return 0.0
    return round(mine / theirs if higher_is_better else theirs / mine, 2)


def huey_comparison(mine: dict[str, Any], huey: dict[str, float]) -> dict[str, float]:
    """Ours / huey's, so > 1 means we are ahead (for latency: huey's time / ours)."""
    return {
        "enqueue": ratio(mine["enqueue_per_s"], huey["enqueue_per_s"]),
        "process_c1_p1_vs_huey_w1": ratio(mine["process_per_s_c1_p1"], huey["process_per_s_w1"]),
        "process_c4_p10_vs_huey_w4": ratio(mine["process_per_s_c4_p10"], huey["process_per_s_w4"]),
        "latency_p50": ratio(mine["latency"]["p50_ms"], huey["latency_p50_ms"], False),
        "latency_p99": ratio(mine["latency"]["p99_ms"], huey["latency_p99_ms"], False),
        "worker_peak_rss": ratio(
            mine["worker_peak_rss_mb_c4"], huey["consumer_peak_rss_mb_w4"], False
        ),
    }


def latency_ratios(server: dict[str, Any], peers: dict[str, Any]) -> dict[str, float]:
    """Enqueue -> start, each peer's p50 ÷ ours at the same pace (> 1: ours starts sooner),
    for our Python and node workers, at the peers' pace and at the 20 ms one."""
    ratios = {}
    for who, pace in itertools.product(("python", "node"), ("", "_gap_20ms")):
        mine = server.get(f"{who}_enqueue_to_start{pace}")
        for name, peer in peers.items():
            theirs = peer.get(f"latency{pace}_p50_ms") if isinstance(peer, dict) else None
            if isinstance(mine, dict) and theirs:
                ratios[f"{who}{pace}_vs_{name}"] = ratio(mine["p50_ms"], theirs, False)
    return ratios


def processing_ratios(server: dict[str, Any], peers: dict[str, Any]) -> dict[str, float]:
    """Our node worker's rate over each Redis peer's 4-worker rate."""
    mine = server.get("node_meteor_job_c4_p10_per_s")
    ratios = {}
    for name, peer in peers.items():
        rate = peer.get("process_per_s_w4") if isinstance(peer, dict) else None
        if mine and rate:
            ratios[f"node_worker_over_{name}"] = ratio(mine, rate)
    return ratios


def add_server_peers(report: dict[str, Any], quick: bool) -> None:
    from benchmarks.peers import redis_peers

    report["peers"] = redis_peers.run_all(quick)
    report["ratio_processing"] = processing_ratios(report["server"], report["peers"])
    report["ratio_latency_p50"] = latency_ratios(report["server"], report["peers"])


def add_postgres(report: dict[str, Any], quick: bool) -> None:
    """The PostgreSQL peers, and the place of our own figures on PostgreSQL."""
    from benchmarks.peers import pg_peers

    n, samples, runs = (1000, 50, 1) if quick else (10_000, 300, 3)
    report["postgres"] = {
        # TODO(pg-adapter): ours on PostgreSQL goes here once the adapter (branch pg-adapter)
        # is merged: the same figures, measured on the same server in the same run (a fresh
        # database each), then ratios over the best peer as `huey_comparison` does. Until
        # then nothing is measured or estimated for us.
        "jobcollection": {"pending": "the PostgreSQL adapter is not merged yet"},
        "peers": pg_peers.run_all(n, samples, runs),
    }


def add_huey(report: dict[str, Any], quick: bool) -> None:
    from benchmarks.peers import huey_sqlite

    report["huey"] = huey_sqlite.run_all(1000 if quick else 5000, 100 if quick else 300)
    report["ratio_ours_over_huey"] = huey_comparison(report["jobcollection"], report["huey"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.side_by_side",
        description="Our benchmark and the peers' in the same run (JSON, with ratios).",
    )
    add_options(parser)
    parser.add_argument("--no-huey", action="store_true", help="skip the huey figures")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="only the PostgreSQL peers (pgqueuer, procrastinate, chancy); ours: pending",
    )
    args = parser.parse_args(argv)
    started = time.time()
    if args.postgres:
        report: dict[str, Any] = {"machine": ours.machine()}
        add_postgres(report, args.quick)
        report["seconds"] = round(time.time() - started, 1)
        ours.emit(report, args.out)
        return 0
    report = ours.run(args)
    if args.server_figures:
        add_server_peers(report, args.quick)
    elif not args.no_huey and not args.enqueue_only:
        add_huey(report, args.quick)
    report["seconds"] = round(time.time() - started, 1)
    ours.emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
