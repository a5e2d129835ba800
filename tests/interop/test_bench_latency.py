"""Smoke test of the enqueue -> start figures of `jobcollection bench --server`: the
saver and the waiting worker (node's meteor-job, woken by the publication or by the doorbell,
and our remote Python queue) keep in step sample by sample and report sane percentiles."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_harness import require_node

from jobcollection.bench import server as bench
from storage_support import Databases

pytestmark = [pytest.mark.slow, pytest.mark.node]
SAMPLES = 20


@pytest.fixture(scope="module")
def served(module_dbs: Databases) -> Iterator[bench.ServerProcess]:
    server = bench.ServerProcess(module_dbs("bench"))
    try:
        yield server
    finally:
        server.stop()


def _sane(figure: dict[str, float]) -> None:
    assert figure["samples"] == SAMPLES - SAMPLES // 10  # the first tenth warms up
    assert 0 < figure["p50_ms"] <= figure["p99_ms"]
    assert math.isfinite(figure["p99_ms"])


def test_python_worker_latency(served: bench.ServerProcess) -> None:
    _sane(bench.python_enqueue_to_start(served, SAMPLES))


@pytest.mark.parametrize("doorbell", [False, True], ids=["publication", "doorbell"])
def test_node_worker_latency(served: bench.ServerProcess, doorbell: bool) -> None:
    require_node()
    modules = bench.node_modules()
    assert isinstance(modules, Path)
    _sane(bench.node_enqueue_to_start(served, modules, SAMPLES, doorbell=doorbell))


def test_node_worker_latency_for_jobs_saved_by_another_process(
    served: bench.ServerProcess,
) -> None:
    require_node()
    modules = bench.node_modules()
    assert isinstance(modules, Path)
    _sane(bench.node_enqueue_to_start(served, modules, SAMPLES, through_server=False, gap_s=0.02))
