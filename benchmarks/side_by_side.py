"""Our figures beside the peers', same machine, same run; JSON out, with the ratios.

    pip install -r benchmarks/requirements.txt      # huey, Celery, redis, psutil
    python -m benchmarks.side_by_side --out bench.json              # ~2-3 min; ours and huey
    python -m benchmarks.side_by_side --server --out server.json    # ~2 min; Redis must run
    python -m benchmarks.side_by_side --postgres --out pg.json      # ours and the PG peers

Run from the repository root. Without ``--server``: the report of ``jobcollection bench``
plus huey on SQLite (``peers/huey_sqlite.py``) and ``ratio_ours_over_huey``. With
``--server``: the report of ``jobcollection bench --server`` plus huey and Celery on Redis
(``peers/redis_peers.py``; a peer whose Redis or packages are missing reports ``skipped``),
``ratio_processing`` and ``ratio_latency_p50``. Every ratio is > 1 where we are ahead.
With ``--postgres [URL]``: our figures on that PostgreSQL server (default
127.0.0.1:5432/test; ``jobcollection bench --storage URL``, each figure in a schema of its own,
under ``postgres.jobcollection``) beside pgqueuer, procrastinate and chancy on the same server
(``peers/pg_peers.py``; each run in its own fresh database; ``--quick``: 1,000 jobs x 1 run,
50 latency samples, else 10,000 x 3 and 300; under ``postgres.peers``), and
``postgres.ratio_over_best_peer``.
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


def add_postgres(report: dict[str, Any], quick: bool, server: str, backlog: int | None) -> None:
    """Ours on PostgreSQL (`jobcollection bench --storage`, each figure in a fresh schema) and the
    PostgreSQL peers (each run in a fresh database), same server, same run, with the ratios
    over the best peer (> 1: we are ahead)."""
    from benchmarks.peers import pg_peers
    from jobcollection.bench import databases

    n, samples, runs = (1000, 50, 1) if quick else (10_000, 300, 3)
    databases.use(server)
    try:
        mine = ours.our_figures(quick, backlog or ours.default_backlog(quick))
    finally:
        databases.use(None)
    peers = pg_peers.run_all(n, samples, runs)
    report["postgres"] = {
        "jobcollection": mine,
        "peers": peers,
        "ratio_over_best_peer": postgres_ratios(mine, peers),
    }


def _best(peers: dict[str, Any], prefix: str, higher_is_better: bool = True) -> float:
    """The best figure of any peer among its keys starting with ``prefix`` (0: none)."""
    values = [
        value
        for peer in peers.values()
        if isinstance(peer, dict)
        for key, value in peer.items()
        if key.startswith(prefix)
        and not key.endswith("_runs")
        and "committed" not in key
        and isinstance(value, (int, float))
        and value > 0
    ]
    if not values:
        return 0.0
    return max(values) if higher_is_better else min(values)


def postgres_ratios(mine: dict[str, Any], peers: dict[str, Any]) -> dict[str, float]:
    """Ours over the best PostgreSQL peer per figure (for latency: its time over ours)."""
    return {
        "enqueue": ratio(mine["enqueue_per_s"], _best(peers, "enqueue_per_s")),
        "enqueue_batched": ratio(
            mine["enqueue_batched_per_s"], _best(peers, "enqueue_batched_per_s")
        ),
        "process_c4": ratio(mine["process_per_s_c4_p10"], _best(peers, "process_per_s_")),
        "latency_p50_other_process": ratio(
            mine["cross_process_latency"]["p50_ms"], _best(peers, "latency_p50_ms", False), False
        ),
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
        metavar="URL",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/test",
        default=None,
        help="ours on this PostgreSQL server (default 127.0.0.1:5432/test) beside pgqueuer, "
        "procrastinate and chancy",
    )
    args = parser.parse_args(argv)
    started = time.time()
    if args.postgres:
        report: dict[str, Any] = {"machine": ours.machine()}
        add_postgres(report, args.quick, args.postgres, args.backlog)
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
