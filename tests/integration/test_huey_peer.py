"""Smoke test of the SQLite huey peer of `python -m benchmarks.side_by_side`: with tiny counts its
consumer process starts, drains its queue and reports positive figures."""

from __future__ import annotations

import math

import pytest
from benchmarks.peers import huey_sqlite

pytestmark = pytest.mark.slow


def test_huey_peer_reports_positive_figures() -> None:
    report = huey_sqlite.run_all(n=100, samples=10)
    assert set(report) == {
        "enqueue_per_s",
        "process_per_s_w1",
        "process_per_s_w4",
        "latency_p50_ms",
        "latency_p99_ms",
        "consumer_peak_rss_mb_w1",
        "consumer_peak_rss_mb_w4",
    }
    for name, value in report.items():
        assert math.isfinite(value), (name, value)
        assert value > 0, (name, value)
    assert report["latency_p50_ms"] <= report["latency_p99_ms"]
