"""DDP over websocket against a running server: handshake, heartbeats, methods, errors, limits."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from ddp_harness import CallFailed, DdpClient, new_job_doc, serving

from jobcollection import JobCollection
from jobcollection.server.app import Server
from jobcollection.server.session import Limits


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        yield collection


@pytest.fixture
def url(jc: JobCollection) -> Iterator[str]:
    jc.allow(admin="anyone")
    with serving(Server(jc, limits=Limits(max_message_size=4096, max_subscriptions=3))) as base:
        yield base


def _rows(jc: JobCollection) -> list[dict[str, object]]:
    return [job.doc for job in jc.find({})]


@pytest.mark.parametrize(
    ("connect", "reply"),
    [
        ({"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]}, "connected"),
        ({"msg": "connect", "version": "pre1", "support": ["pre1"]}, "connected"),
        ({"msg": "connect", "version": "2", "support": ["2"]}, "failed"),
        ({"msg": "connect", "version": "pre1", "support": ["1", "pre1"]}, "failed"),
        ({"msg": "connect", "version": 1, "support": ["1"]}, "failed"),
        ({"msg": "connect", "version": "1", "support": "1"}, "failed"),
        ({"msg": "connect", "version": "1", "support": ["pre1"]}, "failed"),
    ],
)
def test_handshake_negotiates_the_version(url: str, connect: object, reply: str) -> None:
    with DdpClient(url, handshake=False) as client:
        client.send(connect)
        message = client.recv()
        assert message["msg"] == reply
        if reply == "connected":
            assert isinstance(message["session"], str)
            assert len(message["session"]) == 17
        else:
            assert message["version"] in ("1", "pre1")


def test_messages_before_connect_are_refused(url: str) -> None:
    with DdpClient(url, handshake=False) as client:
        client.send({"msg": "method", "id": "1", "method": "queue_getJob", "params": ["x"]})
        message = client.recv()
        assert message["msg"] == "error"
        assert message["reason"] == "Must connect first"
        assert message["offendingMessage"]["method"] == "queue_getJob"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "Parse error"),
        ("[1, 2]", "Bad request"),
        ('{"no": "msg"}', "Bad request"),
        ('{"msg": "nonsense"}', "Bad request"),
        ('{"msg": 5}', "Bad request"),
        ('{"msg": "connect", "version": "1", "support": ["1"]}', "Already connected"),
        ('{"msg": "method", "id": 1, "method": "queue_getJob"}', "Malformed method invocation"),
        (
            '{"msg": "method", "id": "1", "method": "x", "params": {}}',
            "Malformed method invocation",
        ),
        ('{"msg": "sub", "id": "1", "name": 7}', "Malformed subscription"),
        ('{"msg": "unsub", "id": null}', "Malformed subscription"),
    ],
)
def test_bad_frames_get_an_error_and_the_connection_lives_on(
    url: str, frame: str, reason: str
) -> None:
    with DdpClient(url) as client:
        client.send(frame)
        message = client.recv()
        assert message == {**message, "msg": "error", "reason": reason}
        assert client.call("queue_getJob", "nope") is None  # still serving


def test_ping_gets_pong_with_its_id(url: str) -> None:
    with DdpClient(url) as client:
        client.send({"msg": "ping", "id": "abc"})
        assert client.recv() == {"msg": "pong", "id": "abc"}
        client.send({"msg": "ping"})
        assert client.recv() == {"msg": "pong"}


def test_method_result_then_updated_with_dates_as_ejson(url: str) -> None:
    with DdpClient(url) as client:
        messages = client.call_raw("queue_jobSave", [new_job_doc()])
        assert [m["msg"] for m in messages] == ["result", "updated"]
        job_id = messages[0]["result"]
        doc = client.call("queue_getJob", job_id)
        assert doc["_id"] == job_id
        assert doc["status"] == "ready"
        assert doc["retryUntil"] == {"$date": 8640000000000000}
        assert set(doc["after"]) == {"$date"}
        assert doc["after"]["$date"] > 0
        assert "log" not in doc
        assert "_private" not in doc
        with_log = client.call("queue_getJob", job_id, {"getLog": True})
        assert [e["message"] for e in with_log["log"]][:2] == ["Constructed", "Job Submitted"]
        assert set(with_log["log"][0]["time"]) == {"$date"}


def test_unknown_method_is_404(url: str) -> None:
    with DdpClient(url) as client, pytest.raises(CallFailed) as failed:
        client.call("queue_noSuchMethod")
    assert failed.value.error == {
        "isClientSafe": True,
        "error": 404,
        "reason": "Method 'queue_noSuchMethod' not found",
        "details": "this server serves collections: queue",
        "message": "Method 'queue_noSuchMethod' not found [404]",
        "errorType": "Meteor.Error",
    }


def test_bad_params_are_400_match_failed_and_write_nothing(url: str, jc: JobCollection) -> None:
    with DdpClient(url) as client:
        job_id = client.call("queue_jobSave", new_job_doc())
        before = _rows(jc)
        bad = new_job_doc()
        bad["priority"] = "urgent-ish"
        for method, params in [
            ("queue_jobSave", [bad]),
            ("queue_jobCancel", [job_id, {"bogus": True}]),
            ("queue_jobProgress", [job_id, None, 5, 1]),
            ("queue_getWork", [7]),
        ]:
            with pytest.raises(CallFailed) as failed:
                client.call(method, *params)
            assert (failed.value.code, failed.value.reason) == (400, "Match failed")
            assert failed.value.error["details"]  # names what was wrong
        assert _rows(jc) == before


def test_denied_calls_are_403_and_write_nothing(db: str) -> None:
    with JobCollection("queue", db=db) as jc:
        jc.allow(worker="anyone")
        jc.deny(getJob="anyone")
        with serving(Server(jc)) as url, DdpClient(url) as client:
            with pytest.raises(CallFailed) as failed:
                client.call("queue_jobSave", new_job_doc())
            assert failed.value.error == {
                "isClientSafe": True,
                "error": 403,
                "reason": "Method not authorized",
                "details": "no user is logged in, and queue_jobSave needs one allowed under"
                " admin, creator or jobSave",
                "message": "Method not authorized [403]",
                "errorType": "Meteor.Error",
            }
            # checked before the params: garbage params are refused with 403, not 400
            with pytest.raises(CallFailed) as garbage:
                client.call("queue_jobSave", "garbage")
            assert garbage.value.code == 403
            with pytest.raises(CallFailed) as denied:
                client.call("queue_getJob", "x")  # worker allowed, but getJob denied
            assert denied.value.code == 403
            assert client.call("queue_getWork", "t") == []  # allowed via the worker group
            assert jc.find({}) == []


def test_oversized_message_gets_an_error_reply(url: str, jc: JobCollection) -> None:
    with DdpClient(url) as client:
        doc = new_job_doc(data={"blob": "x" * 5000})
        client.send({"msg": "method", "id": "big", "method": "queue_jobSave", "params": [doc]})
        message = client.recv()
        assert message["msg"] == "error"
        assert "Message too large" in message["reason"]
        assert client.call("queue_getJob", "nope") is None
    assert jc.find({}) == []


def test_subscription_limit(url: str) -> None:
    with DdpClient(url) as client:
        for n in range(4):
            client.send({"msg": "sub", "id": f"s{n}", "name": "queue.jobs", "params": []})
        replies = client.recv_until(lambda m: m.get("id") == "s3" or m.get("subs") == ["s3"])
        nosub = [m for m in replies if m.get("msg") == "nosub"]
        assert [m["id"] for m in nosub] == ["s3"]
        assert nosub[0]["error"]["error"] == 429


def test_unknown_subscription_is_nosub_404(url: str) -> None:
    with DdpClient(url) as client:
        client.send({"msg": "sub", "id": "s1", "name": "nope", "params": []})
        message = client.recv_until(lambda m: m.get("msg") == "nosub")[-1]
        assert message["error"]["error"] == 404
        assert message["error"]["reason"] == "Subscription 'nope' not found"


def test_heartbeat_pings_a_quiet_client_and_closes_a_silent_one(jc: JobCollection) -> None:
    limits = Limits(heartbeat_interval=0.2, heartbeat_timeout=0.3)
    with serving(Server(jc, limits=limits)) as url, DdpClient(url) as client:
        assert client.recv(timeout=5) == {"msg": "ping"}
        client.send({"msg": "pong"})
        assert client.recv(timeout=5) == {"msg": "ping"}  # pinged again after more silence
        started = time.monotonic()
        with pytest.raises(Exception, match=r"(?i)close|1000"):
            client.recv(timeout=5)  # no pong this time: the server hangs up
        assert time.monotonic() - started < 4


def test_sockjs_info_leads_clients_to_the_plain_websocket(url: str) -> None:
    with urllib.request.urlopen(f"{url}/sockjs/info") as response:
        info = json.load(response)
    assert info["websocket"] is True
    assert "base_url" not in info
    assert info["origins"] == ["*:*"]
    assert info["cookie_needed"] is False


def test_frames_nested_to_the_parsers_limit_get_a_reply_not_a_dead_connection(
    jc: JobCollection,
) -> None:
    """Regression (found by test_fuzz_server): a frame nested just shallowly enough to parse
    was too deep to echo back (`offendingMessage`, a ping's `id`); encoding the reply raised
    RecursionError in the reader and the connection died without an answer."""
    import sys

    jc.allow(getJob="anyone")
    limit = sys.getrecursionlimit()
    with serving(Server(jc)) as url, DdpClient(url) as client:
        for depth in range(limit * 42 // 100, limit * 55 // 100):  # the boundary is in there
            nested = '{"$x":' * depth + "1" + "}" * depth
            for frame in (
                '{"msg":"bogus","x":' + nested + "}",
                '{"msg":"method","id":5,"params":[' + nested + "]}",
                '{"msg":"ping","id":' + nested + "}",
            ):
                client.send(frame)
                reply = client.ws.recv(timeout=10)  # raw: the echo may be too deep for us too
                assert isinstance(reply, str)
                assert reply.startswith(('{"msg":"error","reason":', '{"msg":"pong"')), reply[:80]
        assert client.call("queue_getJob", "nope") is None  # the connection still serves


@pytest.mark.parametrize(
    "frame",
    [
        '{"msg": "bogus", "x": {"$escape": {"$binary": "a"}}}',
        '{"msg": "method", "id": 5, "params": [{"$escape": {"$binary": "a"}}]}',
        '{"msg": "ping", "id": {"$escape": {"$binary": "a"}}}',
    ],
)
def test_an_escaped_object_shaped_like_a_broken_form_is_echoed_intact(url: str, frame: str) -> None:
    """Regression (found by test_fuzz_server): echoing an escaped user object shaped like an
    invalid EJSON form (`{"$binary": "a"}`) raised in the encoder and killed the connection.
    Such objects are escaped again on the way out, so the echo is the frame's own value."""
    sent = json.loads(frame)
    with DdpClient(url) as client:
        client.send(frame)
        reply = client.recv()
        assert reply["msg"] in ("error", "pong")
        if reply["msg"] == "pong":
            assert reply["id"] == sent["id"]
        else:
            assert reply["offendingMessage"] == sent
        assert client.call("queue_getJob", "nope") is None  # still serving


@pytest.mark.parametrize(
    "frame",
    [
        '{"msg": "ping", "id": NaN}',
        '{"msg": "method", "id": "1", "method": "queue_getJob", "params": [Infinity]}',
        '{"msg": "sub", "id": "1", "name": "queue.jobs", "params": [-Infinity]}',
    ],
)
def test_bare_nan_and_infinity_are_a_parse_error(url: str, frame: str) -> None:
    """Regression (found by test_fuzz_server): DDP frames took bare NaN/Infinity, which are not
    JSON (Meteor's JSON.parse and our HTTP API refuse them; EJSON spells them $InfNaN)."""
    with DdpClient(url) as client:
        client.send(frame)
        assert client.recv() == {"msg": "error", "reason": "Parse error"}
        assert client.call("queue_getJob", "nope") is None  # still serving


def test_a_pre1_session_gets_no_heartbeat_and_stays_open_while_idle(jc: JobCollection) -> None:
    """DDP pre1 has no ping/pong: the server must neither ping such a client nor drop it for
    being quiet (Meteor starts its heartbeat only for the later versions)."""
    jc.allow(admin="anyone")
    limits = Limits(heartbeat_interval=0.1, heartbeat_timeout=0.1)
    with serving(Server(jc, limits=limits)) as url, DdpClient(url, handshake=False) as client:
        client.send({"msg": "connect", "version": "pre1", "support": ["pre1"]})
        assert client.recv()["msg"] == "connected"
        with pytest.raises(TimeoutError):
            client.recv(timeout=1.0)  # ten heartbeat periods: no ping, no close
        assert client.call("queue_getJob", "nope") is None  # still served
    with serving(Server(jc, limits=limits)) as url, DdpClient(url) as client:
        assert client.recv(timeout=5) == {"msg": "ping"}  # version 1 is pinged, as before
