"""Smoke test of the PostgreSQL benchmark peers (pgqueuer, procrastinate, chancy): each runs
with tiny counts and reports positive figures.

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, allowed to create databases; another server:
JOBCOLLECTION_BENCH_PG_ADMIN_DSN) and the peers' packages (benchmarks/requirements.txt pins
them). Without them the tests skip, unless the env var CI is set: then they fail.
"""

from __future__ import annotations

import math
import os

import pytest
from benchmarks.peers import pg_peers

pytestmark = pytest.mark.slow

FIGURES = (
    "enqueue_per_s",
    "enqueue_batched_per_s",
    "process_per_s_c4",
    "process_committed_per_s_c4",
    "worker_peak_rss_mb_c4",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_gap_20ms_p50_ms",
    "latency_gap_20ms_p99_ms",
)


def _require(peer: str) -> None:
    problem = pg_peers.unavailable(peer)
    if problem is None:
        return
    message = f"the {peer} benchmark peer cannot run: {problem}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so this fails instead of skipping")
    pytest.skip(message)


@pytest.mark.parametrize("peer", ["pgqueuer", "procrastinate", "chancy"])
def test_peer_reports_positive_figures(peer: str) -> None:
    _require(peer)
    report = pg_peers.measure(peer, n=50, samples=10, runs=1)
    assert "skipped" not in report, report
    second = "defaults" if peer == "pgqueuer" else "c1"
    figures = (*FIGURES, f"process_per_s_{second}", f"worker_peak_rss_mb_{second}")
    for name in figures:
        value = report[name]
        assert isinstance(value, float), (name, value)
        assert math.isfinite(value), (name, value)
        assert value > 0, (name, value)
    assert report["worker_children_rss_mb_c4"] >= 0
    assert report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert report["latency_gap_20ms_p50_ms"] <= report["latency_gap_20ms_p99_ms"]
    assert report["jobs"] == 50
    assert report["latency_samples"] == 10


def test_no_benchmark_database_left_behind() -> None:
    _require("procrastinate")  # PostgreSQL reachable is what matters here
    from benchmarks.peers import pg_harness

    with pg_harness.fresh_database() as dsn:
        name = dsn.rsplit("/", 1)[1]
        assert name.startswith("jcbench_")
        assert pg_harness.count(dsn, "SELECT 1") == 1
    with pg_harness._admin() as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert row.fetchone()[0] == 0


def test_unreachable_postgres_is_a_skip_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.peers import pg_harness

    monkeypatch.setattr(pg_harness, "ADMIN_DSN", "postgresql://postgres@127.0.0.1:1/postgres")
    report = pg_peers.measure("procrastinate", n=10, samples=10)
    assert list(report) == ["skipped"]
    assert "not reachable" in report["skipped"]


def test_missing_package_is_a_skip_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pg_peers._NEEDS, "chancy", ("chancy", "jcbench_no_such_module"))
    report = pg_peers.measure("chancy", n=10, samples=10)
    assert list(report) == ["skipped"]
    assert "jcbench_no_such_module" in report["skipped"]
