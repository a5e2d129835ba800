"""Quick figures for the PostgreSQL adapter (not a benchmark suite): the single-connection
commit floor, one-job write transactions through the adapter and the API, and claim latency.

    python -m benchmarks.postgres_quick [postgresql://postgres@127.0.0.1:5432/test]

Works in a schema of its own on that database, dropped afterwards.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid

import psycopg

from jobcollection import JobCollection
from jobcollection.core.constants import FOREVER
from jobcollection.storage import open_storage

N = 2000
FIELDS = {"status": "running", "runId": "r", "updated": 0}
LOG = {"time": 0, "runId": "r", "level": "info", "message": "Job Running"}


def job(job_id: str) -> dict[str, object]:
    return {
        "_id": job_id, "type": "t", "status": "ready", "priority": 0, "retryUntil": FOREVER,
        "after": 0, "updated": 0, "created": 0, "retries": 1, "retried": 0, "repeatRetries": 1,
        "retryWait": 0, "retryBackoff": "constant", "repeats": 0, "repeated": 0,
        "repeatUntil": FOREVER, "runId": None, "repeatWait": 0,
        "progress": {"completed": 0, "total": 1, "percent": 0}, "depends": [], "resolved": [],
        "data": {"payload": "x" * 10},
        "log": [{"time": 0, "runId": None, "level": "info", "message": "Constructed"}],
    }  # fmt: skip


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def main(base: str) -> None:
    schema = f"jc_quick_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(base, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE floor (n bigint)")
            start = time.perf_counter()
            for n in range(N):
                conn.execute("INSERT INTO floor VALUES (%s)", (n,))
            print("raw psycopg, one-row autocommit inserts:", rate(N, time.perf_counter() - start))
        storage = open_storage(url)
        start = time.perf_counter()
        for n in range(N):
            with storage.write("q") as tx:
                tx.insert([job(f"a{n}")])
        print("adapter, one job per write():", rate(N, time.perf_counter() - start))
        with storage.write("q") as tx:
            tx.insert([job(f"b{n}") for n in range(10_000)])
        took = []
        for _ in range(1000):
            start = time.perf_counter()
            with storage.write("q") as tx:
                tx.claim(["t"], 1, FIELDS, LOG)
            took.append(time.perf_counter() - start)
        took.sort()
        print(
            f"adapter, claim of 1 among ~11k ready: p50 {statistics.median(took) * 1e3:.2f} ms, "
            f"p99 {took[int(len(took) * 0.99)] * 1e3:.2f} ms"
        )
        storage.close()
        with JobCollection("api", db=url) as jc:
            jc.start_job_server()
            start = time.perf_counter()
            for _ in range(N // 2):
                jc.job("t", {"payload": "x" * 10}).save()
            print("API, job.save() one at a time:", rate(N // 2, time.perf_counter() - start))
            took = []
            for _ in range(500):
                start = time.perf_counter()
                jc.get_work("t")
                took.append(time.perf_counter() - start)
            took.sort()
            print(f"API, get_work(): p50 {statistics.median(took) * 1e3:.2f} ms")
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test")
