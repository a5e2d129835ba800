"""The engine and the Python API on each storage: save, work, complete, live queries, and a
second collection object (another process, as far as the database can tell) seeing it all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from jobcollection import Job, JobCollection

WAIT_S = 15.0


def wait_until(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def db(db: str) -> str:
    """The suite's `db`; a PostgreSQL one in SQLAlchemy's spelling (`postgresql+psycopg://`)."""
    return db.replace("postgresql://", "postgresql+psycopg://", 1)


def test_save_work_complete_and_watch_across_collections(db: str) -> None:
    with JobCollection("queue", db=db) as jc, JobCollection("queue", db=db) as other:
        added: list[str] = []
        completed: list[str] = []
        lock = threading.Lock()

        def on_added(doc: dict[str, object]) -> None:
            with lock:
                added.append(str(doc["_id"]))

        def on_changed(doc: dict[str, object], fields: tuple[str, ...]) -> None:
            if doc["status"] == "completed":
                with lock:
                    completed.append(str(doc["_id"]))

        jc.start_job_server()
        other.start_job_server()
        stop = other.observe({"type": "add"}, added=on_added, changed=on_changed)
        try:
            ids = [jc.job("add", {"n": n}).save() for n in range(5)]
            ids += [i for i in jc.save_jobs([Job(jc, "add", {"n": n}) for n in range(5, 10)]) if i]
            assert len(ids) == 10
            wait_until(lambda: sorted(added) == sorted(ids), "the other collection's added")
            (first,) = jc.get_work("add")
            assert first.data == {"n": 0}  # insertion order among equals
            assert first.done({"sum": 0})
            queue = other.process_jobs("add", lambda job: {"twice": job.data["n"] * 2})
            try:
                wait_until(
                    lambda: all(j.doc["status"] == "completed" for j in jc.get_jobs(ids)),
                    "every job completed",
                )
            finally:
                queue.shutdown(quiet=True)
            wait_until(lambda: sorted(set(completed)) == sorted(ids), "completions observed")
            assert len(completed) == len(ids)  # each once
            results = {j.doc["data"]["n"]: j.doc["result"] for j in jc.get_jobs(ids)}
            assert results[7] == {"twice": 14}
        finally:
            stop()


def test_watch_sees_another_collections_changes(db: str) -> None:
    with JobCollection("queue", db=db) as jc, JobCollection("queue", db=db) as other:
        seen: list[str] = []

        def follow() -> None:
            for change in other.watch({"status": "ready"}, timeout=5):
                seen.append(change.id)
                if len(seen) == 3:
                    return

        watcher = threading.Thread(target=follow)
        watcher.start()
        time.sleep(0.2)
        ids = [jc.job("w", {}).save() for _ in range(3)]
        watcher.join(WAIT_S)
        assert seen == ids


def test_a_delayed_job_becomes_ready_through_another_collections_scheduler(db: str) -> None:
    with JobCollection("queue", db=db) as jc, JobCollection("queue", db=db) as other:
        other.start_job_server()
        job = jc.job("later", {}).delay(300)
        job_id = job.save()
        assert job_id is not None
        wait_until(lambda: other.get_job(job_id).doc["status"] == "ready", "ready after delay")
