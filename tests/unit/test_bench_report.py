"""The server benchmark's bookkeeping: latency ratios pair each of our figures with the
peer's at the same pace (leaving out what was not measured), and variants are measured in
turns and pooled."""

from __future__ import annotations

from collections.abc import Callable

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


def test_variants_are_measured_in_turns_and_pooled() -> None:
    from jobcollection.bench.server import interleaved

    calls: list[tuple[str, int]] = []

    def variant(name: str, value: float) -> Callable[[int], list[float]]:
        def take(n: int) -> list[float]:
            calls.append((name, n))
            return [value] * n

        return take

    figures = interleaved({"a": variant("a", 1.0), "b": variant("b", 2.0)}, n=40, blocks=2)
    assert calls == [("a", 20), ("b", 20), ("a", 20), ("b", 20)]
    assert figures == {
        "a": {"p50_ms": 1.0, "p99_ms": 1.0, "samples": 40},
        "b": {"p50_ms": 2.0, "p99_ms": 2.0, "samples": 40},
    }
