"""What a collection does while nothing happens must not grow with the number of its jobs.

The scheduler looks for the next due time after each write that leaves a job waiting, and the
periodic sweep promotes due jobs; neither may walk the jobs that wait for other jobs (a crowd
of them made an idle server busy). Work is counted in SQLite virtual-machine steps, not time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobcollection import Job, JobCollection
from jobcollection.storage.sqlite import SqliteStorage
from storage_support import Databases


def _steps(storage: SqliteStorage, action: Callable[[], object]) -> int:
    """Thousands of VM steps SQLite ran on the storage's connections (writes, reads) during
    `action()`."""
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0  # go on

    connections = (storage._conn, storage._read_conn)
    for conn in connections:
        conn.set_progress_handler(tick, 1000)
    try:
        action()
    finally:
        for conn in connections:
            conn.set_progress_handler(None, 0)
    return ticks[0]


def _costs(path: str, crowd: int) -> tuple[int, int, int | None]:
    """(steps of next_wakeup, steps of a sweep, the wake-up) beside `crowd` jobs that wait for
    an antecedent due in an hour (their own `after` long past)."""
    with JobCollection("q", str(path)) as jc:
        antecedent = Job(jc, "t", {}).delay(3_600_000)
        antecedent.save()
        jc.save_jobs([Job(jc, "t", {"n": n}).depends([antecedent]) for n in range(crowd)])
        soon = Job(jc, "t", {}).delay(60_000)
        soon.save()
        jc.start_job_server()
        storage = jc.manager.storage
        assert isinstance(storage, SqliteStorage)
        assert jc.manager.count({"status": "waiting"}) == crowd + 2
        wakeup = jc.manager.next_wakeup()
        assert wakeup == soon.doc["after"]
        return _steps(storage, jc.manager.next_wakeup), _steps(storage, jc.manager.sweep), wakeup


@pytest.mark.sqlite_only(reason="counts SQLite virtual-machine steps")
def test_jobs_waiting_for_others_cost_the_scheduler_nothing(dbs: Databases) -> None:
    few_wakeup, few_sweep, _ = _costs(dbs("few"), 5)
    many_wakeup, many_sweep, _ = _costs(dbs("many"), 4000)
    assert many_wakeup <= few_wakeup + 2, (few_wakeup, many_wakeup)
    assert many_sweep <= few_sweep + 2, (few_sweep, many_sweep)
