"""Several processes share one SQLite file: every job runs exactly once, and a queue in another
process notices new work through the change feed (not its poll timer)."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _workers
import pytest

from jobcollection.api.collection import JobCollection

pytestmark = pytest.mark.slow

N_JOBS = 2000
N_PROCS = 4
JOIN_S = 100


def _save_jobs(db: Path, root: str, job_type: str, count: int) -> list[str]:
    with JobCollection(root, db) as jc:
        ids = jc.save_jobs([jc.job(job_type, {"n": n}) for n in range(count)])
    assert all(ids)
    return [i for i in ids if i]


def _run_children(target: Any, args_of: list[tuple[Any, ...]]) -> None:
    """Run one child per argument tuple; each gets a start barrier shared by all as last arg."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(args_of), timeout=60)
    procs = [ctx.Process(target=target, args=(*args, start), daemon=True) for args in args_of]
    for p in procs:
        p.start()
    deadline = time.monotonic() + JOIN_S
    try:
        for p in procs:
            p.join(max(deadline - time.monotonic(), 0.1))
        stuck = [p.pid for p in procs if p.is_alive()]
        assert not stuck, f"children {stuck} did not finish within {JOIN_S} s"
        assert [p.exitcode for p in procs] == [0] * len(procs)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def _check_each_ran_once(db: Path, root: str, ids: list[str], outs: list[Path]) -> None:
    ran = [json.loads(out.read_text()) for out in outs]
    counts = Counter(job_id for per_child in ran for job_id in per_child)
    twice = [job_id for job_id, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} jobs ran more than once, e.g. {twice[:5]}"
    assert set(counts) == set(ids), f"{len(set(ids) - set(counts))} jobs never ran"
    assert sum(len(r) > 0 for r in ran) >= 2, "the work was not shared between processes"
    with JobCollection(root, db) as jc:
        totals: Counter[str] = Counter()
        for status, _, count in jc.stats():
            totals[status] += count
        assert totals == {"completed": len(ids)}
        for job in jc.get_jobs(ids[:50]):
            assert job.doc["retried"] == 1
            assert job.doc["result"]["pid"] > 0


def test_get_work_races_claim_every_job_exactly_once(tmp_path: Path, db: str) -> None:
    ids = _save_jobs(db, "mp", "race", N_JOBS)
    outs = [tmp_path / f"child{n}.json" for n in range(N_PROCS)]
    _run_children(
        _workers.claim_loop,
        [(str(db), "mp", "race", str(out), n, 1.0) for n, out in enumerate(outs)],
    )
    _check_each_ran_once(db, "mp", ids, outs)


def test_process_jobs_in_several_processes_run_every_job_once(tmp_path: Path, db: str) -> None:
    ids = _save_jobs(db, "mpq", "qrace", N_JOBS)
    outs = [tmp_path / f"child{n}.json" for n in range(N_PROCS)]
    _run_children(_workers.queue_loop, [(str(db), "mpq", "qrace", str(out), 1.0) for out in outs])
    _check_each_ran_once(db, "mpq", ids, outs)


def test_queue_in_other_process_is_woken_by_change_feed(tmp_path: Path, db: str) -> None:
    started, stop = tmp_path / "started", tmp_path / "stop"
    with JobCollection("wake", db) as jc:  # create the schema before the child opens it
        jc.start_job_server()
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(
            target=_workers.wake_loop,
            args=(str(db), "wake", "ping", str(started), str(stop)),
            daemon=True,
        )
        child.start()
        try:
            deadline = time.monotonic() + 60
            while not started.exists():
                assert child.is_alive(), "the worker process died"
                assert time.monotonic() < deadline, "the worker process never started"
                time.sleep(0.02)
            time.sleep(0.2)  # its queue has made its first (empty) fetch and now waits
            for attempt in range(3):
                job_id = jc.job("ping", {"attempt": attempt}).save()
                assert job_id
                saved_at = time.monotonic()
                while time.monotonic() - saved_at < 5:  # poll_interval is 60 s
                    job = jc.get_job(job_id)
                    assert job is not None
                    if job.status == "completed":
                        break
                    time.sleep(0.01)
                job = jc.get_job(job_id)
                assert job is not None
                assert job.status == "completed", f"job {attempt} not run within 5 s"
                assert job.doc["result"]["pid"] == child.pid
        finally:
            stop.write_text("stop")
            child.join(30)
            if child.is_alive():
                child.kill()
                child.join(5)
        assert child.exitcode == 0
