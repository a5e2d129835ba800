"""The PostgreSQL adapter while its server is down, and once it is back (a private cluster,
`pg_cluster`): calls fail at once with `StorageUnavailable` naming the reason, not after the
pool's wait; the first call after the restart is served (a fresh pool, not the old one's
backoff); nothing committed is lost, whether the server stopped cleanly or was killed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from jobcollection import JobCollection
from jobcollection.errors import StorageUnavailable
from pg_cluster import private_cluster, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FAST_S = 1.0  # a call during the outage fails within this (the pool alone waited 5 s)
LAPSE_MS = 1000  # the shortest a worker's heartbeat lapse may be


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_calls_fail_fast_while_down_and_succeed_once_back(mode: str) -> None:
    with private_cluster() as cluster, JobCollection("queue", db=cluster.url) as jc:
        jc.start_job_server()
        kept = [jc.job("t", {"n": n}).save() for n in range(5)]
        cluster.stop(mode)
        down = time.monotonic()
        for attempt in range(10):  # reads and writes alike
            call = (
                (lambda: jc.find({"type": "t"}))
                if attempt % 2
                else (lambda: jc.job("t", {"during": "outage"}).save())
            )
            started = time.monotonic()
            with pytest.raises(StorageUnavailable) as info:
                call()
            assert time.monotonic() - started < FAST_S
            assert info.value.transient
            assert f"127.0.0.1:{cluster.port}/postgres is unavailable" in str(info.value)
        assert "refused" in str(info.value).lower() or "starting up" in str(info.value)
        assert time.monotonic() - down < 10 * FAST_S
        cluster.start()
        back = time.monotonic()
        while True:  # the first calls may still meet a server finishing its recovery
            try:
                new_id = jc.job("t", {"after": "restart"}).save()
                break
            except StorageUnavailable:
                assert time.monotonic() - back < 5, "the storage did not come back"
                time.sleep(0.05)
        assert time.monotonic() - back < 5
        found = {job.id for job in jc.find({"type": "t"})}
        assert found == {*kept, new_id}  # nothing committed was lost, nothing refused was kept
        claimed = jc.get_work("t", max_jobs=10)
        assert len(claimed) == 6


def test_an_outage_longer_than_a_lapse_loses_no_living_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody's heartbeat can be written while the database is down. A worker that was alive
    when the outage began gets its whole lapse after it ends to beat again: another server
    must not take it for lost (and fail its running job) at its first look."""
    gate = threading.Event()

    def hold(job: Any) -> dict[str, bool]:
        assert gate.wait(60)
        return {"ok": True}

    with (
        private_cluster() as cluster,
        JobCollection("queue", db=cluster.url) as one,
        JobCollection("queue", db=cluster.url) as other,
    ):
        one.start_job_server()
        other.start_job_server()  # it looks for lost workers every second
        job_id = one.job("t", {}).save()
        queue = one.process_jobs("t", hold, lost_after=LAPSE_MS)
        wait_for(lambda: one.get_job(job_id).status == "running", "the job to run")  # type: ignore[union-attr]
        # Server one's heartbeats come late after the outage (its process is slower back).
        beat = one.manager.liveness._beat
        monkeypatch.setattr(one.manager.liveness, "_beat", lambda: True)
        cluster.stop("immediate")
        time.sleep(3 * LAPSE_MS / 1000)
        cluster.start()
        liveness = other.manager.liveness
        wait_for(lambda: liveness._last_outage is not None, "the other server to look again")
        job = other.get_job(job_id, get_failures=True)
        assert job is not None
        assert job.status == "running"
        assert not job.doc.get("failures")
        monkeypatch.setattr(one.manager.liveness, "_beat", beat)  # one beats again in time
        time.sleep(2 * LAPSE_MS / 1000)
        assert other.get_job(job_id).status == "running"  # type: ignore[union-attr]
        gate.set()
        wait_for(lambda: one.get_job(job_id).status == "completed", "the job to complete")  # type: ignore[union-attr]
        assert not other.get_job(job_id, get_failures=True).doc.get("failures")  # type: ignore[union-attr]
        queue.shutdown()
