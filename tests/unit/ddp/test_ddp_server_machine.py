"""Properties of the server's side of a DDP connection (`jobcollection.ddp.server`)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jobcollection.ddp import messages
from jobcollection.ddp.client import Accepted, Handshake, Retry
from jobcollection.ddp.heartbeat import Heartbeat, has_heartbeat
from jobcollection.ddp.server import (
    Call,
    Connected,
    Failed,
    Nothing,
    Refused,
    Reply,
    Request,
    ServerConnection,
    negotiate,
)

VERSION_POOL = ["1", "pre2", "pre1", "2", "0.5", ""]
versions = st.sampled_from(VERSION_POOL)
support_lists = st.lists(versions, max_size=5, unique=True)


def frame(message: dict[str, Any]) -> str:
    return json.dumps(message)


def connected_server() -> ServerConnection:
    server = ServerConnection(max_message_size=10_000)
    assert isinstance(
        server.receive(frame({"msg": "connect", "version": "1", "support": ["1"]})), Connected
    )
    return server


@given(version=versions, support=support_lists)
def test_negotiation_ends_connected_on_a_mutual_version_or_failed(
    version: str, support: list[str]
) -> None:
    server = ServerConnection(max_message_size=10_000)
    event = server.receive(frame({"msg": "connect", "version": version, "support": support}))
    if isinstance(event, Connected):
        assert server.connected
        assert not server.failed
        assert event.version == version == server.version
        assert version in support
        assert version in messages.VERSIONS
        # the first version of the client's list that we speak, as Meteor picks it
        assert version == next(v for v in support if v in messages.VERSIONS)
    else:
        assert isinstance(event, Failed)
        assert not server.connected
        assert server.failed
        assert server.version is None
        assert event.reply["msg"] == "failed"
        assert event.reply["version"] in messages.VERSIONS  # what we propose instead
        # after `failed` the connection takes nothing more (the driver closes it)
        again = server.receive(frame({"msg": "connect", "version": "1", "support": ["1"]}))
        assert isinstance(again, Reply)
        assert again.messages[0]["reason"] == "Must connect first"


@given(version=versions, support=support_lists)
def test_negotiate_is_pure_and_agrees_with_the_machine(version: str, support: list[str]) -> None:
    message = {"msg": "connect", "version": version, "support": support}
    outcome = negotiate(message)
    assert outcome == negotiate(message)
    event = ServerConnection(10_000).receive(frame(message))
    assert outcome.ok == isinstance(event, Connected)


@given(retries=st.lists(st.sampled_from(messages.VERSIONS), min_size=1, max_size=4))
def test_a_client_and_a_server_that_share_a_version_always_connect(retries: list[str]) -> None:
    """The client's handshake against servers speaking various subsets ends in `connected`
    whenever a version is shared, after at most one retry per version."""
    supported = tuple(dict.fromkeys(retries))  # the server's versions, preferred first
    handshake = Handshake()
    for _attempt in range(len(messages.VERSIONS)):
        server = ServerConnection(10_000, supported)
        event = server.receive(handshake.connect_message())
        if isinstance(event, Connected):
            reply = {"msg": "connected", "session": "s1"}
        else:
            assert isinstance(event, Failed)
            reply = event.reply
        outcome = handshake.receive(reply)
        if isinstance(outcome, Accepted):
            assert outcome.version == server.version
            assert outcome.version in supported
            return
        assert isinstance(outcome, Retry)
    raise AssertionError("the handshake did not end")


def test_the_client_connect_frame_is_unchanged_on_the_wire() -> None:
    assert Handshake().connect_message() == (
        '{"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]}'
    )


@given(kind=st.sampled_from(["method", "sub", "unsub", "ping", "pong", "nonsense"]))
def test_nothing_but_connect_is_taken_before_the_handshake(kind: str) -> None:
    server = ServerConnection(10_000)
    event = server.receive(frame({"msg": kind, "id": "1", "method": "m", "name": "n"}))
    assert isinstance(event, Reply)
    assert event.messages[0]["msg"] == "error"
    assert event.messages[0]["reason"] == "Must connect first"
    assert not server.connected


@given(ping_id=st.one_of(st.none(), st.text(max_size=5), st.integers()))
def test_a_ping_is_answered_with_its_id(ping_id: object) -> None:
    server = connected_server()
    ping: dict[str, Any] = {"msg": "ping"}
    if ping_id is not None:
        ping["id"] = ping_id
    event = server.receive(frame(ping))
    assert isinstance(event, Reply)
    assert event.messages == (messages.pong(ping),)
    assert isinstance(server.receive(frame({"msg": "pong"})), Nothing)


@given(
    requests=st.lists(
        st.tuples(st.sampled_from(["method", "sub", "unsub"]), st.text(min_size=1, max_size=4)),
        max_size=10,
    ),
    stop_at=st.integers(min_value=0, max_value=10),
)
def test_requests_are_routed_in_order_and_calls_after_stop_are_not_applied(
    requests: list[tuple[str, str]], stop_at: int
) -> None:
    server = connected_server()
    for index, (kind, id_) in enumerate(requests):
        if index == stop_at:
            server.stop()
        message = {"msg": kind, "id": id_, "method": "m", "name": "n", "params": []}
        event = server.receive(frame(message))
        if server.stopping:
            if kind == "method":
                assert isinstance(event, Reply)
                result, updated = event.messages
                assert result["id"] == id_
                assert result["error"]["error"] == 503
                assert messages.is_not_applied(result["error"])
                assert updated == messages.updated(id_)
            else:
                assert isinstance(event, Nothing)
        elif kind == "method":
            assert isinstance(event, Call)
            assert (event.call.id, event.call.method, event.call.params) == (id_, "m", [])
        else:
            assert isinstance(event, Request)
            assert event.message["id"] == id_


def test_unusable_params_are_refused_in_turn_and_frames_too_large_are_errors() -> None:
    server = connected_server()
    bad = '{"msg":"method","id":"7","method":"m","params":["\\ud800"]}'  # a lone surrogate
    event = server.receive(bad)
    assert isinstance(event, Refused)
    assert [r["msg"] for r in event.replies] == ["result", "updated"]
    assert event.replies[0]["error"]["error"] == 400
    small = ServerConnection(max_message_size=10)
    event = small.receive(frame({"msg": "connect", "version": "1", "support": ["1"]}))
    assert isinstance(event, Reply)
    assert event.messages[0]["reason"].startswith("Message too large")


@given(version=st.sampled_from(messages.VERSIONS))
def test_only_pre1_has_no_heartbeat(version: str) -> None:
    assert has_heartbeat(version) == (version != "pre1")


@given(
    interval=st.integers(min_value=1, max_value=100),
    timeout=st.integers(min_value=2, max_value=100),
    frames=st.lists(st.integers(min_value=0, max_value=1000), max_size=10),
)
def test_the_heartbeat_pings_a_quiet_peer_and_counts_any_frame_as_an_answer(
    interval: int, timeout: int, frames: list[int]
) -> None:
    """Whole seconds: the arithmetic is exact, as the rule is (no rounding to allow for)."""
    beat = Heartbeat(interval, timeout, now=0.0)
    heard = 0
    for at in sorted(frames):
        beat.heard(at)
        heard = at
    assert beat.ping_due(heard + interval)
    assert not beat.ping_due(heard + interval / 2)
    assert beat.until_ping(heard) == interval
    ping_at = heard + interval
    beat.pinged(ping_at)
    assert beat.unanswered()
    beat.heard(ping_at + timeout // 2)
    assert not beat.unanswered()
