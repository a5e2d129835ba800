"""Two `serve` processes on one database: a job saved through B wakes an idle worker on A (its
poll interval is ten minutes, so only the wake-up can start it) and reaches A's subscriber.
How fast is the benchmark's business (`python -m benchmarks.cross_server`)."""

from __future__ import annotations

from benchmarks.cross_server import measure


def test_a_save_through_one_server_wakes_a_worker_and_a_subscriber_on_another(db: str) -> None:
    report = measure(db, samples=5)
    assert report["lost"] == 0
    assert len(report["save_to_start_ms"]) == 3  # p50, p95, max: every sample started
    assert len(report["save_to_seen_ms"]) == 3
