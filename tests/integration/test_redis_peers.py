"""Smoke test of the Redis benchmark peers (huey RedisHuey, Celery with the Redis broker): each
runs with tiny counts and reports positive figures.

Needs Redis at 127.0.0.1:6379 and the `redis`, `huey` and `celery` packages (test extras;
benchmarks/requirements.txt pins them). Without them the tests skip, unless the env var CI is
set: then they fail.
"""

from __future__ import annotations

import math
import os

import pytest
from benchmarks.peers import redis_peers

pytestmark = pytest.mark.slow

FIGURES = (
    "process_per_s_w4",
    "enqueue_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_gap_20ms_p50_ms",
    "latency_gap_20ms_p99_ms",
)


def _require(peer: str) -> None:
    problem = redis_peers.unavailable(peer)
    if problem is None:
        return
    message = f"the {peer} benchmark peer cannot run: {problem}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so this fails instead of skipping")
    pytest.skip(message)


@pytest.mark.parametrize("peer", ["huey_redis", "celery_redis"])
def test_peer_reports_positive_figures(peer: str) -> None:
    _require(peer)
    report = redis_peers.measure(peer, n=50, samples=10, runs=1)
    assert "skipped" not in report, report
    for name in FIGURES:
        value = report[name]
        assert isinstance(value, float), (name, value)
        assert math.isfinite(value), (name, value)
        assert value > 0, (name, value)
    assert report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert report["latency_gap_20ms_p50_ms"] <= report["latency_gap_20ms_p99_ms"]
    assert report["jobs"] == 50
    assert report["latency_samples"] == 10
