"""Remote workers in the registry: DDP connections that claim work are registered by the
server and kept alive while connected; a connection that dies leaves its jobs to be rescued
once its lapse passes, unless the worker comes back for them in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ddp_harness import CallFailed, DdpClient, serving
from test_remote_faults import FAST_RECONNECT, Proxy

from jobcollection import JobCollection, PermissionDenied, connect
from jobcollection.core.workers import WorkerRecord
from jobcollection.server import Server

LAPSE_MS = 1000
WAIT_S = 15.0


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def local(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as jc:
        jc.allow(admin=["ada"], worker="anyone")
        yield jc


@pytest.fixture
def url(local: JobCollection) -> Iterator[str]:
    server = Server(local, lost_after=LAPSE_MS)
    assert server.accounts is not None
    server.accounts.add_user("ada", "s3cret")
    server.accounts.add_user("bob", "s3cret")
    with serving(server) as base:
        yield base


def status(jc: JobCollection, job_id: str) -> str:
    job = jc.get_job(job_id)
    assert job is not None
    return job.status


def failures(jc: JobCollection, job_id: str) -> list[dict[str, Any]]:
    job = jc.get_job(job_id, get_failures=True)
    assert job is not None
    found: list[dict[str, Any]] = job.doc.get("failures") or []
    return found


def only_worker(jc: JobCollection) -> WorkerRecord:
    [record] = jc.workers()
    return record


def save(local: JobCollection, job_type: str = "r") -> str:
    job_id = local.job(job_type, {}).retry(3, wait=0).save()
    assert job_id
    return job_id


# -- a connection that says nothing about itself (the original's node clients) --------------


def test_a_connection_that_claims_is_registered_and_lost_when_it_dies(
    local: JobCollection, url: str
) -> None:
    job_id = save(local)
    client = DdpClient(url)
    assert client.call("queue_getWork", ["nothing"], {}) == []
    assert local.workers() == []  # no claim, no worker
    [doc] = client.call("queue_getWork", ["r"], {"maxJobs": 1})
    record = only_worker(local)
    peer = client.ws.local_address
    assert (record.kind, record.status, record.running) == ("remote", "active", 1)
    assert (record.types, record.lost_after, record.pid) == (("nothing", "r"), LAPSE_MS, None)
    assert record.address == f"{peer[0]}:{peer[1]}"
    assert record.username is None
    client.close()
    wait_until(lambda: only_worker(local).status == "disconnected", "the record to be released")
    assert status(local, job_id) == "running"  # kept for the lapse: it may come back
    closed = time.monotonic()
    wait_until(lambda: status(local, job_id) != "running", "the rescue")
    assert time.monotonic() - closed < LAPSE_MS / 1000 + 2
    assert [f["value"] for f in failures(local, job_id)] == ["Worker lost"]
    assert doc["_id"] == job_id
    assert only_worker(local).status == "lost"


def test_a_reconnected_worker_that_reports_takes_its_job_over(
    local: JobCollection, url: str
) -> None:
    job_id = save(local)
    first = DdpClient(url)
    [doc] = first.call("queue_getWork", ["r"], {})
    run_id = doc["runId"]
    first.close()
    wait_until(lambda: only_worker(local).status == "disconnected", "the first to go")
    second = DdpClient(url)
    second.call("queue_jobLog", job_id, run_id, "still at it", {})  # a new connection's report
    adopted = {w.status: w for w in local.workers()}
    assert adopted["active"].running == 1  # the job is the new connection's now
    time.sleep(LAPSE_MS / 1000 + 0.5)
    assert status(local, job_id) == "running"  # the old connection's lapse did not fail it
    assert second.call("queue_jobDone", job_id, run_id, {}, {}) is True
    assert not failures(local, job_id)
    second.close()


def test_a_note_without_the_run_takes_nothing(local: JobCollection, url: str) -> None:
    """A log entry from someone who does not hold the run (an admin's note) leaves a lost
    worker's job to its fate."""
    job_id = save(local)
    first = DdpClient(url)
    first.call("queue_getWork", ["r"], {})
    first.close()
    with DdpClient(url) as observer:
        observer.call("queue_jobLog", job_id, None, "looked at it", {})
        wait_until(lambda: status(local, job_id) != "running", "the rescue")
        assert [f["value"] for f in failures(local, job_id)] == ["Worker lost"]
        assert [w.status for w in local.workers()] == ["lost"]  # the observer is no worker


def test_a_report_on_a_living_workers_job_takes_nothing(local: JobCollection, url: str) -> None:
    job_id = save(local)
    with DdpClient(url) as worker, DdpClient(url) as observer:
        [doc] = worker.call("queue_getWork", ["r"], {})
        observer.call("queue_jobLog", job_id, doc["runId"], "a note", {})
        assert [(w.status, w.running) for w in local.workers()] == [("active", 1)]


# -- our Python client --------------------------------------------------------------------------


@pytest.fixture
def ada(url: str) -> Iterator[JobCollection]:
    jc = connect(url, username="ada", password="s3cret")
    try:
        yield jc
    finally:
        jc.close()


def test_a_python_worker_says_who_it_is(local: JobCollection, ada: JobCollection) -> None:
    queue = ada.process_jobs(["r", "s"], lambda job: None, concurrency=3, lost_after=2000)
    record = only_worker(local)
    assert (record.kind, record.status, record.types) == ("remote", "active", ("r", "s"))
    assert (record.host, record.pid, record.concurrency) == (socket.gethostname(), os.getpid(), 3)
    assert (record.lost_after, record.username) == (2000, "ada")
    second = ada.process_jobs("t", lambda job: None, concurrency=2, lost_after=5000)
    record = only_worker(local)  # one connection, one worker: its queues together
    assert (record.types, record.concurrency, record.lost_after) == (("r", "s", "t"), 5, 2000)
    assert ada.workers() == local.workers()  # the registry over DDP, for the admin group
    queue.shutdown(quiet=True)
    second.shutdown(quiet=True)
    assert local.workers() == []  # the last queue's graceful stop unregisters


def test_listing_workers_needs_the_admin_or_manager_group(url: str) -> None:
    bob = connect(url, username="bob", password="s3cret")
    try:
        with pytest.raises(PermissionDenied):
            bob.workers()
    finally:
        bob.close()


def test_a_python_worker_keeps_its_jobs_across_a_reconnect(local: JobCollection, url: str) -> None:
    job_id = save(local)
    release, started = threading.Event(), threading.Event()
    port = int(url.rsplit(":", 1)[1])

    def slow(job: Any) -> None:
        started.set()
        assert release.wait(WAIT_S)

    with Proxy(port) as proxy:
        worker = connect(proxy.url, username="ada", password="s3cret", **FAST_RECONNECT)
        try:
            queue = worker.process_jobs("r", slow, lost_after=LAPSE_MS)
            # running in the worker (not only claimed: a cut before the claim's reply arrives
            # loses the claim, and the server then fails the job as one that never ran)
            assert started.wait(WAIT_S)
            assert status(local, job_id) == "running"
            before = only_worker(local)
            assert proxy.cut() == 1
            wait_until(lambda: proxy.connections == 2, "the reconnect")
            time.sleep(LAPSE_MS / 1000 + 0.5)  # past the lapse: it was renewed on its return
            assert status(local, job_id) == "running"
            after = only_worker(local)
            assert (after.id, after.status, after.started) == (before.id, "active", before.started)
            release.set()
            wait_until(lambda: status(local, job_id) == "completed", "the job to complete")
            assert not failures(local, job_id)
            queue.shutdown(quiet=True)
        finally:
            release.set()
            worker.close()


# -- registerWorker, as any client may call it -------------------------------------------------


@pytest.mark.parametrize(
    ("worker", "field"),
    [
        ("w", "worker"),
        ({}, "worker.workerId"),
        ({"workerId": 5}, "worker.workerId"),
        ({"workerId": "x" * 201}, "worker.workerId"),
        ({"workerId": "w", "pid": -1}, "worker.pid"),
        ({"workerId": "w", "types": "r"}, "worker.types"),
        ({"workerId": "w", "types": [3]}, "worker.types[0]"),
        ({"workerId": "w", "lostAfter": 10}, "worker.lostAfter"),
        ({"workerId": "w", "jobs": [""]}, "worker.jobs[0]"),
        ({"workerId": "w", "sneaky": 1}, "worker.sneaky"),
    ],
)
def test_register_worker_refuses_bad_input_naming_it(
    local: JobCollection, url: str, worker: object, field: str
) -> None:
    with DdpClient(url) as client:
        with pytest.raises(CallFailed) as refused:
            client.call("queue_registerWorker", worker)
        assert refused.value.code == 400
        assert str(refused.value.error.get("details", "")).startswith(f"{field}: ")
    assert local.workers() == []


def test_register_worker_needs_the_right_to_claim(db: str) -> None:
    with JobCollection("queue", db=db) as jc:
        jc.allow(creator="anyone")
        with serving(Server(jc)) as url, DdpClient(url) as client:
            with pytest.raises(CallFailed) as refused:
                client.call("queue_registerWorker", {"workerId": "w", "types": ["r"]})
            assert refused.value.code == 403
            with pytest.raises(CallFailed) as listing:
                client.call("queue_workers")
            assert listing.value.code == 403
        assert jc.workers() == []


def test_another_users_worker_id_is_refused(local: JobCollection, url: str) -> None:
    ada = connect(url, username="ada", password="s3cret")
    try:
        queue = ada.process_jobs("r", lambda job: None)
        taken = only_worker(local).id
        with DdpClient(url) as stranger:
            with pytest.raises(CallFailed) as refused:
                stranger.call("queue_registerWorker", {"workerId": taken, "types": ["r"]})
            assert refused.value.code == 400
            assert "another user's worker" in str(refused.value.error.get("details"))
        assert only_worker(local).username == "ada"
        queue.shutdown(quiet=True)
    finally:
        ada.close()


def test_registering_is_not_offered_over_http(url: str) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{url}/api/queue/registerWorker", data=b'[{"workerId": "w"}]', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 404


def test_a_claim_over_http_has_no_worker(local: JobCollection, url: str) -> None:
    import json
    import urllib.request

    save(local)
    request = urllib.request.Request(
        f"{url}/api/queue/getWork",
        data=json.dumps(["r", {}]).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert len(json.loads(reply.read())["result"]) == 1
    assert local.workers() == []  # rescued only by a workTimeout, as documented


# -- a remote worker process that dies ---------------------------------------------------------


@pytest.mark.slow
def test_a_sigkilled_remote_worker_processes_jobs_are_retried(
    local: JobCollection, url: str, tmp_path: Path
) -> None:
    (tmp_path / "tasks.py").write_text(
        textwrap.dedent(
            """
            import time

            def slow(job):
                time.sleep(60)
            """
        )
    )
    job_id = save(local)
    env = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
    env["ADA_PASSWORD"] = "s3cret"
    argv = [sys.executable, "-m", "jobcollection", "--server", url.replace("http", "ws", 1)]
    argv += ["--user", "ada", "--password-env", "ADA_PASSWORD"]
    proc = subprocess.Popen(
        [*argv, "worker", "tasks:slow", "--type", "r", "--lost-after", str(LAPSE_MS)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: status(local, job_id) == "running", "the remote worker's claim")
        record = only_worker(local)
        assert (record.kind, record.pid, record.username) == ("remote", proc.pid, "ada")
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: status(local, job_id) != "running", "the rescue")
        assert time.monotonic() - killed < LAPSE_MS / 1000 + 2
        assert [f["value"] for f in failures(local, job_id)] == ["Worker lost"]
        assert status(local, job_id) == "ready"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
