"""Does recording the claiming worker cost a claim anything? Prints one JSON line of figures.

Run it on two checkouts in turns (the machine is noisy), e.g.:

    PYTHONPATH=/path/to/before/src python benchmarks/claim_with_worker.py claims
    python benchmarks/claim_with_worker.py claims

`claims`: `claim_ms`, the mean ms of a `get_work` of one job beside 10,000 waiting ones (as
`python -m jobcollection.bench` measures it), median of the rounds; where the registry exists
also `claim_ms_worker`, the same claims recorded for a registered worker (as a queue makes
them), in blocks alternating with unrecorded ones on the same database.
`queues`: the bench's queue rates, no-op jobs per second (`process_per_s_c1_p1`: one thread,
one job per call; `process_per_s_c4_p10`: four threads, ten jobs per call), median of three.
`remote`: the server bench's remote rates (a `jobcollection serve` process; our Python queue
and, with the npm packages of the interop tests, the original's node worker; c4 p10), whose
claims the server now records for their connections; median of three.
"""

from __future__ import annotations

import inspect
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jobcollection import Job, JobCollection
from jobcollection.bench import ours, server

BLOCK = 200  # claims per timed block
BLOCKS = 20  # blocks per round (alternating unrecorded / recorded where both exist)
WAITING = 10_000
ROUNDS = 5


def _claim_block(jc: JobCollection, options: dict[str, Any]) -> float:
    start = time.perf_counter()
    for _ in range(BLOCK):
        if not jc.get_work("noop", **options):
            raise RuntimeError("no ready job to claim")
    return (time.perf_counter() - start) * 1000 / BLOCK


def claim_round(with_registry: bool) -> tuple[float, float | None]:
    """(mean ms per unrecorded claim, per recorded claim or None) over one fresh database."""
    with tempfile.TemporaryDirectory() as folder, JobCollection("q", Path(folder) / "b.db") as jc:
        far = jc.forever_date - 1
        for _ in range(WAITING // 5000):
            jc.save_jobs([Job(jc, "noop", {}).after(far) for _ in range(5000)])
        jc.save_jobs([Job(jc, "noop", {}) for _ in range(BLOCK * BLOCKS)])
        jc.start_job_server()
        plain: list[float] = []
        recorded: list[float] = []
        worker: dict[str, Any] = {}
        if with_registry:
            queue = jc.process_jobs("other", lambda job: None)  # a registered worker
            worker["worker_id"] = queue.worker_id
        for block in range(BLOCKS):
            if with_registry and block % 2:
                recorded.append(_claim_block(jc, worker))
            else:
                plain.append(_claim_block(jc, {}))
        return statistics.mean(plain), statistics.mean(recorded) if recorded else None


def claims() -> dict[str, Any]:
    registry = "worker_id" in inspect.signature(JobCollection.get_work).parameters
    rounds = [claim_round(registry) for _ in range(ROUNDS)]
    figures: dict[str, Any] = {"registry": registry}
    figures["claim_ms"] = round(statistics.median(p for p, _ in rounds), 4)
    figures["claim_ms_runs"] = [round(p, 4) for p, _ in rounds]
    if registry:
        figures["claim_ms_worker"] = round(statistics.median(r or 0 for _, r in rounds), 4)
        figures["claim_ms_worker_runs"] = [round(r or 0, 4) for _, r in rounds]
    return figures


def queues() -> dict[str, Any]:
    c1 = [ours.process_rate(20000, 1, 1) for _ in range(3)]
    c4 = [ours.process_rate(40000, 4, 10) for _ in range(3)]
    return {
        "process_per_s_c1_p1": round(statistics.median(c1)),
        "process_per_s_c1_p1_runs": [round(v) for v in c1],
        "process_per_s_c4_p10": round(statistics.median(c4)),
        "process_per_s_c4_p10_runs": [round(v) for v in c4],
    }


def remote() -> dict[str, Any]:
    python, node = [], []
    modules = server.node_modules()
    for _ in range(3):
        with server._server() as serving:
            python.append(server.python_processing_rate(serving))
        if modules is not None:
            with server._server() as serving:
                node.append(server.node_processing_rate(serving, modules))
    figures: dict[str, Any] = {
        "remote_python_per_s": round(statistics.median(python)),
        "remote_python_per_s_runs": [round(v) for v in python],
    }
    if node:
        figures["remote_node_per_s"] = round(statistics.median(node))
        figures["remote_node_per_s_runs"] = [round(v) for v in node]
    return figures


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "claims"
    figures = {"claims": claims, "queues": queues, "remote": remote}[what]()
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
