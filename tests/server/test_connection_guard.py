"""Idle, slow and too many connections: a deadline for every request and handshake, a cap on
connections with a clear refusal, and real clients served while an attack holds connections."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest
from ddp_harness import DdpClient, serving
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from jobcollection import JobCollection
from jobcollection.server.app import Server, connection_cap
from jobcollection.server.guard import EVICTABLE_AFTER_S
from jobcollection.server.limits import Limits

DEADLINE = 0.5


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        collection.allow(admin="anyone")
        yield collection


@contextmanager
def server_with(jc: JobCollection, **limits: Any) -> Iterator[tuple[Server, str]]:
    server = Server(jc, limits=Limits(**limits))
    with serving(server) as url:
        yield server, url


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _open(url: str) -> socket.socket:
    return socket.create_connection(_address(url), timeout=10)


def _read_until_closed(sock: socket.socket, timeout: float = 10) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and how long that took."""
    started = time.monotonic()
    received = b""
    sock.settimeout(timeout)
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a content-length body) from a kept-alive socket."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _get(url: str, path: str = "/sockjs/info") -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _ddp_round_trip(url: str) -> None:
    with DdpClient(url) as client:
        assert client.call("queue_getJob", "nope") is None


# -- deadlines ---------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_after_the_deadline(jc: JobCollection) -> None:
    with server_with(jc, handshake_timeout=DEADLINE) as (server, url), closing(_open(url)) as sock:
        received, took = _read_until_closed(sock)
        assert received == b""  # a silent peer is just closed
        assert DEADLINE * 0.8 < took < DEADLINE + 2
        assert server.guard is not None
        assert len(server.guard) == 0


def test_request_headers_sent_a_byte_at_a_time_get_a_408(jc: JobCollection) -> None:
    head = b"GET /sockjs/info HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100
    with server_with(jc, handshake_timeout=DEADLINE) as (_, url), closing(_open(url)) as sock:
        started = time.monotonic()
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # closed under us
            if select.select([sock], [], [], 0.05)[0]:
                break  # the server answered (and is closing)
        received, _ = _read_until_closed(sock)
        assert time.monotonic() - started < DEADLINE + 2
    assert received.startswith(b"HTTP/1.1 408 ")
    error = json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["reason"] == "Request not received in time"
    assert "0.5 s" in error["details"]


def test_a_body_trickled_slowly_gets_a_408(jc: JobCollection) -> None:
    head = (
        b"POST /api/queue/getJob HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with server_with(jc, handshake_timeout=DEADLINE) as (_, url), closing(_open(url)) as sock:
        sock.sendall(head)
        for _ in range(40):
            try:
                sock.sendall(b"1\r\n \r\n")  # one space per chunk, forever
            except OSError:
                break
            if select.select([sock], [], [], 0.05)[0]:
                break
        received, _ = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 ")


def test_each_request_on_a_kept_alive_connection_has_its_own_deadline(jc: JobCollection) -> None:
    request = b"GET /sockjs/info HTTP/1.1\r\nHost: x\r\n\r\n"
    with server_with(jc, handshake_timeout=DEADLINE) as (_, url), closing(_open(url)) as sock:
        for _ in range(3):  # well-behaved requests, each quicker than the deadline...
            sock.sendall(request)
            assert _response(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(DEADLINE * 0.6)  # ...spread over more than one deadline in all
        sock.sendall(b"GET /sockjs/info HTTP/1.1\r\n")  # then one that never ends
        received, took = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert took < DEADLINE + 2


def test_a_websocket_without_the_ddp_connect_is_closed_and_a_session_is_not(
    jc: JobCollection,
) -> None:
    with server_with(jc, handshake_timeout=DEADLINE) as (_, url):
        ws_url = url.replace("http://", "ws://") + "/websocket"
        with ws_connect(ws_url, ping_interval=None) as ws:
            assert json.loads(ws.recv(timeout=5)) == {"server_id": "0"}
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=DEADLINE + 2)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            assert "connect" in closed.value.rcvd.reason
        with DdpClient(url) as client:  # a DDP session outlives the deadline
            time.sleep(DEADLINE * 3)
            assert client.call("queue_getJob", "nope") is None


# -- the cap -----------------------------------------------------------------------------------


def test_at_the_cap_a_new_client_takes_the_place_of_an_idle_connection(jc: JobCollection) -> None:
    cap = 20
    with server_with(jc, max_connections=cap, handshake_timeout=30) as (server, url):
        idle = [_open(url) for _ in range(cap)]
        try:
            assert server.guard is not None
            guard = server.guard
            deadline = time.monotonic() + 5
            while len(guard) < cap and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(guard) == cap
            time.sleep(EVICTABLE_AFTER_S + 0.2)
            _ddp_round_trip(url)  # takes an idle one's place, then leaves a free slot
            assert guard.evicted == 1
            with DdpClient(url) as client:  # takes the free slot
                assert _get(url)[0] == 200  # takes another idle one's place
                assert client.call("queue_getJob", "nope") is None
            assert len(guard) <= cap
            assert guard.evicted == 2
            assert guard.refused == 0
        finally:
            for sock in idle:
                sock.close()


def test_at_the_cap_with_every_connection_busy_a_newcomer_is_refused_with_a_503(
    jc: JobCollection,
) -> None:
    cap = 4
    with server_with(jc, max_connections=cap) as (_, url):
        sessions = [DdpClient(url) for _ in range(cap)]  # open DDP sessions: busy, kept
        try:
            status, body = _get(url)
            assert status == 503
            assert body["error"]["reason"] == "Server busy"
            assert "4 connections" in body["error"]["details"]
            with pytest.raises(InvalidStatus) as refused:
                ws_connect(url.replace("http://", "ws://") + "/websocket").__enter__()
            assert refused.value.response.status_code == 503
            for client in sessions:  # and the sessions are untouched
                assert client.call("queue_getJob", "nope") is None
        finally:
            for client in sessions:
                client.close()
        deadline = time.monotonic() + 5
        while _get(url)[0] != 200:  # room again once they leave
            assert time.monotonic() < deadline


def test_the_cap_stays_within_the_file_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert connection_cap(Limits(max_connections=100)) == 100
    assert connection_cap(Limits(max_connections=5000)) == 1024 - 64


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_connections": 0}, "max_connections must be at least 1"),
        ({"handshake_timeout": 0}, "handshake_timeout must be positive"),
        ({"max_pending_calls": 0}, "max_pending_calls must be at least 1"),
        ({"outgoing_soft_limit": 10, "outgoing_hard_limit": 5}, "outgoing_soft_limit"),
    ],
)
def test_bad_limits_are_refused(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Limits(**limits)


# -- an attack -------------------------------------------------------------------------------


class Attack:
    """Keeps ``count`` connections open that never finish a request: half send nothing,
    half trickle header bytes. Closed ones are reopened (at most ``PER_TICK`` every 50 ms,
    i.e. 200 a second: an attack that holds connections, not a flood of new ones), for
    ``seconds``."""

    PER_TICK = 10

    def __init__(self, url: str, count: int, seconds: float) -> None:
        self.url, self.count, self.seconds = url, count, seconds
        self.opened = 0
        self.thread = threading.Thread(target=self._run, name="attack", daemon=True)

    def _open(self) -> socket.socket:
        sock = socket.create_connection(_address(self.url), timeout=5)
        sock.setblocking(False)
        self.opened += 1
        return sock

    def _run(self) -> None:
        socks: list[socket.socket] = []
        deadline = time.monotonic() + self.seconds
        try:
            while time.monotonic() < deadline:
                for _ in range(
                    min(self.count - len(socks), self.PER_TICK if socks else self.count)
                ):
                    try:
                        socks.append(self._open())
                    except OSError:
                        break
                for sock in list(socks):
                    if self._closed(sock):
                        socks.remove(sock)
                        sock.close()
                    elif sock.fileno() % 2:  # slowloris: a header byte now and then
                        with _ignored():
                            sock.send(b"G" if self.opened % 2 else b"x")
                time.sleep(0.05)
        finally:
            for sock in socks:
                sock.close()

    @staticmethod
    def _closed(sock: socket.socket) -> bool:
        try:
            return sock.recv(65536) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True


@contextmanager
def _ignored() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


def test_real_clients_are_served_while_an_attack_holds_connections(jc: JobCollection) -> None:
    cap = 100
    with server_with(jc, max_connections=cap, handshake_timeout=2) as (server, url):
        attack = Attack(url, count=3 * cap, seconds=6)
        attack.thread.start()
        try:
            time.sleep(EVICTABLE_AFTER_S + 0.5)  # every slot taken by the attack by now
            assert server.guard is not None
            served = 0
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                _ddp_round_trip(url)  # a new connection each time
                status, _ = _get(url)
                assert status == 200
                assert len(server.guard) <= cap
                served += 1
            assert served >= 5
        finally:
            attack.thread.join(timeout=15)
        assert attack.opened > cap  # the attack did hold every slot, and more
