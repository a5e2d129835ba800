"""Functions that run in other processes (spawn): queue workers and multi-process test children.

They live in a module of their own so a spawned interpreter can import them by name.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from jobcollection.api.collection import JobCollection
from jobcollection.api.job import Job

# -- process-pool queue workers ---------------------------------------------------------------


def double(job: Job) -> dict[str, Any]:
    """Returns a dict (stored as the result as-is) that shows which process ran it."""
    return {"doubled": job.data["n"] * 2, "pid": os.getpid()}


def plain_value(job: Job) -> int:
    """Returns a non-dict (stored as `{"value": x}`)."""
    return int(job.data["n"]) + 100


def explode(job: Job) -> None:
    raise RuntimeError(f"kaboom {job.data['n']} in pid {os.getpid()}")


def rendezvous(job: Job) -> dict[str, Any]:
    """Waits (up to 10 s) until `job.data["n"]` jobs have started in folder `job.data["dir"]`;
    returns how many had started, so a test sees how many ran at the same time."""
    folder = Path(job.data["dir"])
    (folder / f"started-{job.id}").write_text(str(os.getpid()))
    deadline = time.monotonic() + 10
    while len(list(folder.glob("started-*"))) < job.data["n"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"together": len(list(folder.glob("started-*"))), "pid": os.getpid()}


def batch_sizes(jobs: list[Job]) -> dict[str, Any]:
    """A payload worker: every job of the batch gets the batch's size and ids."""
    return {"size": len(jobs), "ids": [j.id for j in jobs], "pid": os.getpid()}


# -- children of the multi-process claim tests -------------------------------------------------


def claim_loop(
    db: str, root: str, job_type: str, out: str, seed: int, idle_s: float, start: Any
) -> None:
    """getWork(random 1..10) + done() until nothing came for `idle_s`; writes the ids it ran.

    `start` is a barrier shared by all children, so they really race from the first claim.
    """
    rng = random.Random(seed)
    ran: list[str] = []
    jc = JobCollection(root, db)
    try:
        jc.start_job_server()
        start.wait()
        deadline = time.monotonic() + 90
        idle_since: float | None = None
        while time.monotonic() < deadline:
            jobs = jc.get_work(job_type, max_jobs=rng.randint(1, 10))
            if not jobs:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > idle_s:
                    break
                time.sleep(0.005)
                continue
            idle_since = None
            for job in jobs:
                assert job.id is not None
                ran.append(job.id)
                if job.done({"pid": os.getpid()}) is not True:
                    raise AssertionError(f"done() of {job.id} did not return True")
    finally:
        jc.close()
        Path(out).write_text(json.dumps(ran))


def queue_loop(db: str, root: str, job_type: str, out: str, idle_s: float, start: Any) -> None:
    """process_jobs(concurrency=2) until the queue and the database had no work for `idle_s`."""
    lock = threading.Lock()
    ran: list[str] = []

    def worker(job: Job) -> dict[str, int]:
        with lock:
            assert job.id is not None
            ran.append(job.id)
        return {"pid": os.getpid()}

    jc = JobCollection(root, db)
    try:
        jc.start_job_server()
        start.wait()
        queue = jc.process_jobs(job_type, worker, concurrency=2, poll_interval=50)
        deadline = time.monotonic() + 90
        idle_since: float | None = None
        while time.monotonic() < deadline:
            busy = not queue.idle() or jc.find_one({"status": {"$in": ["ready", "running"]}})
            if busy:
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > idle_s:
                    break
            time.sleep(0.02)
        queue.shutdown("soft", quiet=True)
    finally:
        jc.close()
        with lock:
            Path(out).write_text(json.dumps(ran))


def wake_loop(db: str, root: str, job_type: str, started: str, stop: str) -> None:
    """A queue that polls only once a minute: only the change feed can wake it in time."""
    jc = JobCollection(root, db)
    try:
        jc.start_job_server()
        queue = jc.process_jobs(job_type, lambda job: {"pid": os.getpid()}, poll_interval=60_000)
        Path(started).write_text("ok")
        deadline = time.monotonic() + 60
        while not Path(stop).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        queue.shutdown("soft", quiet=True)
    finally:
        jc.close()


# -- storage-error children --------------------------------------------------------------------


def open_unprivileged(db: str, uid: int) -> tuple[str, str]:
    """Drop to `uid` (effective), try to open and write `db`; report what was raised."""
    # Import everything first: after dropping root the interpreter's own files may be unreadable.
    import sqlite3  # noqa: F401

    import jobcollection.storage.sqlite  # noqa: F401

    os.seteuid(uid)
    try:
        jc = JobCollection("q", db)
    except Exception as error:
        return type(error).__name__, str(error)
    try:
        jc.job("t", {}).save()
    except Exception as error:
        return type(error).__name__, str(error)
    finally:
        jc.close()
    return "nothing", "opened and saved"
