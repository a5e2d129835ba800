"""The PostgreSQL adapter while its server is down, and once it is back (a private cluster,
`pg_cluster`): calls fail at once with `StorageUnavailable` naming the reason, not after the
pool's wait; the first call after the restart is served (a fresh pool, not the old one's
backoff); nothing committed is lost, whether the server stopped cleanly or was killed.
"""

from __future__ import annotations

import time

import pytest

from jobcollection import JobCollection
from jobcollection.errors import StorageUnavailable
from pg_cluster import private_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FAST_S = 1.0  # a call during the outage fails within this (the pool alone waited 5 s)


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
