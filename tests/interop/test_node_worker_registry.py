"""The original's node worker in the worker registry: a connection that claims is registered by
the server with what it knows (the peer address, the user; node gives no pid) and is released
when the connection goes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_harness import ROOT, USER, NodeProcess, Served, node_env, skip_without_node

from jobcollection import JobCollection

pytestmark = pytest.mark.node


@pytest.fixture
def served(tmp_path: Path, db: str) -> Iterator[Served]:
    skip_without_node()
    server = Served(tmp_path, db)
    try:
        yield server
    finally:
        server.stop()


def poll(jc: JobCollection, status: str) -> None:
    deadline = time.monotonic() + 20
    while [w.status for w in jc.workers()] != [status]:
        assert time.monotonic() < deadline, f"the node worker never became {status}"
        time.sleep(0.05)


def test_a_node_worker_is_registered_by_its_connection(served: Served) -> None:
    with JobCollection(ROOT, served.db) as jc:
        job_id = jc.job("hold", {}).save()
        with NodeProcess("claim_hold.js", served, "hold", env=node_env()) as node:
            claimed = node.wait_for("claimed")
            assert claimed["id"] == job_id
            [record] = jc.workers()
            assert (record.kind, record.status, record.types) == ("remote", "active", ("hold",))
            assert (record.pid, record.host, record.concurrency) == (None, None, None)
            assert record.username == USER
            assert record.address is not None
            assert record.address.startswith("127.0.0.1:")
            assert record.running == 1
            node.kill()
            poll(jc, "disconnected")  # kept for its lapse: a reconnecting worker keeps its job
        job = jc.get_job(job_id)
        assert job is not None
        assert job.status == "running"
