"""The server benchmark's bookkeeping: latency ratios pair each of our figures with the
peer's at the same pace (leaving out what was not measured), and variants are measured in
turns and pooled."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.side_by_side import latency_ratios


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


def test_the_peer_ratios_are_ours_over_theirs_where_both_were_measured() -> None:
    from benchmarks.side_by_side import huey_comparison, processing_ratios

    server = {"node_meteor_job_c4_p10_per_s": 3000}
    peers = {"huey_redis": {"process_per_s_w4": 1500.0}, "celery_redis": {"skipped": "no Redis"}}
    assert processing_ratios(server, peers) == {"node_worker_over_huey_redis": 2.0}
    assert processing_ratios({"node": "skipped"}, peers) == {}
    mine = {
        "enqueue_per_s": 4000,
        "process_per_s_c1_p1": 3000,
        "process_per_s_c4_p10": 9000,
        "latency": {"p50_ms": 0.5, "p99_ms": 2.0},
        "worker_peak_rss_mb_c4": 40.0,
    }
    huey = {
        "enqueue_per_s": 2000.0,
        "process_per_s_w1": 1000.0,
        "process_per_s_w4": 3000.0,
        "latency_p50_ms": 1.0,
        "latency_p99_ms": 3.0,
        "consumer_peak_rss_mb_w4": 20.0,
    }
    assert huey_comparison(mine, huey) == {
        "enqueue": 2.0,
        "process_c1_p1_vs_huey_w1": 3.0,
        "process_c4_p10_vs_huey_w4": 3.0,
        "latency_p50": 2.0,
        "latency_p99": 1.5,
        "worker_peak_rss": 0.5,
    }


def test_postgres_ratios_compare_ours_with_the_best_peer_of_each_figure() -> None:
    from benchmarks.side_by_side import postgres_ratios

    mine = {
        "enqueue_per_s": 3000,
        "enqueue_batched_per_s": 80000,
        "process_per_s_c4_p10": 12000,
        "cross_process_latency": {"p50_ms": 1.5, "p99_ms": 4.0},
    }
    peers = {
        "pgqueuer": {
            "enqueue_per_s": 2000,
            "enqueue_batched_per_s": 40000,
            "process_per_s_c4": 4000,
            "process_per_s_defaults": 6000,
            "process_committed_per_s_c4": 9999,  # not a processing figure of its own
            "latency_p50_ms": 3.0,
        },
        "procrastinate": {"enqueue_per_s": 500, "process_per_s_c4": 300, "latency_p50_ms": 5.0},
        "chancy": {"skipped": "not installed"},
    }
    assert postgres_ratios(mine, peers) == {
        "enqueue": 1.5,
        "enqueue_batched": 2.0,
        "process_c4": 2.0,  # over pgqueuer's best (its defaults)
        "latency_p50_other_process": 2.0,  # the best peer's 3.0 ms over our 1.5 ms
    }
