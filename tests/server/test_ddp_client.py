"""The asyncio DDP client against the real server (and a few fakes for what a real server
never does): calls, errors, login, subscriptions, heartbeats, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from ddp_harness import new_job_doc, serving
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed as WsClosed

from jobcollection import JobCollection
from jobcollection.client.ddp import (
    ChangeEvent,
    ChangesOverflow,
    DdpClient,
    password_digest,
    websocket_url,
)
from jobcollection.core.ejson import Date, from_ejson
from jobcollection.errors import AuthenticationFailed, ConnectionClosed, ProtocolError, RemoteError
from jobcollection.server.app import Server
from jobcollection.server.session import Limits

JOBS = "queue.jobs"


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        collection.start_job_server()
        yield collection


@pytest.fixture
def url(jc: JobCollection) -> Iterator[str]:
    jc.allow(admin="anyone")
    with serving(Server(jc)) as base:
        yield base


def fast(url: str, **options: Any) -> DdpClient:
    """A client that reconnects quickly."""
    return DdpClient(url, backoff_initial=0.02, backoff_max=0.1, connect_timeout=5.0, **options)


def save(jc: JobCollection, data: dict[str, Any]) -> str:
    job_id = jc.job("t", data).save()
    assert job_id is not None
    return job_id


def job_doc(job_type: str = "t", data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job document as a Python client passes it (dates as `Date`, not raw EJSON)."""
    doc: dict[str, Any] = from_ejson(new_job_doc(job_type, data))
    return doc


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def running(server: Server, port: int) -> AsyncIterator[str]:
    """Like `serving`, on a chosen port, without blocking this test's event loop (the client
    under test must answer the server's goodbye while it shuts down)."""
    urls: queue.Queue[str] = queue.Queue()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve("127.0.0.1", port, ready=urls.put))
        except BaseException as error:
            failure.append(error)
            urls.put("")

    thread = threading.Thread(target=run, name="test-server", daemon=True)
    thread.start()
    base = await asyncio.to_thread(urls.get, True, 20)
    if failure:
        raise failure[0]
    try:
        yield base
    finally:
        server.stop()
        await asyncio.to_thread(thread.join, 20)


class Proxy:
    """A TCP proxy in front of the server: it can swallow the server's replies, cut every
    connection (a network failure) and refuse new ones."""

    def __init__(self, upstream: str) -> None:
        self.upstream_port = int(upstream.rsplit(":", 1)[1])
        self.drop_replies = False
        self.refuse = False
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [writer, up_writer]
        tasks = [
            asyncio.create_task(self._pump(reader, up_writer, replies=False)),
            asyncio.create_task(self._pump(up_reader, writer, replies=True)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, replies: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if replies and self.drop_replies:
                    continue
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.transport.abort()


class FakeServer:
    """A websocket server that handshakes like DDP and then does what a test tells it."""

    def __init__(self, *, reply: dict[str, Any] | None = None) -> None:
        self.reply = reply or {"msg": "connected", "session": "fake"}
        self.connections = 0
        self.received: list[dict[str, Any]] = []
        self.current: ServerConnection | None = None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.current = ws
        try:
            await ws.send(json.dumps({"server_id": "0"}))
            self.received.append(json.loads(await ws.recv()))
            await ws.send(json.dumps(self.reply))
            async for frame in ws:  # ignore everything, pings included
                self.received.append(json.loads(frame))
        except WsClosed:
            pass

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        async with ws_serve(self.handler, "127.0.0.1", 0, ping_interval=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            yield f"ws://127.0.0.1:{port}"


# -- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:3000", "ws://h:3000/websocket"),
        ("https://h", "wss://h/websocket"),
        ("ws://h:1/", "ws://h:1/websocket"),
        ("ws://h:1/websocket", "ws://h:1/websocket"),
        ("wss://h/jobs/websocket/", "wss://h/jobs/websocket"),
        ("http://h/mounted", "ws://h/mounted/websocket"),
    ],
)
def test_urls_are_normalised(given: str, expected: str) -> None:
    assert websocket_url(given) == expected


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="URL"):
        websocket_url("ftp://h")


def test_password_digest_is_meteors() -> None:
    assert password_digest("abc") == {
        "digest": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "algorithm": "sha-256",
    }


# -- methods ---------------------------------------------------------------------------------


async def test_call_returns_ejson_decoded_results(url: str) -> None:
    async with DdpClient(url) as client:
        assert client.connected
        assert client.session is not None
        assert await client.call("queue_getJob", "nope") is None
        job_id = await client.call("queue_jobSave", job_doc(data={"when": Date(123), "b": b"\x00"}))
        assert isinstance(job_id, str)
        doc = await client.call("queue_getJob", job_id, wait_updated=True)
        assert doc["_id"] == job_id
        assert doc["retryUntil"] == Date(8640000000000000)
        assert isinstance(doc["after"], Date)
        assert doc["after"].ms > 0
        assert doc["data"] == {"when": Date(123), "b": b"\x00"}
    assert client.closed
    with pytest.raises(ConnectionClosed, match="closed"):
        await client.call("queue_getJob", "nope")


async def test_remote_errors_keep_code_reason_and_details(url: str) -> None:
    async with DdpClient(url) as client:
        with pytest.raises(RemoteError) as missing:
            await client.call("queue_noSuchMethod")
        assert (missing.value.error, missing.value.reason, missing.value.details) == (
            404,
            "Method 'queue_noSuchMethod' not found",
            "this server serves collections: queue",
        )
        assert str(missing.value) == (
            "Method 'queue_noSuchMethod' not found; this server serves collections: queue [404]"
        )
        bad = job_doc()
        bad["priority"] = "urgent-ish"
        with pytest.raises(RemoteError) as invalid:
            await client.call("queue_jobSave", bad)
        assert (invalid.value.error, invalid.value.reason) == (400, "Match failed")
        assert invalid.value.details
        assert await client.call("queue_getJob", "nope") is None  # the connection lives on


async def test_denied_calls_are_403(jc: JobCollection) -> None:
    jc.allow(worker="anyone")
    with serving(Server(jc)) as base:
        async with DdpClient(base) as client:
            with pytest.raises(RemoteError) as denied:
                await client.call("queue_jobSave", job_doc())
            assert denied.value.error == 403
            assert denied.value.reason == "Method not authorized"
            assert denied.value.details == (  # the client is not logged in
                "no user is logged in, and queue_jobSave needs one allowed under admin,"
                " creator or jobSave"
            )
            assert await client.call("queue_getWork", "t") == []


async def test_pipelined_calls_are_matched_by_id(url: str) -> None:
    async with DdpClient(url) as client:
        started = time.monotonic()
        ids = await asyncio.gather(
            *(client.call("queue_jobSave", job_doc("p", {"n": n})) for n in range(200))
        )
        assert len(set(ids)) == 200
        docs = await asyncio.gather(*(client.call("queue_getJob", job_id) for job_id in ids))
        assert [doc["data"]["n"] for doc in docs] == list(range(200))
        assert time.monotonic() - started < 10


# -- login -------------------------------------------------------------------------------------


@pytest.fixture
def ada_server(jc: JobCollection) -> Server:
    jc.allow(admin=["ada"])
    server = Server(jc)
    assert server.accounts is not None
    server.accounts.add_user("ada", "s3cret", email="ada@example.com")
    return server


async def test_login_by_password_then_resume_by_token(ada_server: Server) -> None:
    with serving(ada_server) as base:
        async with DdpClient(base) as first:
            with pytest.raises(RemoteError) as anonymous:
                await first.call("queue_getJob", "x")
            assert anonymous.value.error == 403
            result = await first.login(username="ada", password="s3cret")
            assert result["type"] == "password"
            assert isinstance(result["tokenExpires"], Date)
            assert first.user_id == result["id"]
            assert first.token == result["token"]
            assert await first.call("queue_getJob", "x") is None
            token = first.token
        async with DdpClient(base) as second:
            resumed = await second.login(token=token)
            assert resumed["type"] == "resume"
            assert (second.user_id, second.token) == (result["id"], token)
            assert await second.call("queue_getJob", "x") is None
            await second.logout()
            assert second.user_id is None
            assert second.token is None
            with pytest.raises(RemoteError):
                await second.call("queue_getJob", "x")
        async with DdpClient(base) as third:
            by_email = await third.login(email="ada@example.com", password="s3cret")
            assert by_email["id"] == result["id"]
            with pytest.raises(AuthenticationFailed, match="logged out by the server"):
                await third.login(token=token)  # the logout deleted it


async def test_failed_logins_raise_authentication_failed(ada_server: Server) -> None:
    with serving(ada_server) as base:
        async with DdpClient(base) as client:
            with pytest.raises(AuthenticationFailed) as wrong:
                await client.login(username="ada", password="wrong")
            assert str(wrong.value) == "Incorrect username or password"
            cause = wrong.value.__cause__
            assert isinstance(cause, RemoteError)
            assert (cause.error, cause.reason) == (403, "Incorrect username or password")
            with pytest.raises(AuthenticationFailed, match="Incorrect username or password"):
                await client.login(username="bob", password="s3cret")
            assert client.user_id is None
            assert client.token is None
            with pytest.raises(ValueError, match="exactly one"):
                await client.login(password="s3cret")


# -- subscriptions and the cache -------------------------------------------------------------


async def test_subscription_fills_the_cache_and_reports_changes(
    url: str, jc: JobCollection
) -> None:
    before = save(jc, {"n": 0})
    seen: list[tuple[Any, ...]] = []
    async_seen: list[tuple[Any, ...]] = []

    async def on_changed(doc_id: str, fields: dict[str, Any], cleared: list[str]) -> None:
        await asyncio.sleep(0)
        async_seen.append(("changed", doc_id, fields, cleared))

    async with DdpClient(url) as client:
        handle = client.observe(
            JOBS,
            added=lambda i, f: seen.append(("added", i, f)),
            changed=on_changed,
            removed=lambda i: seen.append(("removed", i)),
        )
        stream = client.changes(JOBS)
        sub = await client.subscribe(JOBS)
        assert sub.ready
        cache = client.collections[JOBS]
        assert cache[before]["data"] == {"n": 0}
        assert isinstance(cache[before]["created"], Date)
        assert seen == [("added", before, cache[before])]

        job = save(jc, {"n": 1})
        await eventually(lambda: job in cache)
        jc.cancel_jobs([job])
        await eventually(lambda: cache[job]["status"] == "cancelled")
        jc.remove_jobs([job])
        await eventually(lambda: job not in cache)

        kinds = []
        async for event in stream:
            assert isinstance(event, ChangeEvent)
            assert event.collection == JOBS
            kinds.append((event.kind, event.id))
            if event.kind == "removed":
                break
        assert kinds[0] == ("added", before)
        assert kinds[1] == ("added", job)
        assert kinds[-1] == ("removed", job)
        assert {kind for kind, doc_id in kinds[2:-1]} == {"changed"}
        await eventually(lambda: len(async_seen) >= 1)
        assert all(entry[1] == job for entry in async_seen)
        assert any(entry[2].get("status") == "cancelled" for entry in async_seen)
        assert [entry[0] for entry in seen] == ["added", "added", "removed"]

        handle.stop()
        await sub.stop()
        assert not sub.active
        assert before not in cache  # unsubscribing removed its documents
        assert len(seen) == 3  # the stopped observer heard nothing more
    rest = [(event.kind, event.id) async for event in stream]  # ends: the client closed
    assert rest == [("removed", before)]  # from the unsubscribe


async def test_refused_subscriptions_raise_remote_error(url: str) -> None:
    async with DdpClient(url) as client:
        with pytest.raises(RemoteError) as refused:
            await client.subscribe("nope")
        assert (refused.value.error, refused.value.reason) == (404, "Subscription 'nope' not found")
        with pytest.raises(RemoteError) as bad:
            await client.subscribe(JOBS, {"status": {"$gt": 1}})
        assert bad.value.error == 400
        assert (await client.subscribe(JOBS, {"type": "t"})).ready


async def test_a_slow_change_stream_overflows(url: str, jc: JobCollection) -> None:
    async with DdpClient(url) as client:
        await client.subscribe(JOBS)
        stream = client.changes(JOBS, maxsize=2)
        for n in range(4):
            save(jc, {"n": n})
        await eventually(lambda: len(client.collections[JOBS]) == 4)
        assert [(await stream.__anext__()).kind for _ in range(2)] == ["added", "added"]
        with pytest.raises(ChangesOverflow):
            await stream.__anext__()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()


# -- reconnecting ------------------------------------------------------------------------------


async def test_server_restart_reconnects_relogs_in_and_resubscribes(
    jc: JobCollection, ada_server: Server
) -> None:
    port = free_port()
    kept, gone = save(jc, {"n": "kept"}), save(jc, {"n": "gone"})
    events: list[tuple[str, str]] = []
    reconnected: list[bool] = []
    async with running(ada_server, port) as base:
        client = fast(base)
        await client.connect()
        await client.login(username="ada", password="s3cret")
        user_id, token, first_session = client.user_id, client.token, client.session
        sub = await client.subscribe(JOBS)
        cache = client.collections[JOBS]
        assert set(cache) == {kept, gone}
        client.observe(
            JOBS,
            added=lambda i, f: events.append(("added", i)),
            changed=lambda i, f, c: events.append(("changed", i)),
            removed=lambda i: events.append(("removed", i)),
        )

        async def on_reconnect() -> None:
            # called once logged in again and resubscribed: calls need the user
            reconnected.append(await client.call("queue_getJob", kept) is not None)

        client.on_reconnect.append(on_reconnect)
    # the server is down: the client keeps trying; the jobs change meanwhile
    await eventually(lambda: not client.connected)
    jc.cancel_jobs([gone, kept])
    jc.remove_jobs([gone])
    fresh = save(jc, {"n": "fresh"})
    waiting = asyncio.create_task(client.call("queue_getJob", fresh))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # calls wait for the reconnect
    try:
        async with running(Server(jc), port):
            await client.wait_connected(timeout=10)
            assert client.session != first_session
            assert (client.user_id, client.token) == (user_id, token)
            assert (await waiting)["data"] == {"n": "fresh"}
            assert sub.ready
            assert set(cache) == {kept, fresh}
            assert cache[kept]["status"] == "cancelled"
            assert ("removed", gone) in events
            assert ("added", fresh) in events
            assert ("changed", kept) in events
            await eventually(lambda: reconnected == [True])
            assert client.reconnects == 1
            later = save(jc, {"n": "later"})
            await eventually(lambda: later in cache)  # live again
            await client.close()
    finally:
        await client.close()


async def test_a_call_in_flight_at_a_cut_fails_and_is_never_resent(
    url: str, jc: JobCollection
) -> None:
    proxy = Proxy(url)
    async with proxy as proxy_url, fast(proxy_url) as client:
        assert await client.call("queue_getJob", "nope") is None
        proxy.drop_replies = True
        call = asyncio.create_task(client.call("queue_jobSave", job_doc("once")))
        await eventually(lambda: jc.find({"type": "once"}))  # applied; the reply is lost
        proxy.drop_replies = False
        proxy.cut()
        with pytest.raises(ConnectionClosed, match="outcome is unknown") as lost:
            await call
        assert "may or may not have been applied" in str(lost.value)
        await client.wait_connected(timeout=10)
        assert await client.call("queue_getJob", "nope") is None
        await asyncio.sleep(0.2)
        assert len(jc.find({"type": "once"})) == 1
        assert proxy.connections == 2


async def test_calls_while_disconnected_wait_at_most_their_timeout(url: str) -> None:
    proxy = Proxy(url)
    async with proxy as proxy_url, fast(proxy_url) as client:
        proxy.refuse = True
        proxy.cut()
        await eventually(lambda: not client.connected)
        with pytest.raises(ConnectionClosed, match="was not sent"):
            await client.call("queue_getJob", "nope", timeout=0.3)
        with pytest.raises(TimeoutError):
            await client.wait_connected(timeout=0.1)
        proxy.refuse = False
        assert await client.call("queue_getJob", "nope", timeout=10) is None


async def test_without_reconnect_a_lost_connection_closes_the_client(url: str) -> None:
    proxy = Proxy(url)
    async with proxy as proxy_url, DdpClient(proxy_url, reconnect=False) as client:
        proxy.cut()
        await eventually(lambda: client.closed)
        with pytest.raises(ConnectionClosed):
            await client.call("queue_getJob", "nope")
        with pytest.raises(ConnectionClosed):
            await client.wait_connected()


# -- heartbeats and the handshake --------------------------------------------------------------


async def test_server_pings_are_answered(jc: JobCollection) -> None:
    jc.allow(admin="anyone")
    limits = Limits(heartbeat_interval=0.1, heartbeat_timeout=0.2)
    with serving(Server(jc, limits=limits)) as base:
        async with fast(base, heartbeat_interval=None) as client:
            session = client.session
            await asyncio.sleep(1.0)  # the server would have closed a silent connection
            assert client.connected
            assert client.session == session
            assert client.reconnects == 0
            assert await client.call("queue_getJob", "nope") is None


async def test_pongs_echo_the_ping_id() -> None:
    fake = FakeServer()
    async with fake.running() as base, DdpClient(base, heartbeat_interval=None) as client:
        assert fake.received[0] == {
            "msg": "connect",
            "version": "1",
            "support": ["1", "pre2", "pre1"],
        }
        assert fake.current is not None
        await fake.current.send(json.dumps({"msg": "ping", "id": "abc"}))
        await fake.current.send(json.dumps({"msg": "ping"}))
        await eventually(lambda: len(fake.received) >= 3)
        assert fake.received[1:] == [{"msg": "pong", "id": "abc"}, {"msg": "pong"}]
        assert client.connected


async def test_a_server_that_stops_answering_is_dropped_and_calls_are_not_resent() -> None:
    fake = FakeServer()
    async with fake.running() as base:
        client = fast(base, heartbeat_interval=0.2, heartbeat_timeout=0.3)
        async with client:
            call = asyncio.create_task(client.call("remember", 1))
            with pytest.raises(ConnectionClosed, match="outcome is unknown"):
                await call  # the ping went unanswered: the connection was dropped
            await eventually(lambda: fake.connections >= 2)
            pings = [m for m in fake.received if m.get("msg") == "ping"]
            assert pings
            assert all(isinstance(m["id"], str) for m in pings)
            calls = [m for m in fake.received if m.get("msg") == "method"]
            assert [(m["method"], m["params"]) for m in calls] == [("remember", [1])]


async def test_a_refused_version_is_a_protocol_error() -> None:
    fake = FakeServer(reply={"msg": "failed", "version": "2"})
    async with fake.running() as base:
        client = DdpClient(base)
        with pytest.raises(ProtocolError, match="proposes version '2'"):
            await client.connect()
        assert not client.connected
        await client.close()


class PreTwoServer(FakeServer):
    """Speaks only DDP `pre2`: answers another version with `failed` and closes (as Meteor's
    server and ours do), so a client must connect again proposing `pre2`."""

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        await ws.send(json.dumps({"server_id": "0"}))
        connect = json.loads(await ws.recv())
        self.received.append(connect)
        if connect.get("version") != "pre2":
            await ws.send(json.dumps({"msg": "failed", "version": "pre2"}))
            await ws.close()
            return
        await ws.send(json.dumps({"msg": "connected", "session": "pre2-session"}))
        with contextlib.suppress(WsClosed):
            async for frame in ws:
                self.received.append(json.loads(frame))


async def test_a_version_the_server_proposes_is_tried_on_a_new_connection() -> None:
    fake = PreTwoServer()
    async with fake.running() as base:
        client = DdpClient(base)
        await client.connect()
        assert client.connected
        assert client.session == "pre2-session"
        assert fake.connections == 2
        assert [(m["version"], m["support"]) for m in fake.received] == [
            ("1", ["1", "pre2", "pre1"]),
            ("pre2", ["1", "pre2", "pre1"]),
        ]
        await client.close()


async def test_an_unreachable_server_is_connection_closed() -> None:
    client = DdpClient(f"http://127.0.0.1:{free_port()}", connect_timeout=2)
    with pytest.raises(ConnectionClosed, match="could not connect"):
        await client.connect()
    with pytest.raises(ConnectionClosed, match="connect"):
        await client.call("queue_getJob", "nope")
