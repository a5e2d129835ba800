"""`python -m jobcollection.bench`: our figures beside huey's, same machine, same run; JSON out.

Options: `--quick` (small counts, for a smoke run), `--no-huey`, `--backlog N` (the large
waiting backlog for the claim-time figure, default 1,000,000), `--out FILE` (also write JSON),
`--enqueue-only` (just the enqueue figures and the raw SQLite floor, ~30 s). Enqueue figures
are the median of three runs (ours, huey's and the raw floor alike).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from . import huey_peer, ours


def _ratio(mine: float, theirs: float, higher_is_better: bool = True) -> float:
    if not theirs or not mine:
        return 0.0
    return round(mine / theirs if higher_is_better else theirs / mine, 2)


RUNS = 3  # enqueue runs take seconds: each is repeated, the median reported (noisy machine)


def median_of_runs(measure: Callable[[], float], runs: int = RUNS) -> dict[str, Any]:
    """The median of `runs` measurements, and all of them."""
    values = [measure() for _ in range(runs)]
    return {"median": round(statistics.median(values)), "runs": [round(v) for v in values]}


def _enqueue(quick: bool) -> dict[str, Any]:
    """Enqueue figures, and the raw SQLite floor under the batched one (same run, the batched
    and raw runs alternating so that the machine's noise falls on both alike)."""
    n = 3000 if quick else 20000
    pairs = [
        (ours.enqueue_batched_rate(5 * n), ours.raw_sqlite_batched_rate(5 * n)) for _ in range(RUNS)
    ]
    batched = statistics.median(rate for rate, _ in pairs)
    raw = statistics.median(rate for _, rate in pairs)
    single = median_of_runs(lambda: ours.enqueue_rate(n))
    return {
        "enqueue_per_s": single["median"],
        "enqueue_per_s_runs": single["runs"],
        "enqueue_batched_per_s": round(batched),
        "enqueue_batched_per_s_runs": [round(rate) for rate, _ in pairs],
        "raw_sqlite_batched_per_s": round(raw),
        "raw_sqlite_batched_per_s_runs": [round(rate) for _, rate in pairs],
        "enqueue_batched_vs_raw_sqlite": round(batched / raw, 2),
    }


def _ours(quick: bool, backlog: int) -> dict[str, Any]:
    n = 3000 if quick else 20000
    figures: dict[str, Any] = {
        **_enqueue(quick),
        "process_per_s_c1_p1": round(ours.process_rate(n, 1, 1)),
        "process_per_s_c4_p10": round(ours.process_rate(2 * n, 4, 10)),
        "latency": ours.latency(100 if quick else 500),
        "delayed_start_lateness": ours.latency(50 if quick else 200, delay_ms=20),
        "cross_process_latency": ours.cross_process_latency(50 if quick else 200),
        "claim_ms_10k_waiting": round(ours.claim_time_ms(10_000), 4),
        f"claim_ms_{backlog}_waiting": round(ours.claim_time_ms(backlog), 4),
    }
    figures["claim_ratio_backlog_vs_10k"] = round(
        figures[f"claim_ms_{backlog}_waiting"] / figures["claim_ms_10k_waiting"], 2
    )
    figures["worker_peak_rss_mb_c4"] = ours.worker_peak_rss_mb(1000 if quick else 5000, 4)
    figures["bench_process_peak_rss_mb"] = round(ours.peak_rss_mb(), 1)
    return figures


def _comparison(mine: dict[str, Any], huey: dict[str, float]) -> dict[str, float]:
    """Ours / huey's, so > 1 means we are ahead (for latency: huey's time / ours)."""
    return {
        "enqueue": _ratio(mine["enqueue_per_s"], huey["enqueue_per_s"]),
        "process_c1_p1_vs_huey_w1": _ratio(mine["process_per_s_c1_p1"], huey["process_per_s_w1"]),
        "process_c4_p10_vs_huey_w4": _ratio(mine["process_per_s_c4_p10"], huey["process_per_s_w4"]),
        "latency_p50": _ratio(mine["latency"]["p50_ms"], huey["latency_p50_ms"], False),
        "latency_p99": _ratio(mine["latency"]["p99_ms"], huey["latency_p99_ms"], False),
        "worker_peak_rss": _ratio(
            mine["worker_peak_rss_mb_c4"], huey["consumer_peak_rss_mb_w4"], False
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jobcollection.bench")
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument("--no-huey", action="store_true", help="skip the huey figures")
    parser.add_argument("--backlog", type=int, default=None, help="waiting jobs for claim time")
    parser.add_argument("--out", help="also write the JSON report to this file")
    parser.add_argument(
        "--enqueue-only", action="store_true", help="only the enqueue figures (no huey)"
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="only the network figures: our server (DDP, node and Python clients) beside "
        "huey and Celery on Redis",
    )
    args = parser.parse_args(argv)
    if args.server:
        _print(_server_report(args.quick), args.out)
        return
    backlog = args.backlog or (100_000 if args.quick else 1_000_000)
    started = time.time()
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "jobcollection": (
            _enqueue(args.quick) if args.enqueue_only else _ours(args.quick, backlog)
        ),
    }
    if not args.no_huey and not args.enqueue_only:
        report["huey"] = huey_peer.run_all(1000 if args.quick else 5000, 100 if args.quick else 300)
        report["ratio_ours_over_huey"] = _comparison(report["jobcollection"], report["huey"])
    report["seconds"] = round(time.time() - started, 1)
    _print(report, args.out)


def _print(report: dict[str, Any], out_path: str | None) -> None:
    text = json.dumps(report, indent=2)
    print(text)
    if out_path:
        with open(out_path, "w", encoding="utf-8") as out:
            out.write(text + "\n")


def latency_ratios(server: dict[str, Any], peers: dict[str, Any]) -> dict[str, float]:
    """Enqueue -> start, each peer's p50 ÷ ours at the same pace (> 1: ours starts sooner),
    for our Python and node workers, at the peers' pace and at the 20 ms one."""
    ratios = {}
    for who, pace in itertools.product(("python", "node"), ("", "_gap_20ms")):
        mine = server.get(f"{who}_enqueue_to_start{pace}")
        for name, peer in peers.items():
            theirs = peer.get(f"latency{pace}_p50_ms") if isinstance(peer, dict) else None
            if isinstance(mine, dict) and theirs:
                ratios[f"{who}{pace}_vs_{name}"] = _ratio(mine["p50_ms"], theirs, False)
    return ratios


def _server_report(quick: bool) -> dict[str, Any]:
    """Server figures and the Redis peers, in one run on this machine."""
    from . import redis_peers, server

    started = time.time()
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "server": server.run_all(quick),
        "peers": redis_peers.run_all(quick),
    }
    ours = report["server"].get("node_meteor_job_c4_p10_per_s")
    ratios = {}
    for name, peer in report["peers"].items():
        rate = peer.get("process_per_s_w4") if isinstance(peer, dict) else None
        if ours and rate:
            ratios[f"node_worker_over_{name}"] = _ratio(ours, rate)
    report["ratio_processing"] = ratios
    report["ratio_latency_p50"] = latency_ratios(report["server"], report["peers"])
    report["seconds"] = round(time.time() - started, 1)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
