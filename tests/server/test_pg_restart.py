"""PostgreSQL restarted under load (a private cluster, `pg_cluster`): a server and its workers
ride it out.

A server on the cluster, a remote worker taking jobs over DDP, a client saving jobs over DDP;
then PostgreSQL is killed (`immediate`: every process at once, a crash) for about two seconds
and started again. Meanwhile the server answers pings, a call gets the clear 503 "Storage
unavailable" at once (not after a wait), and the Python API raises `StorageUnavailable`
naming the reason. After, every job whose save returned completes: none lost, none left
running by an outcome that could not be recorded during the outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ddp_harness import CallFailed, DdpClient, new_job_doc, serving

from jobcollection import JobCollection, connect
from jobcollection.errors import StorageUnavailable
from jobcollection.server import Server
from pg_cluster import PgCluster, private_cluster, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SAVES = 400  # the client's saves in all (a bounded load)
SAVE_GAP_S = 0.01
OUTAGE_S = 2.0
QUICK_S = 2.5  # a call during the outage is answered within this (a pool waited 5 s and more)


class Producer:
    """Saves up to SAVES jobs over DDP, one after another, noting each outcome."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.saved: list[str] = []  # ids whose save returned
        self.refused: list[tuple[Any, str, float]] = []  # (error code, reason, seconds taken)
        self.other: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-producer", daemon=True)

    def _run(self) -> None:
        with DdpClient(self.url) as client:
            for n in range(SAVES):
                if self.stop.is_set():
                    return
                started = time.monotonic()
                try:
                    self.saved.append(client.call("queue_jobSave", new_job_doc("t", {"n": n})))
                except CallFailed as error:
                    self.refused.append((error.code, error.reason, time.monotonic() - started))
                except Exception as error:  # reported by the test
                    self.other.append(repr(error))
                    return
                time.sleep(SAVE_GAP_S)


@contextmanager
def running(producer: Producer) -> Iterator[Producer]:
    producer.thread.start()
    try:
        yield producer
    finally:
        producer.stop.set()
        producer.thread.join(timeout=60)


def ping(client: DdpClient, ident: str) -> float:
    """Seconds until the server answered a DDP ping."""
    started = time.monotonic()
    client.send({"msg": "ping", "id": ident})
    reply = client.recv_until(lambda m: m.get("msg") == "pong", timeout=5)[-1]
    assert reply == {"msg": "pong", "id": ident}
    return time.monotonic() - started


def during_outage(cluster: PgCluster, jc: JobCollection, pinger: DdpClient, url: str) -> None:
    """What the server and the Python API do while PostgreSQL is down."""
    assert ping(pinger, "down-1") < QUICK_S
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as info:
        jc.job("t", {"during": "outage"}).save()
    assert time.monotonic() - started < QUICK_S
    assert f"127.0.0.1:{cluster.port}/postgres is unavailable" in str(info.value)
    assert info.value.transient
    with DdpClient(url) as client:
        started = time.monotonic()
        with pytest.raises(CallFailed) as refused:
            client.call("queue_jobSave", new_job_doc("t", {"during": "outage"}))
        assert time.monotonic() - started < QUICK_S
    assert (refused.value.code, refused.value.reason) == (503, "Storage unavailable")
    assert ping(pinger, "down-2") < QUICK_S


@pytest.mark.parametrize("completes", ["returning", "calling-done"])
def test_postgresql_restarted_under_load_loses_no_job(completes: str) -> None:
    """The worker completes its jobs by returning (the queue sends the completion), or by
    calling `job.done()` itself: a call that fails during the outage raises in the worker,
    and the queue sends it again once the database is back."""
    completed: dict[str, int] = {}
    lock = threading.Lock()

    def work(job: Any) -> dict[str, bool] | None:
        with lock:
            completed[job.doc["_id"]] = completed.get(job.doc["_id"], 0) + 1
        if completes == "returning":
            return {"ok": True}
        job.done({"ok": True})
        return None

    with private_cluster() as cluster, JobCollection("queue", db=cluster.url) as jc:
        jc.allow(admin="anyone")
        jc.start_job_server()
        with serving(Server(jc)) as url:
            remote = connect(url)
            try:
                queue = remote.process_jobs("t", work, concurrency=2, poll_interval=100)
                with running(Producer(url)) as producer, DdpClient(url) as pinger:
                    wait_for(lambda: len(completed) >= 40, "the first jobs to complete")
                    before = len(producer.saved)
                    cluster.stop("immediate")
                    down_at = time.monotonic()
                    during_outage(cluster, jc, pinger, url)
                    wait_for(lambda: producer.refused, "a save refused during the outage")
                    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
                    cluster.start()
                    wait_for(lambda: len(producer.saved) > before + 20, "saves to resume")
                    producer.thread.join(timeout=60)
                    assert not producer.other
                    saved = list(producer.saved)
                    wait_for(
                        lambda: all(i in completed for i in saved), "every saved job to run", 60
                    )
                    assert ping(pinger, "up") < QUICK_S
                queue.shutdown()
            finally:
                remote.close()
        assert {(code, reason) for code, reason, _ in producer.refused} == {
            (503, "Storage unavailable")
        }
        assert max(took for _, _, took in producer.refused) < QUICK_S
        # Every acknowledged save is there and completed (the database's own word), each
        # run once: a completion or claim whose reply was lost in the crash was not redone.
        docs = {job.doc["_id"]: job.doc for job in jc.find({"_id": {"$in": saved}})}
        assert set(docs) == set(saved)
        assert {doc["status"] for doc in docs.values()} == {"completed"}
        assert not jc.find({"status": "running"})
        assert {completed[job_id] for job_id in saved} == {1}
        assert len(saved) + len(producer.refused) == SAVES
