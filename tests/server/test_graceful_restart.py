"""A graceful stop loses no outcome: the server drains (no new work, running jobs reported),
answers every call it has read, refuses later ones as not applied, closes with 1012; our
client sends again exactly the calls that were not applied."""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from ddp_harness import DdpClient, new_job_doc
from serve_harness import free_port
from websockets.exceptions import ConnectionClosed as WsClosed

from jobcollection import Job, JobCollection
from jobcollection.client.ddp import DdpClient as AsyncDdpClient
from jobcollection.core.ejson import from_ejson
from jobcollection.server.app import Server

NOT_APPLIED = "Server is restarting; the call was not applied"


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        collection.allow(admin="anyone")
        collection.start_job_server()
        yield collection


class Stopping:
    """`Server.serve` in a thread; `stop()` begins the graceful stop without waiting."""

    def __init__(self, server: Server, port: int = 0, drain_timeout: float = 10) -> None:
        self.server = server
        urls: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(
            target=lambda: asyncio.run(
                server.serve("127.0.0.1", port, ready=urls.put, drain_timeout=drain_timeout)
            ),
            daemon=True,
        )
        self.thread.start()
        self.url = urls.get(timeout=20)
        self.stopped_at: float | None = None

    def stop(self) -> None:
        self.stopped_at = time.monotonic()
        self.server.stop()

    def wait(self, timeout: float = 30) -> float:
        """Wait for `serve` to return; how long the stop took."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server did not stop"
        assert self.stopped_at is not None
        return time.monotonic() - self.stopped_at


def _until_closed(client: DdpClient, timeout: float = 20) -> tuple[list[dict[str, Any]], Any]:
    """Every message until the server closes; and the close frame (None: none came)."""
    messages: list[dict[str, Any]] = []
    with pytest.raises(WsClosed) as closed:
        _read_all(client, messages, timeout)
    return messages, closed.value.rcvd


def _read_all(client: DdpClient, into: list[dict[str, Any]], timeout: float) -> None:
    while True:
        into.append(client.recv(timeout))


# -- the server ------------------------------------------------------------------------------


def test_calls_read_before_the_stop_are_answered_then_later_ones_are_not_applied(
    jc: JobCollection,
) -> None:
    server = Server(jc)
    assert server.accounts is not None
    server.accounts.add_user("ada", "s3cret")
    running = Stopping(server)
    client = DdpClient(running.url)
    login = {"user": {"username": "ada"}, "password": "s3cret"}
    logins, saves = 4, 1000
    for n in range(logins):  # bcrypt: the session is busy with these when the stop comes
        client.send({"msg": "method", "id": f"login{n}", "method": "login", "params": [login]})
    for n in range(saves):  # the server reads 100 calls ahead, the rest after the stop
        doc = new_job_doc("stop", {"n": n})
        client.send({"msg": "method", "id": f"s{n}", "method": "queue_jobSave", "params": [doc]})
    running.stop()
    messages, close = _until_closed(client)
    running.wait()
    assert close is not None
    assert close.code == 1012  # a clean close, for a restart
    results = {m["id"]: m for m in messages if m.get("msg") == "result"}
    assert all("result" in results[f"login{n}"] for n in range(logins))  # read first: run
    stored = Counter(job.data["n"] for job in jc.find({"type": "stop"}))
    assert all(times == 1 for times in stored.values())
    not_applied = 0
    for n in range(saves):
        result = results.get(f"s{n}")
        if result is None or "error" in result:  # not answered, or answered "not applied"
            assert n not in stored, f"call s{n} was applied but not answered before the close"
            if result is not None:
                assert result["error"]["error"] == 503
                assert result["error"]["reason"] == NOT_APPLIED
                not_applied += 1
        else:
            assert stored[n] == 1
    assert stored, "nothing read before the stop"
    assert not_applied, "nothing read during the stop"
    updated = {i for m in messages if m.get("msg") == "updated" for i in m["methods"]}
    assert updated == set(results)  # every answered call got its `updated`


def test_the_drain_hands_out_no_work_and_waits_for_running_jobs(jc: JobCollection) -> None:
    for n in range(3):
        Job(jc, "drain", {"n": n}).save()
    running = Stopping(Server(jc), drain_timeout=30)
    with DdpClient(running.url) as worker:
        worker.send({"msg": "sub", "id": "bell", "name": "queue.readyTypes", "params": [["drain"]]})
        worker.recv_until(lambda m: m.get("msg") == "ready")
        (job,) = worker.call("queue_getWork", "drain", {"maxJobs": 1})
        running.stop()
        time.sleep(0.3)
        assert running.thread.is_alive()  # draining: the running job is waited for
        assert worker.call("queue_getWork", "drain", {"maxJobs": 1}) == []
        Job(jc, "drain", {"n": 9}).save()  # a ready job of a new type is not announced...
        assert worker.call("queue_getJob", job["_id"])["status"] == "running"  # reads served
        assert worker.call("queue_jobLog", job["_id"], job["runId"], "still at it") is True
        assert worker.call("queue_jobDone", job["_id"], job["runId"], {}) is True
        took = running.wait()
        assert took < 5  # not the drain timeout: the job was reported
        bell = [m for m in worker.seen if m.get("collection") == "queue.readyTypes"]
        assert [m["msg"] for m in bell] == ["added"]  # ...before the stop only
    statuses = Counter(j.doc["status"] for j in jc.find({"type": "drain"}))
    assert statuses == {"completed": 1, "ready": 3}  # two never handed out, one saved later


def test_the_drain_gives_up_after_its_timeout_and_a_second_stop_skips_it(
    jc: JobCollection,
) -> None:
    Job(jc, "late", {}).save()
    Job(jc, "late", {}).save()
    running = Stopping(Server(jc), drain_timeout=0.5)
    with DdpClient(running.url) as worker:
        assert len(worker.call("queue_getWork", "late", {"maxJobs": 1})) == 1
        running.stop()
        assert 0.4 < running.wait() < 5  # waited for the job, not forever
    running = Stopping(Server(jc), drain_timeout=60)
    with DdpClient(running.url) as worker:
        assert len(worker.call("queue_getWork", "late", {"maxJobs": 1})) == 1
        running.stop()
        time.sleep(0.3)
        running.server.stop()  # the second signal
        assert running.wait() < 10


def test_http_getwork_answers_nothing_while_draining(jc: JobCollection) -> None:
    Job(jc, "h", {}).save()
    Job(jc, "held", {}).save()
    running = Stopping(Server(jc), drain_timeout=30)
    host, port = running.url.removeprefix("http://").split(":")
    kept = http.client.HTTPConnection(host, int(port), timeout=10)  # kept alive

    def get_work(job_type: str) -> Any:
        body = json.dumps([job_type]).encode()
        kept.request("POST", "/api/queue/getWork", body, {"content-type": "application/json"})
        return json.load(kept.getresponse())["result"]

    with DdpClient(running.url) as worker:
        assert get_work("nothing") == []
        (held,) = worker.call("queue_getWork", "held", {})  # the drain waits for this one
        running.stop()
        time.sleep(0.2)
        assert running.thread.is_alive()
        assert get_work("h") == []  # a kept-alive HTTP client is served, but given no work
        with pytest.raises(ConnectionRefusedError):  # and no new connection is taken
            socket.create_connection((host, int(port)), timeout=2).close()
        worker.call("queue_jobDone", held["_id"], held["runId"], {})
        running.wait()
    kept.close()
    assert [j.doc["status"] for j in jc.find({"type": "h"})] == ["ready"]


# -- our client ------------------------------------------------------------------------------


@asynccontextmanager
async def serving_async(server: Server, port: int) -> AsyncIterator[Stopping]:
    running = await asyncio.to_thread(Stopping, server, port)
    try:
        yield running
    finally:
        server.stop()
        await asyncio.to_thread(running.thread.join, 30)


async def test_calls_not_applied_at_a_restart_are_sent_again_and_applied_once(
    jc: JobCollection,
) -> None:
    port = free_port()
    count = 300
    server = Server(jc)
    assert server.accounts is not None
    server.accounts.add_user("ada", "s3cret")
    login = {"user": {"username": "ada"}, "password": "s3cret"}
    async with serving_async(server, port) as first:
        client = AsyncDdpClient(
            first.url, backoff_initial=0.02, backoff_max=0.1, max_in_flight=count + 10
        )
        await client.connect()
        logins = [asyncio.create_task(client.call("login", login)) for _ in range(4)]
        saves = [
            asyncio.create_task(
                client.call("queue_jobSave", from_ejson(new_job_doc("again", {"n": n})))
            )
            for n in range(count)
        ]
        await asyncio.sleep(0.05)  # all sent; the server is busy with the logins (bcrypt)
        first.stop()
        await asyncio.to_thread(first.wait)
    applied_before = len(jc.find({"type": "again"}))
    try:
        async with serving_async(Server(jc), port):
            ids = await asyncio.wait_for(asyncio.gather(*saves), 30)  # none failed
            await asyncio.gather(*logins)
            assert client.reconnects == 1
    finally:
        await client.close()
    assert 0 < applied_before < count  # the rest were refused or unanswered, then resent
    stored = Counter(job.data["n"] for job in jc.find({"type": "again"}))
    assert stored == Counter(range(count))  # each applied exactly once
    assert len(set(ids)) == count
