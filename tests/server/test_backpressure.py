"""Clients that send more than they read: the server stops reading them (backpressure), refuses
nobody for sending a lot, keeps its memory bounded, and keeps serving everyone else.

The server runs as a subprocess so that its memory is its own (measured with psutil). The
precise latency figure for other connections during a flood is measured by
``benchmarks/flood_latency.py``; here only a generous liveness bound is asserted.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ddp_harness import DdpClient, serving
from serve_harness import RawWebSocket, ServerProcess, free_port

from jobcollection import JobCollection
from jobcollection.server.app import Server
from jobcollection.server.limits import Limits
from jobcollection.server.session import Session

MB = 1 << 20
RSS_GROWTH_LIMIT = 50 * MB
LIVENESS_S = 2.0  # a round trip of another client during the flood (the benchmark has p99)


@pytest.fixture
def server(tmp_path: Path, db: str) -> Iterator[ServerProcess]:
    process = ServerProcess(db, free_port(), tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _warm_up(server: ServerProcess) -> None:
    with DdpClient(server.url) as client:
        for _ in range(200):
            assert client.call("queue_getJob", "nope") is None


class Flood:
    """Sends frames on a never-reading connection from a thread until they are all sent or
    ``seconds`` pass (the server stops reading: the send blocks)."""

    def __init__(self, server: ServerProcess, frames: Iterator[bytes], seconds: float) -> None:
        self.ws = RawWebSocket(server.url, timeout=0.5)
        self.ws.connect()
        self.frames, self.seconds = frames, seconds
        self.sent = 0
        self.thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        pending = b""
        for frame in self.frames:
            pending += frame
            if len(pending) < 64 * 1024:
                continue
            while pending and time.monotonic() < deadline:
                try:
                    pending = pending[self.ws.sock.send(pending) :]
                except TimeoutError:
                    continue
                except OSError:
                    return
            if pending:
                return  # the server stopped reading us: the point of the test
            self.sent += 1

    def __enter__(self) -> Flood:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=self.seconds + 5)
        self.ws.close()


def _watch(server: ServerProcess, until: Callable[[], bool]) -> tuple[int, float]:
    """While ``until()`` is false: sample the server's RSS and time another client's round
    trips. Returns (peak RSS, slowest round trip in seconds)."""
    peak, slowest = server.rss(), 0.0
    with DdpClient(server.url) as client:
        while not until():
            started = time.monotonic()
            assert client.call("queue_getJob", "nope") is None
            slowest = max(slowest, time.monotonic() - started)
            peak = max(peak, server.rss())
            time.sleep(0.01)
    return peak, slowest


def test_a_flood_of_calls_never_read_keeps_memory_bounded_and_others_served(
    server: ServerProcess,
) -> None:
    _warm_up(server)
    baseline = server.rss()
    calls = (
        RawWebSocket.frame(
            f'{{"msg":"method","id":"f{n}","method":"queue_getJob","params":["nope{n}"]}}'
        )
        for n in range(100_000)
    )
    with Flood(server, calls, seconds=8) as flood:
        peak, slowest = _watch(server, lambda: not flood.thread.is_alive())
    assert peak - baseline < RSS_GROWTH_LIMIT, f"RSS grew {(peak - baseline) / MB:.0f} MB"
    assert slowest < LIVENESS_S, f"a round trip took {slowest:.2f} s during the flood"
    _warm_up(server)  # and the server is still fine afterwards


def test_large_pings_never_read_keep_memory_bounded(server: ServerProcess) -> None:
    _warm_up(server)
    baseline = server.rss()
    big_id = "x" * (512 * 1024)  # each pong echoes it: half a megabyte per ping
    pings = (RawWebSocket.frame(f'{{"msg":"ping","id":"{big_id}"}}') for _ in range(2000))
    with Flood(server, pings, seconds=6) as flood:
        peak, slowest = _watch(server, lambda: not flood.thread.is_alive())
    assert peak - baseline < RSS_GROWTH_LIMIT, f"RSS grew {(peak - baseline) / MB:.0f} MB"
    assert slowest < LIVENESS_S


# -- in-process: what a connection holds, and a subscriber that falls behind ------------------


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        collection.allow(admin="anyone")
        yield collection


def _wait(predicate: Callable[[], object], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _only_session(server: Server) -> Session:
    _wait(lambda: len(server.sessions) == 1, "the connection's session")
    return next(iter(server.sessions.values()))


def _queued(session: weakref.ref[Session]) -> int:
    alive = session()
    return 0 if alive is None else alive._outbox.size


def test_a_closed_connection_frees_what_it_held_at_once(jc: JobCollection) -> None:
    server = Server(jc)
    with serving(server) as url:
        ws = RawWebSocket(url, timeout=0.2, receive_buffer=4096)
        ws.connect()
        held = {"msg": "ping", "id": "x" * 200_000}
        with contextlib.suppress(TimeoutError):  # the server stops reading us: fine
            for _ in range(40):
                ws.send(held)
        freed = weakref.ref(_only_session(server))
        _wait(lambda: _queued(freed) > 500_000, "pongs to pile up unread")
        gc.disable()  # only reference counting may free it: no cycle may keep it alive
        try:
            ws.close()
            _wait(lambda: freed() is None, "the session to be freed", timeout=5)
        finally:
            gc.enable()
        assert not server.sessions


def test_a_subscriber_too_far_behind_is_disconnected_and_a_reading_one_is_not(
    jc: JobCollection, caplog: pytest.LogCaptureFixture
) -> None:
    limits = Limits(outgoing_soft_limit=64 * 1024, outgoing_hard_limit=512 * 1024)
    server = Server(jc, limits=limits)
    with serving(server) as url, DdpClient(url) as reader:
        stalled = RawWebSocket(url, receive_buffer=4096)
        stalled.connect()
        stalled.send({"msg": "sub", "id": "s1", "name": "queue.jobs", "params": []})
        _wait(lambda: len(server.sessions) == 2, "both sessions")
        reader.send({"msg": "sub", "id": "s1", "name": "queue.jobs", "params": []})
        reader.recv_until(lambda m: m.get("msg") == "ready")
        blob = "y" * 50_000
        ids: list[str | None] = []
        deadline = time.monotonic() + 20
        while len(server.sessions) == 2 and time.monotonic() < deadline:
            ids += [jc.job("big", {"blob": blob, "n": n}).save() for n in range(20)]  # 1 MB
            time.sleep(0.05)
        assert len(server.sessions) == 1, "the stalled subscriber was not dropped"
        assert len(ids) * len(blob) > limits.outgoing_hard_limit
        reader.recv_until(lambda m: m.get("msg") == "added" and m["id"] == ids[-1])
        added = {m["id"] for m in reader.seen if m.get("msg") == "added"}
        assert set(ids) <= added  # the reading subscriber got every job
        assert reader.call("queue_getJob", "nope") is None  # and is still served
        stalled.close()
    dropped = [r for r in caplog.records if "behind on published data" in r.getMessage()]
    assert len(dropped) == 1, [r.getMessage() for r in caplog.records]
    assert dropped[0].levelno == logging.WARNING


def test_http_requests_pipelined_on_one_connection_are_all_answered(jc: JobCollection) -> None:
    """The HTTP API queues too: a thousand requests sent back to back on one keep-alive
    connection get a thousand answers, in order, none refused."""
    count = 1000
    body = b'["nope"]'
    request = (
        b"POST /api/queue/getJob HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with serving(Server(jc)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request * count)
            received = b""
            while received.count(b'{"result":null}') < count:
                chunk = sock.recv(1 << 16)
                assert chunk, f"closed after {received.count(b'HTTP/1.1 ')} answers"
                received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == count
