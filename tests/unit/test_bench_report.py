"""The server report's latency ratios pair each of our figures with the peer's at the same
pace, and leave out what was not measured."""

from __future__ import annotations

from jobcollection.bench.__main__ import latency_ratios


def test_each_figure_is_compared_at_its_own_pace() -> None:
    server = {
        "python_enqueue_to_start": {"p50_ms": 1.5},
        "python_enqueue_to_start_gap_20ms": {"p50_ms": 2.5},
        "node_enqueue_to_start": {"p50_ms": 2.0},
        "node": "skipped: no node_modules",
    }
    peers = {
        "celery_redis": {"latency_p50_ms": 3.0, "latency_gap_20ms_p50_ms": 5.0},
        "huey_redis": {"skipped": "no Redis"},
    }
    assert latency_ratios(server, peers) == {
        "python_vs_celery_redis": 2.0,
        "python_gap_20ms_vs_celery_redis": 2.0,
        "node_vs_celery_redis": 1.5,
    }
