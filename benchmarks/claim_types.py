"""How the cost of a claim (`getWork`) depends on the number of job types asked for.

Two queues, each in a fresh SQLite file:

- ``few-ready``: 20,000 ready jobs of one type and one ready job each of 49 other types; the
  claim asks for N types, the deep one and up to 49 others among them, the rest idle (a
  worker serving many types, few of which have work);
- ``all-ready``: every one of the N types asked for has ready jobs (the worst case).

The queues are deep enough for every ``api`` sample (one eighth as many as ``sql``, each
after 5 unmeasured warm-up calls).

For N in 1, 8, 64, 256 and max_jobs 1 and 10 it prints the median and p90 of

- ``sql``: the claim statement(s) alone, inside a write transaction that is rolled back, so
  every sample sees the same queue;
- ``api``: ``JobCollection.get_work`` end to end (committed).

Run: ``python benchmarks/claim_types.py [--samples 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from jobcollection import Job, JobCollection

COUNTS = (1, 8, 64, 256)
LIMITS = (1, 10)
FIELDS = {"status": "running", "runId": "bench", "updated": 0}


class _Rollback(Exception):
    pass


def _fill(jc: JobCollection, layout: str) -> None:
    if layout == "few-ready":
        jc.save_jobs([Job(jc, "deep", {"n": n}) for n in range(20_000)])
        jc.save_jobs([Job(jc, f"other-{k}", {}) for k in range(49)])
    else:  # claims take t-0's jobs first (saved first): it has enough for every sample
        jc.save_jobs([Job(jc, "t-0", {"n": n}) for n in range(3000)])
        jc.save_jobs([Job(jc, f"t-{k}", {"n": n}) for k in range(1, 256) for n in range(50)])


def _types(layout: str, count: int) -> list[str]:
    if layout == "few-ready":
        named = ["deep", *(f"other-{k}" for k in range(49))]
        return (named + [f"idle-{k}" for k in range(count)])[:count]
    return [f"t-{k}" for k in range(count)]


def _sample(run: Callable[[], object], samples: int) -> tuple[float, float]:
    for _ in range(5):  # warm up: statement cache, pages
        run()
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1e6, times[int(len(times) * 0.9)] * 1e6


def _sql_claim(jc: JobCollection, types: list[str], limit: int) -> Callable[[], object]:
    storage = jc.manager.storage
    log = {"time": 0, "runId": "bench", "level": "info", "message": "Job Running", "data": {}}

    def run() -> None:
        try:
            with storage.write(jc.root) as tx:  # type: ignore[attr-defined]
                tx.claim(types, limit, FIELDS, log)
                raise _Rollback
        except _Rollback:
            pass

    return run


def _api_claim(jc: JobCollection, types: list[str], limit: int) -> Callable[[], object]:
    return lambda: jc.get_work(types, max_jobs=limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    print(
        f"{'layout':10} {'types':>5} {'max':>4}  {'sql median':>10} {'p90':>7}  "
        f"{'api median':>10} {'p90':>7}  (µs)"
    )
    for layout in ("few-ready", "all-ready"):
        with tempfile.TemporaryDirectory() as folder:
            jc = JobCollection("q", Path(folder) / "claims.db")
            jc.start_job_server()
            _fill(jc, layout)
            for count in COUNTS:
                for limit in LIMITS:
                    types = _types(layout, count)
                    sql = _sample(_sql_claim(jc, types, limit), args.samples)
                    api = _sample(_api_claim(jc, types, limit), args.samples // 8)
                    print(
                        f"{layout:10} {count:5d} {limit:4d}  {sql[0]:10.0f} {sql[1]:7.0f}  "
                        f"{api[0]:10.0f} {api[1]:7.0f}"
                    )
            jc.close()


if __name__ == "__main__":
    main()
