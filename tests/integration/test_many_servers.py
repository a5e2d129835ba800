"""Several job servers on one database (one SQLite file, one PostgreSQL database): each is a
`JobCollection` with its own engine, scheduler and worker registry, as separate processes
would have.

- A job server's shutdown fails the jobs running through ITS process only: those claimed for
  its workers, or with no worker by its own calls; the other servers' workers run on.
- The timers are safe to run everywhere at once: a run whose workTimeout expired is failed
  exactly once (one failure, one retry), a repeating job repeats once per run, a due waiting
  job is promoted once, though every server's scheduler sweeps the same rows (each update is
  a compare-and-set on the job's status and run).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobcollection import JobCollection
from jobcollection.core.workers import WorkerRecord

SHUTDOWN_ERROR = "Running at Job Server shutdown."
SERVERS = 3
WAIT_S = 20.0


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def stays(predicate: Callable[[], object], seconds: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def servers(db: str) -> Iterator[list[JobCollection]]:
    made: list[JobCollection] = []
    try:
        for _ in range(SERVERS):
            jc = JobCollection("queue", db)
            jc.start_job_server()
            made.append(jc)
        yield made
    finally:
        for jc in made:
            jc.close()


def local_worker(worker_id: str) -> WorkerRecord:
    now = int(time.time() * 1000)
    return WorkerRecord(
        id=worker_id,
        kind="local",
        status="active",
        types=("t",),
        started=now,
        last_seen=now,
        lost_after=30_000,
        host=socket.gethostname(),
        pid=os.getpid(),
        concurrency=1,
    )


def doc(jc: JobCollection, job_id: str) -> dict[str, Any]:
    job = jc.get_job(job_id, get_log=True, get_failures=True)
    assert job is not None
    return job.doc


def claim(jc: JobCollection, worker_id: str | None) -> str:
    """Save a job and claim it through `jc` (for `worker_id`, or for no worker)."""
    saved = jc.job("t", {"by": worker_id}).retry(5, wait=60_000).save()
    assert saved
    [job] = jc.get_work("t", worker_id=worker_id)
    assert job.id == saved
    return saved


# -- shutdown ------------------------------------------------------------------------------


def test_a_shutdown_fails_only_the_jobs_running_through_its_own_process(
    servers: list[JobCollection],
) -> None:
    one, two, three = servers
    running: dict[str, list[str]] = {"one": [], "two": [], "three": []}
    for name, jc in zip(running, servers, strict=True):
        worker_id = f"worker-of-{name}"
        jc.register_worker(local_worker(worker_id))
        running[name] += [claim(jc, worker_id), claim(jc, None)]
    # A worker of server one that stopped (its record removed) while its job still runs.
    one.register_worker(local_worker("stopped-worker-of-one"))
    running["one"].append(claim(one, "stopped-worker-of-one"))
    one.unregister_worker("stopped-worker-of-one")

    assert one.shutdown_job_server(timeout=50)
    wait_until(
        lambda: all(doc(one, i)["status"] != "running" for i in running["one"]),
        "server one's jobs to be failed at its shutdown",
    )
    for job_id in running["one"]:
        found = doc(one, job_id)
        assert found["status"] == "waiting"  # retried later, per its policy
        assert [f["value"] for f in found["failures"]] == [SHUTDOWN_ERROR]
    # The other servers' workers run on: their jobs stay running, untouched.
    others = running["two"] + running["three"]
    assert stays(lambda: all(doc(two, i)["status"] == "running" for i in others))
    assert all(not doc(two, i).get("failures") for i in others)

    assert two.shutdown_job_server(timeout=50)
    wait_until(
        lambda: all(doc(two, i)["status"] == "waiting" for i in running["two"]),
        "server two's jobs to be failed at its shutdown",
    )
    assert all(doc(three, i)["status"] == "running" for i in running["three"])
    for name in ("one", "two"):
        for job_id in running[name]:
            assert len(doc(three, job_id)["failures"]) == 1  # failed once, by its own server


def test_a_shutdown_spares_a_worker_that_moved_to_another_server(
    servers: list[JobCollection],
) -> None:
    """A remote worker keeps its id across reconnects: once another server hosts it (its
    record active there), its jobs are that server's, not the old one's."""
    one, two, _ = servers
    one.register_worker(local_worker("wanderer"))
    job_id = claim(one, "wanderer")
    one.unregister_worker("wanderer")  # gone from server one ...
    two.register_worker(local_worker("wanderer"))  # ... and now alive on server two
    assert one.shutdown_job_server(timeout=20)
    assert stays(lambda: doc(one, job_id)["status"] == "running")
    assert two.shutdown_job_server(timeout=20)
    wait_until(lambda: doc(two, job_id)["status"] == "waiting", "server two to fail it")


# -- the timers, on every server at once -----------------------------------------------------


def test_an_expired_run_is_failed_once_though_every_server_sweeps(
    servers: list[JobCollection],
) -> None:
    for jc in servers:
        jc.promote(5)  # every server sweeps every 5 ms: they race for the same rows
    ids = [servers[0].job("t", {"n": n}).retry(3, wait=60_000).save() for n in range(20)]
    claimed = servers[1].get_work("t", max_jobs=20, work_timeout=50)
    assert sorted(job.id for job in claimed) == sorted(ids)
    wait_until(lambda: not servers[2].find({"status": "running"}), "the expired runs to be failed")
    time.sleep(0.2)  # more sweeps, which must find nothing more to do
    for job_id in ids:
        found = doc(servers[0], job_id)
        assert found["status"] == "waiting"
        assert found["failures"] == [
            {"value": "Failed for exceeding worker set workTimeout", "runId": claimed[0].run_id}
        ]
        assert found["retried"] == 1  # one run, not retried again by another sweep
        failed = [e for e in found["log"] if "workTimeout" in e["message"]]
        assert len(failed) == 1


def test_a_due_waiting_job_is_promoted_once_though_every_server_sweeps(
    servers: list[JobCollection],
) -> None:
    for jc in servers:
        jc.promote(5)
    due = int(time.time() * 1000) + 300
    ids = [servers[0].job("t", {"n": n}).after(due).save() for n in range(20)]
    wait_until(
        lambda: len(servers[1].find({"status": "ready"})) == len(ids), "the jobs to be promoted"
    )
    time.sleep(0.2)
    for job_id in ids:
        log = doc(servers[2], job_id)["log"]
        assert [e["message"] for e in log].count("Promoted to ready") == 1


def test_a_repeating_job_repeats_once_per_run_though_every_server_sweeps(
    servers: list[JobCollection],
) -> None:
    for jc in servers:
        jc.promote(5)
    runs = 4
    first = servers[0].job("r", {}).repeat(repeats=runs - 1, wait=20).save()
    assert first
    done: list[str] = []
    lock = threading.Lock()

    def complete() -> None:
        for jc in servers:  # the next run is taken by any server's caller
            for job in jc.get_work("r"):
                with lock:
                    done.append(str(job.id))
                assert job.done()

    wait_until(lambda: complete() or len(done) == runs, "every run of the repeating job")
    assert stays(lambda: not servers[0].find({"status": {"$in": ["ready", "waiting"]}}), 0.3)
    jobs = [job.doc for job in servers[1].find({"type": "r"})]
    assert len(jobs) == runs  # one job per run: no run was repeated twice
    assert sorted(job["repeated"] for job in jobs) == list(range(runs))
    assert {job["status"] for job in jobs} == {"completed"}
    assert sorted(done) == sorted(job["_id"] for job in jobs)
