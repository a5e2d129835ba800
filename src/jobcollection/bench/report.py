"""Our benchmark's report: runs the figures of `ours` (or, with `--server`, of `server`) and
prints them as JSON.

Enqueue figures are the median of three runs, the raw SQLite floor measured in the same turns.
Other job queues are not measured here (the package imports none of them): the repository's
`benchmarks/side_by_side.py` adds them to this report in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import databases, ours
from .options import add_options

RUNS = 3  # enqueue runs take seconds: each is repeated, the median reported (noisy machine)


def median_of_runs(measure: Callable[[], float], runs: int = RUNS) -> dict[str, Any]:
    """The median of `runs` measurements, and all of them."""
    values = [measure() for _ in range(runs)]
    return {"median": round(statistics.median(values)), "runs": [round(v) for v in values]}


def machine() -> dict[str, str]:
    return {"python": platform.python_version(), "platform": platform.platform()}


def enqueue_figures(quick: bool) -> dict[str, Any]:
    """Enqueue figures, and the raw SQLite floor under the batched one (same run, the batched
    and raw runs alternating so that the machine's noise falls on both alike); on PostgreSQL,
    the single-connection commit floor under the one-at-a-time figure instead."""
    n = 3000 if quick else 20000
    if databases.kind() == "postgres":
        return _postgres_enqueue_figures(n)
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


def _postgres_enqueue_figures(n: int) -> dict[str, Any]:
    pairs = [(ours.enqueue_rate(n), databases.commit_floor(n)) for _ in range(RUNS)]
    single = statistics.median(rate for rate, _ in pairs)
    floor = statistics.median(rate for _, rate in pairs)
    batched = median_of_runs(lambda: ours.enqueue_batched_rate(5 * n))
    return {
        "enqueue_per_s": round(single),
        "enqueue_per_s_runs": [round(rate) for rate, _ in pairs],
        "commit_floor_per_s": round(floor),
        "commit_floor_per_s_runs": [round(rate) for _, rate in pairs],
        "enqueue_vs_commit_floor": round(single / floor, 2),
        "enqueue_batched_per_s": batched["median"],
        "enqueue_batched_per_s_runs": batched["runs"],
    }


def default_backlog(quick: bool) -> int:
    return 100_000 if quick else 1_000_000


def our_figures(quick: bool, backlog: int) -> dict[str, Any]:
    """Every in-process figure of our queue."""
    n = 3000 if quick else 20000
    figures: dict[str, Any] = {
        **enqueue_figures(quick),
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


def server_figures(quick: bool) -> dict[str, Any]:
    """The network figures (imported here: the in-process run needs no websocket client)."""
    from . import server

    return server.run_all(quick)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The report the parsed options ask for (without its `seconds`)."""
    databases.use(args.storage)
    if args.server_figures:
        server = server_figures(args.quick)
        return {"machine": machine(), "storage": databases.kind(), "server": server}
    backlog = args.backlog or default_backlog(args.quick)
    mine = enqueue_figures(args.quick) if args.enqueue_only else our_figures(args.quick, backlog)
    return {"machine": machine(), "storage": databases.kind(), "jobcollection": mine}


def emit(report: dict[str, Any], out_path: str | None) -> None:
    """Print the report as JSON, and write it to `out_path` too if given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out_path:
        with open(out_path, "w", encoding="utf-8") as out:
            out.write(text + "\n")


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C would: the `finally`s run, so a figure's PostgreSQL
    schema or temporary files are removed (a plain SIGTERM would leave them behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_and_emit(args: argparse.Namespace) -> None:
    started = time.time()
    with _terminate_as_exit():
        report = run(args)
    report["seconds"] = round(time.time() - started, 1)
    emit(report, args.out)


def main(argv: Sequence[str] | None = None, prog: str = "python -m jobcollection.bench") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Our job queue's benchmark (JSON).")
    add_options(parser)
    run_and_emit(parser.parse_args(argv))
    return 0
