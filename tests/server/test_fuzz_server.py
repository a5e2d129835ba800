"""Hostile DDP frames and HTTP requests against one running server (hypothesis).

Every fuzz call is built so that it must be refused (garbage params, bad options, a denied
method or collection, a malformed frame), so the database must stay byte for byte the same;
every frame that calls for a reply must get one (no silence, no 5xx, no internal error), and a
well-behaved client on its own connection keeps getting correct answers throughout.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from ddp_harness import SPEC_METHODS, DdpClient, new_job_doc, serving
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from jobcollection import JobCollection
from jobcollection.core import ejson
from jobcollection.server.app import Server
from jobcollection.server.login_throttle import Backoff, LoginThrottle
from jobcollection.server.session import Limits
from storage_support import Databases, dump_tables

LIMIT = 64 * 1024  # the server's max message size (characters) and max HTTP body (bytes)
ROOT = "fuzz"  # admin allowed to anyone, shutdownJobServer denied
LOCKED = "locked"  # no rules: every call is refused (401 over HTTP: nobody logs in)
FOREVER = 8640000000000000
FAR_FUTURE = 4102444800000  # 2100-01-01
REFUSAL_CODES = frozenset((400, 403, 404, 429))
FRESH = "\x00fresh"  # replaced by a unique id when sent
FRESH_JSON = json.dumps(FRESH)
# A failing example may hold a frame or body of 64 KiB: let hypothesis print it anyway.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)
FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JOB_METHODS = SPEC_METHODS
IDS_METHODS = frozenset(
    ("getJob", "jobRemove", "jobPause", "jobResume", "jobReady", "jobCancel", "jobRestart")
)
OPTION_KEYS = {
    "startJobServer": (),
    "shutdownJobServer": ("timeout",),
    "getJob": ("getLog", "getFailures"),
    "getWork": ("maxJobs", "workTimeout"),
    "jobRemove": (),
    "jobPause": (),
    "jobResume": (),
    "jobReady": ("force", "time"),
    "jobCancel": ("antecedents", "dependents"),
    "jobRestart": ("retries", "until", "antecedents", "dependents"),
    "jobSave": ("cancelRepeats",),
    "jobRerun": ("repeats", "until", "wait"),
    "jobProgress": (),
    "jobLog": ("level", "data"),
    "jobDone": ("repeatId", "delayDeps"),
    "jobFail": ("fatal",),
}
ALL_OPTION_KEYS = frozenset(key for keys in OPTION_KEYS.values() for key in keys)
DOC_KEYS = (
    "type",
    "data",
    "status",
    "runId",
    "priority",
    "retries",
    "retryWait",
    "retryBackoff",
    "retryUntil",
    "retried",
    "repeats",
    "repeatWait",
    "repeatRetries",
    "repeatUntil",
    "repeated",
    "after",
    "updated",
    "created",
    "depends",
    "resolved",
    "progress",
    "log",
)
REQUIRED_DOC_KEYS = tuple(k for k in DOC_KEYS if k not in ("log", "repeatRetries"))


def job_doc(job_type: str = "t", **fields: Any) -> dict[str, Any]:
    """A new job as meteor-job sends it, dates as EJSON, with ``fields`` changed."""
    doc = new_job_doc(job_type)
    doc.update(fields)
    return doc


# -- the server under attack ---------------------------------------------------------------


@dataclass
class Target:
    url: str
    db: str
    ids: dict[str, str]
    run_id: str
    client: DdpClient
    http: httpx.Client
    expected: dict[str, Any]  # getJob(ready, {getLog: true}) as the fixture first saw it
    fuzz: FuzzConnection = field(init=False)
    calls: int = 0

    def __post_init__(self) -> None:
        self.fuzz = FuzzConnection(self.url)

    def fresh_id(self, prefix: str) -> str:
        self.calls += 1
        return f"{prefix}-{self.calls}"


class FuzzConnection:
    """A raw DDP connection that is reopened whenever the server has closed it."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/websocket"
        self._ws: ClientConnection | None = None
        self.used = time.monotonic()

    def ws(self) -> ClientConnection:
        if time.monotonic() - self.used > 5:  # the server may have hung up on a quiet client
            self.drop()
        self.used = time.monotonic()
        if self._ws is None:
            ws = open_ws(self.url)
            assert recv_json(ws) == {"server_id": "0"}
            ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
            assert recv_json(ws)["msg"] == "connected"
            self._ws = ws
        return self._ws

    def drop(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None


def open_ws(url: str) -> ClientConnection:
    """A client connection without keepalive pings (their payload comes from the global
    `random`, and hypothesis fails a test whose strategies seem to use it) and without
    backpressure (an unread backlog would hold up the closing handshake)."""
    # entered as a context manager (websockets >= 17.1 warns on a bare connect())
    return connect(
        url, max_size=None, max_queue=None, ping_interval=None, close_timeout=2
    ).__enter__()


class QuietClient(DdpClient):
    """The harness's well-behaved client, on a connection from `open_ws`."""

    def __init__(self, url: str) -> None:
        self.ws = open_ws(url.replace("http://", "ws://") + "/websocket")
        self.seen = []
        self._next_id = 0
        assert self.recv() == {"server_id": "0"}
        self.send({"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]})
        reply = self.recv()
        assert reply["msg"] == "connected", reply
        self.session = reply["session"]


def _no_bare_constants(name: str) -> object:
    raise AssertionError(f"the server sent a bare {name} (SPEC 8: never NaN/Infinity)")


def recv_json(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    raw = ws.recv(timeout=timeout)
    assert isinstance(raw, str), f"the server sent a binary frame: {raw!r}"
    message: dict[str, Any] = json.loads(raw, parse_constant=_no_bare_constants)
    return message


def dump(db: str) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Every row of every table, read through a connection of its own (sees every commit)."""
    return sorted(dump_tables(db).items())


def _setup_jobs(jc: JobCollection) -> tuple[dict[str, str], str]:
    def save(doc: dict[str, Any]) -> str:
        job_id = jc.call("jobSave", [ejson.from_ejson(doc)])
        assert isinstance(job_id, str)
        return job_id

    def claim(job_type: str) -> tuple[str, str]:
        (work,) = jc.call("getWork", [job_type])
        return str(work["_id"]), str(work["runId"])

    odd_data = {
        "when": ejson.Date(5),
        "blob": b"\x00\xff",
        "inf": math.inf,
        "looks": {"$escape": {"$date": 5}},  # decoded by from_ejson below: a user object
        "almost": {"$date": "not a date"},
        "nested": [{"$type": "x"}, None, 1.5],
    }
    jc.start_job_server()
    ids = {
        "ready": save(job_doc("t", data=odd_data)),
        "waiting": save(job_doc("t", after={"$date": FAR_FUTURE})),
        "paused": save(job_doc("t", status="paused")),
    }
    save(job_doc("r"))
    ids["running"], run_id = claim("r")
    save(job_doc("c"))
    ids["completed"], completed_run = claim("c")
    assert jc.call("jobDone", [ids["completed"], completed_run, {"ok": True}]) is True
    save(job_doc("f"))
    ids["failed"], failed_run = claim("f")
    assert jc.call("jobFail", [ids["failed"], failed_run, {"e": 1}, {"fatal": True}]) is True
    ids["cancelled"] = save(job_doc("x"))
    assert jc.call("jobCancel", [[ids["cancelled"]]]) is True
    ids["dependent"] = save(job_doc("t", depends=[ids["running"]]))
    assert jc.call("jobLog", [ids["ready"], None, "hello", {"level": "warning"}]) is True
    return ids, run_id


@pytest.fixture(scope="module")
def target(module_dbs: Databases) -> Iterator[Target]:
    db = module_dbs("fuzz")
    with JobCollection(ROOT, db=db) as jc, JobCollection(LOCKED, db=jc.manager.storage) as locked:
        ids, run_id = _setup_jobs(jc)
        jc.allow(admin="anyone")
        jc.deny(shutdownJobServer="anyone")
        # Hundreds of refused logins from one address: slowing them is tested elsewhere
        # (test_login_lockout.py, test_login_throttle.py); here every frame must be answered.
        never_slow = Backoff(free=10**9, first=1.0, longest=1.0, half_life=1.0)
        throttle = LoginThrottle(per_address=never_slow, per_account=never_slow)
        server = Server(jc, locked, limits=Limits(max_message_size=LIMIT), login_throttle=throttle)
        with serving(server) as url, QuietClient(url) as client, httpx.Client(base_url=url) as http:
            expected = client.call(f"{ROOT}_getJob", ids["ready"], {"getLog": True})
            assert expected["_id"] == ids["ready"]
            assert expected["data"]["looks"] == {"$escape": {"$date": 5}}
            found = Target(url, db, ids, run_id, client, http, expected)
            try:
                yield found
            finally:
                found.fuzz.drop()


def check_still_serving(target: Target) -> None:
    """The well-behaved client, on its own connection, still gets the right answers."""
    client = target.client
    client.send({"msg": "ping", "id": "alive"})
    replies = client.recv_until(lambda m: m.get("msg") == "pong")
    for message in replies[:-1]:
        assert message == {"msg": "ping"}, replies  # only the server's heartbeat may come first
        client.send({"msg": "pong"})
    assert replies[-1] == {"msg": "pong", "id": "alive"}
    assert client.call(f"{ROOT}_getJob", target.ids["ready"], {"getLog": True}) == target.expected
    assert client.call(f"{ROOT}_getJob", "no-such-job") is None
    response = target.http.post(
        f"/api/{ROOT}/getJob", json=[target.ids["ready"], {"getLog": True}], timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"result": target.expected}


# -- hostile values --------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities become bare NaN/Infinity tokens
    st.text(max_size=12),
    st.sampled_from(["", "$date", "\ud800", "\x00", "null", "[]", "__proto__", "constructor"]),
)
ejson_lookalikes = st.one_of(
    st.builds(lambda v: {"$date": v}, scalars | st.just([]) | st.just(1e300)),
    st.builds(
        lambda v: {"$binary": v},
        st.sampled_from(["!!", "", "a", "AAAA", "AA==", "=", "é", "AAA=x"]) | scalars,
    ),
    st.builds(lambda v: {"$type": v}, scalars),
    st.builds(lambda t, v: {"$type": t, "$value": v}, scalars, scalars),
    st.builds(lambda v: {"$escape": v}, scalars | st.dictionaries(st.text(max_size=4), scalars)),
    st.builds(lambda v: {"$InfNaN": v}, scalars | st.sampled_from([0, 1, -1, 2, 0.5, True])),
    st.dictionaries(st.text(max_size=6).map(lambda k: "$" + k), scalars, min_size=1, max_size=3),
)
garbage = st.recursive(
    scalars | ejson_lookalikes,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["$date", "$escape"]), kids, max_size=4
        )
    ),
    max_leaves=10,
)


selector_values = st.one_of(
    garbage,
    st.sampled_from(["ready", "waiting", "t", "@ready"]),
    st.builds(lambda v: {"$in": v}, garbage | st.lists(st.sampled_from(["ready", "t", "@ready"]))),
    st.builds(
        lambda op, v: {op: v}, st.sampled_from(["$nin", "$ne", "$gt", "$where", "$in"]), garbage
    ),
)
selectors = (
    st.dictionaries(
        st.sampled_from(["_id", "status", "type", "data", "$or", "$where", "runId"])
        | st.text(max_size=5),
        selector_values,
        max_size=3,
    )
    | garbage
)

# An EJSON form never decodes to a string or a list, so these need no filtering.
keys = st.text(max_size=8) | st.sampled_from(["$date", "$escape", "$type", "_id", "msg"])
plain_dicts = st.dictionaries(keys, garbage, max_size=3)
not_text = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), ejson_lookalikes, plain_dicts
)
with_a_non_text = st.builds(
    lambda texts, bad, at: [*texts[:at], bad, *texts[at:]],
    st.lists(st.text(max_size=8), max_size=2),
    not_text | st.lists(garbage, max_size=2),
    st.integers(0, 2),
)
not_ids = not_text | with_a_non_text  # neither an id nor a list of ids
decoded_not_dicts = st.one_of(
    st.builds(lambda v: {"$date": v}, st.integers(-(10**16), 10**16)),
    st.sampled_from([{"$binary": "AAAA"}, {"$InfNaN": 0}, {"$InfNaN": -1}]),
    st.builds(lambda v: {"$type": "oid", "$value": v}, scalars),
)
not_dicts = st.one_of(scalars, st.lists(garbage, max_size=3), decoded_not_dicts)
not_numbers = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.lists(garbage, max_size=2),
    st.dictionaries(st.text(max_size=4).map(lambda k: k + "x"), garbage, max_size=2),
    st.sampled_from([{"$binary": "AAAA"}, {"$date": 0}, {"$type": "x", "$value": 1}]),
)


def _bad_options(method: str) -> st.SearchStrategy[object]:
    """Options that the closed options pattern must refuse (after EJSON decoding)."""

    unknown_key = st.text(max_size=10).filter(lambda k: k not in ALL_OPTION_KEYS)
    return st.one_of(
        not_dicts,
        st.builds(lambda k, v, rest: {**rest, k: v}, unknown_key, garbage, plain_dicts),
        st.builds(lambda k, v: {"$escape": {k: v}}, unknown_key, garbage),
    )


def _doc_corruptions() -> st.SearchStrategy[dict[str, Any]]:
    """A meteor-job document with one thing wrong that the closed doc pattern must refuse."""

    def with_field(key: str, value: object) -> dict[str, Any]:
        return job_doc("t", **{key: value})

    def without(key: str) -> dict[str, Any]:
        doc = job_doc("t")
        del doc[key]
        return doc

    return st.one_of(
        st.builds(
            with_field,
            st.text(min_size=1, max_size=10).filter(lambda k: k not in (*DOC_KEYS, "_id")),
            garbage,
        ),
        st.builds(with_field, st.just("_private"), garbage),
        st.builds(with_field, st.just("_id"), not_text.filter(lambda v: v is not None)),
        st.builds(with_field, st.just("type"), not_text),
        st.builds(
            with_field,
            st.just("status"),
            st.text(max_size=8).filter(lambda v: v not in ("waiting", "paused")) | not_text,
        ),
        st.builds(with_field, st.sampled_from(["priority", "retries", "repeats"]), not_numbers),
        st.builds(with_field, st.sampled_from(["retries", "retryWait", "repeats"]), st.just(-1)),
        st.builds(
            with_field,
            st.sampled_from(["data", "progress"]),
            not_dicts,
        ),
        st.builds(with_field, st.sampled_from(["depends", "resolved"]), not_ids),
        st.builds(
            with_field,
            st.sampled_from(["after", "retryUntil", "repeatUntil", "updated", "created"]),
            st.sampled_from([{"$date": 1e300}, {"$date": -1e300}, {"$date": FOREVER + 1}])
            | st.sampled_from([{"$date": "x"}, {"$date": None}, "2020-01-01", None, [], {}]),
        ),
        st.builds(with_field, st.just("retryBackoff"), st.just("linear") | not_text),
        st.builds(without, st.sampled_from(REQUIRED_DOC_KEYS)),
        st.builds(with_field, st.just("log"), not_text | st.lists(scalars, min_size=1, max_size=2)),
        st.builds(  # deeply nested user data, and one unknown key
            lambda depth, shape: {**job_doc("t", data=_nested(depth, shape)), "bogus": 1},
            st.integers(1, 100),  # clear of the recursion limits, see DEPTHS
            st.sampled_from(["list", "object"]),
        ),
    )


def _nested(depth: int, shape: str) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = [value] if shape == "list" else {"a": value}
    return {"deep": value}


@st.composite
def refused_params(draw: st.DrawFn, method: str) -> list[object]:
    """Positional params for ``method`` that it must refuse with 400 (or 403, if denied)."""
    target_ids = ["ready", "waiting", "paused", "running", "completed", "failed", "cancelled"]
    ref = draw(st.sampled_from(target_ids))  # a real job, resolved by the test
    trailing = draw(st.lists(garbage, max_size=2))
    kind = draw(st.sampled_from(["first", "options"] + (["doc"] if method == "jobSave" else [])))
    if kind == "doc":
        return [draw(_doc_corruptions()), *trailing]
    if kind == "first":
        if method in ("startJobServer", "shutdownJobServer"):
            return [draw(_bad_options(method)), *trailing]
        if method in IDS_METHODS or method == "getWork":
            first = draw(not_ids)
        elif method == "jobSave":
            first = draw(not_dicts)
        else:
            first = draw(not_text)
        return [first, *draw(st.lists(garbage, max_size=4))]
    # valid leading params on real jobs, then options the method must refuse
    table: dict[str, list[object]] = {
        "startJobServer": [],
        "shutdownJobServer": [],
        "getJob": [[f"@{ref}"]],
        "getWork": [draw(st.sampled_from(["t", "r", ["t", "c"]]))],
        "jobSave": [job_doc("t")],
        "jobRerun": ["@completed"],
        "jobProgress": ["@running", "@run", 1, 2],
        "jobLog": [f"@{ref}", None, "fuzz"],
        "jobDone": ["@running", "@run", {}],
        "jobFail": ["@running", "@run", {}],
    }
    leading = table.get(method, [[f"@{ref}"]])
    return [*leading, draw(_bad_options(method)), *trailing]


@st.composite
def method_calls(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed method message whose call must be refused."""
    which = draw(st.sampled_from(["job", "job", "job", "locked", "unknown", "login"]))
    params: list[Any]
    if which == "job":
        bare = draw(st.sampled_from(JOB_METHODS))
        name, params = f"{ROOT}_{bare}", draw(refused_params(bare))
    elif which == "locked":
        name, params = f"{LOCKED}_{draw(st.sampled_from(JOB_METHODS))}", draw(st.lists(garbage))
    elif which == "unknown":
        name = draw(
            st.text(max_size=20)
            | st.sampled_from(JOB_METHODS)
            | st.builds(lambda m: f"{ROOT}_{m}_", st.sampled_from(JOB_METHODS))
            | st.just(f"{ROOT}_")
            | st.just(f"nope_{JOB_METHODS[2]}")
        )
        name = name if name not in ("login", "logout") else name + "!"
        params = draw(st.lists(garbage, max_size=3))
    else:
        name = "login"
        params = draw(
            st.lists(garbage, max_size=2)
            | st.builds(lambda o: [{"resume": o}], garbage)
            | st.builds(
                lambda u, p: [{"user": u, "password": p}],
                garbage | st.builds(lambda n: {"username": n}, st.text(max_size=8)),
                garbage,
            )
        )
    message: dict[str, Any] = {"msg": "method", "id": FRESH, "method": name, "params": params}
    if draw(st.booleans()):
        message["randomSeed"] = draw(st.text(max_size=10) | st.none())
    return message


messages = st.one_of(
    method_calls(),
    method_calls(),
    method_calls(),
    # malformed method invocations
    st.builds(
        lambda i, m, p: {"msg": "method", "id": i, "method": m, "params": p},
        garbage,
        garbage,
        garbage,
    ),
    st.builds(
        lambda m, s: {"msg": "method", "id": FRESH, "method": m, "params": [], "randomSeed": s},
        st.just(f"{ROOT}_getJob"),
        st.one_of(st.booleans(), st.integers(), ejson_lookalikes, st.lists(garbage, max_size=2)),
    ),
    # subscriptions: garbage names/params, the real publication with garbage selectors
    st.builds(
        lambda n, p: {"msg": "sub", "id": FRESH, "name": n, "params": p},
        st.sampled_from([f"{ROOT}.jobs", f"{LOCKED}.jobs"]) | st.text(max_size=10),
        st.lists(garbage, max_size=3),
    ),
    st.builds(
        lambda p: {"msg": "sub", "id": FRESH, "name": f"{ROOT}.jobs", "params": p},
        st.lists(selectors, min_size=1, max_size=2),
    ),
    st.builds(  # never a string id: a duplicate of a live subscription gets no reply at all
        lambda i, n, p: {"msg": "sub", "id": i, "name": n, "params": p},
        not_text | st.lists(garbage, max_size=2),
        garbage,
        garbage,
    ),
    st.builds(lambda i: {"msg": "unsub", "id": i}, garbage | st.just(FRESH)),
    # handshake and heartbeat messages at the wrong time, with garbage in them
    st.builds(
        lambda v, s: {"msg": "connect", "version": v, "support": s},
        garbage | st.sampled_from(["1", "pre1"]),
        garbage,
    ),
    st.builds(lambda i: {"msg": "ping", "id": i}, garbage),
    st.just({"msg": "ping"}),
    st.builds(lambda i: {"msg": "pong", "id": i}, garbage),
    # messages a client never sends, unknown kinds, missing or non-string msg
    st.builds(
        lambda kind, extra: {**extra, "msg": kind},
        st.sampled_from(
            [
                *("connected", "failed", "result", "updated", "added", "changed", "removed"),
                *("ready", "nosub", "error", "", "METHOD", "method ", "sub\x00"),
            ]
        )
        | st.text(max_size=8),
        st.dictionaries(st.text(max_size=6), garbage, max_size=3),
    ),
    st.builds(lambda m, extra: {**extra, "msg": m}, not_text, plain_dicts),
    st.dictionaries(st.text(max_size=6).filter(lambda k: k != "msg"), garbage, max_size=4),
)


# Nesting depths clear of the recursion limits (JSON parser ~1000 levels, the EJSON walk a third
# of that; hypothesis raises the limit while a test runs, and the server's thread shares it):
# near a limit, whether a frame parses depends on the depth of the parser's stack, which differs
# between the server and this test's model of it. test_deep_frames_at_any_depth_get_an_answer
# covers the depths in between. Depth >= 2: getJob([]) would be a valid call (it returns null).
DEPTHS = st.integers(2, 100) | st.integers(10000, 30000)


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        inner = "[" * depth + "]" * depth
    elif kind == "object":
        inner = '{"a":' * depth + "1" + "}" * depth
    elif kind == "dollar":
        inner = '{"$x":' * depth + "1" + "}" * depth
    else:
        inner = '{"$escape":' * depth + "{}" + "}" * depth
    return inner


@st.composite
def raw_frames(draw: st.DrawFn) -> str | bytes:
    """Frames that are not (quite) JSON messages."""
    kind = draw(
        st.sampled_from(
            ["text", "binary", "truncated", "deep", "deep-param", "huge", "digits", "junk"]
        )
    )
    if kind == "text":
        return draw(st.text(max_size=100))
    if kind == "binary":
        return draw(st.binary(max_size=100))
    if kind == "truncated":
        text = json.dumps(draw(messages))
        cut = draw(st.integers(0, max(len(text) - 1, 0)))
        return text[:cut]
    if kind in ("deep", "deep-param"):
        nested = _deep(draw(DEPTHS), draw(st.sampled_from(["list", "object", "ej"])))
        if kind == "deep":
            return draw(st.sampled_from([nested, '{"msg":"bogus","x":' + nested + "}"]))
        method = draw(st.sampled_from([f"{ROOT}_jobSave", f"{ROOT}_getJob", f"{LOCKED}_getJob"]))
        return (
            json.dumps({"msg": "method", "id": FRESH, "method": method, "params": []})[:-2]
            + f"{nested}]}}"
        )
    if kind == "huge":
        size = draw(st.sampled_from([LIMIT - 200, LIMIT, LIMIT + 1, LIMIT + 5000]))
        char = draw(st.sampled_from(["x", "é", "\U0001f600", '"']))
        blob = json.dumps(char * size)
        where = draw(st.sampled_from(["param", "msg", "id", "bare"]))
        if where == "bare":
            return blob
        if where == "msg":
            return '{"msg":' + blob + "}"
        if where == "id":
            return '{"msg":"method","method":"fuzz_getJob","params":[],"id":' + blob + "}"
        return (
            '{"msg":"method","id":'
            + FRESH_JSON
            + ',"method":"fuzz_jobLog","params":'
            + (
                '["@ready",null,' + blob + ",null]}"  # null options: refused
            )
        )
    if kind == "digits":
        return (
            '{"msg":"method","id":'
            + FRESH_JSON
            + ',"method":"fuzz_getJob","params":['
            + ("9" * draw(st.integers(4000, 5000)) + "]}")
        )
    return draw(
        st.sampled_from(
            [
                *("", " ", "null", "[]", "{}", "NaN", '{"msg":NaN}', '{"msg":"ping","id":NaN}'),
                *('{"msg":"ping"} {"msg":"ping"}', '{"msg":"ping"', "\ufeff{}", '{"msg":"ping",}'),
                *('{"__proto__":{"msg":"ping"}}', '{"msg":"ping","msg":"pong"}', "\x00"),
            ]
        )
    )


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    """One frame: a rendered message (text or binary) or a raw one."""
    if draw(st.integers(0, 3)) == 0:
        return draw(raw_frames())
    text = json.dumps(draw(messages), ensure_ascii=draw(st.booleans()))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only a binary frame can carry it
        return text.encode("utf-8", "surrogatepass")
    return text.encode("utf-8") if draw(st.booleans()) else text


# -- what the server must answer (SPEC 8), frame by frame ----------------------------------


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def strict_ejson(text: str) -> Any:
    """How the server reads a frame: strict JSON (no bare NaN/Infinity), then EJSON forms.
    A call or subscription whose params hold a form that does not decode (a `$binary` that is
    not base64) is still read, undecoded: it is answered, with a 400."""
    value = json.loads(text, parse_constant=_no_constant)
    if '"$' not in text:
        return value
    try:
        return ejson.from_ejson(value)
    except ejson.FormError:
        if isinstance(value, dict) and value.get("msg") in ("method", "sub"):
            return value
        raise


@dataclass(frozen=True)
class Expect:
    kind: str  # "error", "method", "sub", "unsub", "pong", "none"
    detail: str = ""  # the error reason, or the call/subscription id


def expect_reply(text: str) -> Expect:
    if len(text) > LIMIT:
        return Expect("error", "Message too large")
    try:
        message = strict_ejson(text)
    except (ValueError, RecursionError):
        return Expect("error", "Parse error")
    if not isinstance(message, dict) or not isinstance(message.get("msg"), str):
        return Expect("error", "Bad request")
    kind, id_ = message["msg"], message.get("id")
    if kind == "ping":
        return Expect("pong")
    if kind == "pong":
        return Expect("none")
    if kind == "connect":
        return Expect("error", "Already connected")
    if kind == "method":
        seed = message.get("randomSeed")
        if (
            isinstance(id_, str)
            and isinstance(message.get("method"), str)
            and isinstance(message.get("params", []), list)
            and (seed is None or isinstance(seed, str))
        ):
            return Expect("method", id_)
        return Expect("error", "Malformed method invocation")
    if kind == "sub":
        if isinstance(id_, str) and isinstance(message.get("name"), str):
            if isinstance(message.get("params", []), list):
                return Expect("sub", id_)
        return Expect("error", "Malformed subscription")
    if kind == "unsub":
        return (
            Expect("unsub", id_)
            if isinstance(id_, str)
            else Expect("error", "Malformed subscription")
        )
    return Expect("error", "Bad request")


def render(frame: str | bytes, target: Target) -> tuple[str | bytes, str]:
    """Fill in fresh ids and job ids; returns the frame to send and the text the server sees."""
    marker = json.dumps(FRESH)[1:-1]
    if isinstance(frame, bytes):
        raw = frame.replace(marker.encode(), target.fresh_id("c").encode())
        return raw, raw.decode("utf-8", errors="replace")
    text = fill_ids(frame.replace(marker, target.fresh_id("c")), target)
    return text, text


def fill_ids(text: str, target: Target) -> str:
    """Replace the "@name" placeholders of refused_params by the fixture's job ids."""
    for name, job_id in target.ids.items():
        text = text.replace(f'"@{name}"', json.dumps(job_id))
    return text.replace('"@run"', json.dumps(target.run_id))


# -- the DDP fuzzers -------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(batch=st.lists(frames(), min_size=1, max_size=8))
def test_hostile_ddp_frames_are_answered_and_change_nothing(
    target: Target, batch: list[str | bytes]
) -> None:
    before = dump(target.db)
    ws = target.fuzz.ws()
    expected: list[Expect] = []
    replies: list[dict[str, Any]] = []
    try:
        for frame in batch:
            payload, seen = render(frame, target)
            expected.append(expect_reply(seen))
            note(f"sent {_preview(payload)}, expecting {expected[-1]}")
            ws.send(payload)
        sentinel = target.fresh_id("sentinel")
        ws.send(
            json.dumps(
                {
                    "msg": "method",
                    "id": sentinel,
                    "method": f"{ROOT}_getJob",
                    "params": [target.ids["ready"], {"getLog": True}],
                }
            )
        )
        while True:
            message = recv_json(ws)
            replies.append(message)
            if message.get("msg") == "updated" and sentinel in message.get("methods", []):
                break
    except (ConnectionClosed, TimeoutError):
        note(f"got {[_preview(json.dumps(m)) for m in replies]}")
        target.fuzz.drop()
        raise
    finally:
        check_still_serving(target)
    assert dump(target.db) == before
    check_replies(expected, replies, sentinel, target)


def _preview(payload: str | bytes, size: int = 300) -> str:
    text = repr(payload)
    return text if len(text) <= size else f"{text[: size // 2]}...{text[-size // 2 :]}"


DEEP_TEMPLATES = {  # frame -> what may answer it besides "Parse error" (when too deep to parse)
    '{"msg":"bogus","x":%s}': "Bad request",
    '{"msg":"method","id":5,"params":[%s]}': "Malformed method invocation",
    '{"msg":"ping","id":%s}': "pong",
    '{"msg":"method","id":"@id","method":"fuzz_getJob","params":[%s]}': "result",
    '{"msg":"method","id":"@id","method":"login","params":[%s]}': "result",
    '{"msg":"sub","id":"@id","name":"fuzz.jobs","params":[%s]}': "nosub",  # or ready
}


def _shallow(raw: str | bytes) -> dict[str, Any]:
    """The top of a reply even when its echo is nested too deeply for this thread's stack."""
    assert isinstance(raw, str)
    try:
        message: dict[str, Any] = json.loads(raw)
    except RecursionError:
        head = json.loads(raw.split(',"offendingMessage":', 1)[0].split(',"id":', 1)[0] + "}")
        assert isinstance(head, dict)
        return head
    return message


@FUZZ_SETTINGS
@given(
    depth=st.integers(2, 3000),  # getJob([]) would be a valid call
    shape=st.sampled_from(["list", "object", "ej", "dollar"]),
    template=st.sampled_from(sorted(DEEP_TEMPLATES)),
)
def test_deep_frames_at_any_depth_get_an_answer(
    target: Target, depth: int, shape: str, template: str
) -> None:
    """Around the parser's recursion limit whether a frame parses depends on the stack, so
    either answer will do; what must never happen is no answer, or a dead connection."""
    ws = target.fuzz.ws()
    sentinel, call = target.fresh_id("sentinel"), target.fresh_id("deep")
    frame = (template % _deep(depth, shape)).replace("@id", call)
    try:
        ws.send(frame)
        ws.send(
            json.dumps({"msg": "method", "id": sentinel, "method": "fuzz_getJob", "params": ["x"]})
        )
        replies: list[dict[str, Any]] = []
        while not (
            replies and replies[-1].get("msg") == "updated" and sentinel in replies[-1]["methods"]
        ):
            replies.append(_shallow(ws.recv(timeout=10)))
    except (ConnectionClosed, TimeoutError):
        target.fuzz.drop()
        raise
    answers = [m for m in replies if m.get("id") != sentinel and m.get("msg") != "updated"]
    assert len(answers) == 1, replies
    (answer,) = answers
    allowed = DEEP_TEMPLATES[template]
    if answer["msg"] == "error":
        too_large = len(frame) > LIMIT
        assert answer["reason"] in ("Parse error", allowed) or too_large, answer
    elif answer["msg"] == "ready":  # a selector that happens to be valid (e.g. {})
        assert allowed == "nosub", answer
        assert answer["subs"] == [call], answer
    else:
        assert answer["msg"] == allowed, answer
        if allowed in ("result", "nosub"):
            assert answer["id"] == call, answer
            assert answer["error"]["error"] in REFUSAL_CODES, answer
        if allowed == "result":
            updated = [m["methods"] for m in replies if m.get("msg") == "updated"]
            assert [call] in updated, replies


def check_replies(
    expected: list[Expect], replies: list[dict[str, Any]], sentinel: str, target: Target
) -> None:
    results = [m for m in replies if m.get("msg") == "result"]
    assert [m for m in results if m["id"] == sentinel] == [
        {"msg": "result", "id": sentinel, "result": target.expected}
    ]
    by_id = Counter(m["id"] for m in results)
    updated = Counter(i for m in replies if m.get("msg") == "updated" for i in m["methods"])
    calls = Counter(e.detail for e in expected if e.kind == "method")
    assert {i: by_id[i] for i in calls} == calls, replies  # one result per call
    assert {i: updated[i] for i in calls} == calls, replies  # one `updated` per call
    for result in results:
        if result["id"] in calls:
            assert set(result) == {"msg", "id", "error"}, result  # refused, never run
            assert result["error"]["error"] in REFUSAL_CODES, result
            assert result["error"]["errorType"] == "Meteor.Error", result
    sub_replies = Counter(m["id"] for m in replies if m.get("msg") == "nosub") + Counter(
        i for m in replies if m.get("msg") == "ready" for i in m["subs"]
    )
    subs = Counter(e.detail for e in expected if e.kind in ("sub", "unsub"))
    assert {i: sub_replies[i] for i in subs} == subs, replies  # one nosub/ready each
    for message in replies:
        if message.get("msg") == "nosub" and "error" in message:
            assert message["error"]["error"] in REFUSAL_CODES, message
    errors = sorted(
        "Message too large" if m["reason"].startswith("Message too large") else m["reason"]
        for m in replies
        if m.get("msg") == "error"
    )
    assert errors == sorted(e.detail for e in expected if e.kind == "error"), replies
    pongs = [m for m in replies if m.get("msg") == "pong"]
    assert len(pongs) == sum(e.kind == "pong" for e in expected), replies


# -- connect storms ---------------------------------------------------------------------------

SERVER_VERSIONS = ("1", "pre2", "pre1")
versions = st.sampled_from(["1", "pre1", "pre2", "2", "", "1 "]) | garbage
handshake_messages = st.one_of(
    st.builds(
        lambda v, s: {"msg": "connect", "version": v, "support": s},
        versions,
        st.lists(versions, max_size=4) | garbage,
    ),
    st.builds(lambda v: {"msg": "connect", "version": v, "support": [v]}, versions),
    st.builds(
        lambda v, s, extra: {**extra, "msg": "connect", "version": v, "support": s},
        versions,
        st.lists(versions, max_size=3),
        st.dictionaries(st.sampled_from(["session", "id", "msg", "x"]), garbage, max_size=2),
    ),
    st.just({"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]}),
    st.builds(lambda i: {"msg": "ping", "id": i}, garbage),
    st.builds(lambda kind: {"msg": kind}, st.sampled_from(["pong", "sub", "unsub", "x"])),
    st.builds(lambda m: {"msg": "method", "id": "m", "method": m, "params": []}, garbage),
)
handshake_frames = handshake_messages.map(json.dumps) | st.text(max_size=20)


def expect_before_connect(text: str) -> tuple[str, str]:
    """("error", reason) | ("connected", "") | ("failed", version) for a frame before connect."""
    if len(text) > LIMIT:
        return "error", "Message too large"
    try:
        message = strict_ejson(text)
    except (ValueError, RecursionError):
        return "error", "Parse error"
    if not isinstance(message, dict) or not isinstance(message.get("msg"), str):
        return "error", "Bad request"
    if message["msg"] != "connect":
        return "error", "Must connect first"
    version, support = message.get("version"), message.get("support")
    if (
        not isinstance(version, str)
        or not isinstance(support, list)
        or not all(isinstance(v, str) for v in support)
        or version not in support
    ):
        return "failed", "1"
    chosen = next((v for v in support if v in SERVER_VERSIONS), "1")
    return ("connected", "") if chosen == version else ("failed", chosen)


@st.composite
def abandoned(draw: st.DrawFn) -> list[str]:
    """What a connection that is then dropped mid-way sends (maybe nothing at all)."""
    return draw(
        st.lists(
            st.sampled_from(
                [
                    '{"msg":"connect","version":"1","support":["1"]}',
                    '{"msg":"method","id":"x","method":"fuzz_getJob","params":["nope"]}',
                    '{"msg":"sub","id":"s","name":"fuzz.jobs","params":[]}',
                    '{"msg":"method","id":"y","method":"fuzz_jobLog","params":["@ready",null,"x",7]}',
                ]
            ),
            max_size=4,
        )
    )


@FUZZ_SETTINGS
@given(
    sequence=st.lists(handshake_frames, min_size=1, max_size=6),
    storm=st.lists(abandoned(), max_size=3),
)
def test_connect_storms_and_bad_handshakes(
    target: Target, sequence: list[str], storm: list[list[str]]
) -> None:
    before = dump(target.db)
    url = target.fuzz.url
    dropped = [open_ws(url) for _ in storm]
    try:
        for ws, frames_sent in zip(dropped, storm, strict=True):
            for frame in frames_sent:
                ws.send(fill_ids(frame, target))
        with open_ws(url) as ws:
            assert recv_json(ws) == {"server_id": "0"}
            connected = False
            for frame in sequence:
                ws.send(frame)
                if connected:
                    expect = expect_reply(frame)
                    if expect.kind == "none":
                        continue
                    reply = recv_json(ws)
                    if expect.kind == "pong":
                        assert reply["msg"] == "pong", reply
                    elif expect.kind == "method":
                        assert reply["msg"] == "result", reply
                        assert reply["error"]["error"] in REFUSAL_CODES, reply
                        assert recv_json(ws) == {"msg": "updated", "methods": [expect.detail]}
                    elif expect.kind in ("sub", "unsub"):
                        assert reply["msg"] == "nosub", reply  # no publication matches
                    else:
                        assert reply["msg"] == "error", reply
                        assert reply["reason"].startswith(expect.detail), (reply, expect)
                    continue
                kind, detail = expect_before_connect(frame)
                reply = recv_json(ws)
                if kind == "error":
                    assert reply["msg"] == "error", reply
                    assert reply["reason"] == detail, reply
                elif kind == "connected":
                    assert reply["msg"] == "connected", reply
                    assert isinstance(reply["session"], str)
                    assert len(reply["session"]) == 17
                    connected = True
                else:
                    assert reply == {"msg": "failed", "version": detail}
                    with pytest.raises(ConnectionClosed):
                        recv_json(ws, timeout=5)  # the server hangs up after `failed`
                    break
    finally:
        for ws in dropped:
            ws.close()
        check_still_serving(target)
    assert dump(target.db) == before


# -- the HTTP fuzzer -------------------------------------------------------------------------

JSON_TYPES = ["application/json", "application/json; charset=utf-8", "application/ld+json"]
BAD_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "", "*/*"]
BAD_TYPES += ["application/jsonx", "json", "application/json-patch", "text/json"]
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@dataclass(frozen=True)
class HttpCase:
    verb: str
    path: str
    headers: dict[str, str]
    body: bytes
    statuses: frozenset[int]  # what the server may answer
    chunked: bool = False


def _strict(body: bytes) -> bool:
    """Whether the server reads ``body`` as params: strict EJSON, and Unicode text only (a
    lone surrogate escape decodes to a string no storage can hold: a 400)."""
    try:
        value = strict_ejson(body.decode())
    except (ValueError, RecursionError):
        return False
    return not _holds_lone_surrogate(value)


def _holds_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(v) for v in value)
    if isinstance(value, ejson.CustomType):
        return _holds_lone_surrogate(value.value)
    return False


def _raw_body(draw: st.DrawFn) -> bytes:
    """A body that is no JSON array of params (so no call can run)."""
    kind = draw(st.sampled_from(["bytes", "text", "json", "deep", "truncated", "bad-utf8"]))
    if kind == "bytes":
        body = draw(st.binary(min_size=1, max_size=200))
    elif kind == "text":
        body = draw(st.text(min_size=1, max_size=100)).encode()
    elif kind == "json":
        body = json.dumps(draw(not_text | st.text(max_size=10))).encode()
    elif kind == "deep":
        depth = draw(st.integers(900, 100000))
        body = _deep(depth, draw(st.sampled_from(["list", "object"]))).encode()
    elif kind == "truncated":
        text = json.dumps(draw(st.lists(garbage, min_size=1)))
        body = text[: draw(st.integers(1, len(text) - 1))].encode()
    else:
        body = b'["\xff\xfe", ' + draw(st.binary(max_size=20)) + b"]"
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return body if not isinstance(parsed, list) else b"x" + body


@st.composite
def http_cases(draw: st.DrawFn) -> HttpCase:
    bare = draw(st.sampled_from(JOB_METHODS))
    path = f"/api/{ROOT}/{bare}"
    json_type = {"content-type": draw(st.sampled_from(JSON_TYPES))}
    kind = draw(
        st.sampled_from(
            [
                *("call", "call", "call", "locked", "body", "type", "auth", "verb", "path"),
                *("empty", "huge", "login", "logout"),
            ]
        )
    )
    chunked = draw(st.booleans())
    params = json.dumps(draw(refused_params(bare))).encode()
    if kind == "call":
        return HttpCase("POST", path, json_type, params, frozenset((400, 401, 403)), chunked)
    if kind == "locked":
        body = json.dumps(draw(st.lists(garbage, max_size=3))).encode()
        status = 401 if _strict(body) else 400  # refused to anyone not logged in; NaN: no JSON
        return HttpCase("POST", f"/api/{LOCKED}/{bare}", json_type, body, frozenset([status]))
    if kind == "body":
        return HttpCase("POST", path, json_type, _raw_body(draw), frozenset((400, 413)), chunked)
    if kind == "type":
        headers = {} if draw(st.booleans()) else {"content-type": draw(st.sampled_from(BAD_TYPES))}
        body = draw(st.sampled_from([params, b"[]", b'["x"]']))
        return HttpCase("POST", path, headers, body, frozenset([400]), chunked)
    if kind == "auth":
        value = draw(
            st.sampled_from(["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer  ", "Token x"])
            | header_text.map(lambda t: "Bearer " + t if t.strip() else "Bearer x")
            | header_text
        )
        body = draw(st.sampled_from([params, b"[]", b""]))
        return HttpCase(
            "POST", path, {**json_type, "authorization": value}, body, frozenset([401]), chunked
        )
    if kind == "verb":
        verb = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
        body = b"" if verb in ("GET", "HEAD") else draw(st.sampled_from([params, b"[]"]))
        return HttpCase(verb, path, json_type, body, frozenset([405]))
    if kind == "path":
        where = draw(
            st.sampled_from([f"/api/{ROOT}/", f"/api/{LOCKED}/", "/api/nope/", "/api/", "/"])
        )
        # no "?", "#", "%", "/", ".": they would make a real route of the path
        name = draw(
            st.text(
                st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%/."),
                max_size=15,
            )
        )
        name = name if f"{where}{name}".rstrip("/") not in _REAL_ROUTES else name + "x"
        return HttpCase("POST", where + name, json_type, params, frozenset([404]), chunked)
    if kind == "empty":
        # an empty body means no params: every method but startJobServer needs some
        bare = draw(st.sampled_from([m for m in JOB_METHODS if m != "startJobServer"]))
        headers = draw(st.sampled_from([{}, json_type, {"content-type": "text/plain"}]))
        body = draw(st.sampled_from([b"", b" ", b"\r\n\t "]))
        return HttpCase("POST", f"/api/{ROOT}/{bare}", headers, body, frozenset((400, 401, 403)))
    if kind == "huge":
        body = b"[" + b" " * draw(st.sampled_from([LIMIT, 2 * LIMIT, 20 * LIMIT])) + b"]"
        return HttpCase("POST", path, json_type, body, frozenset([413]), chunked)
    if kind == "login":
        options = draw(
            st.builds(lambda o: {"resume": o}, garbage)
            | st.builds(lambda u, p: {"user": u, "password": p}, garbage, garbage)
            | not_dicts
        )
        body = draw(st.sampled_from([json.dumps(options).encode(), _raw_body(draw)]))
        return HttpCase("POST", "/api/login", json_type, body, frozenset((400, 403, 413)), chunked)
    header = draw(st.sampled_from([None, "Bearer nope", "Basic x", "Bearer"]))
    headers = {} if header is None else {"authorization": header}
    return HttpCase("POST", "/api/logout", headers, b"", frozenset([401]))


_REAL_ROUTES = frozenset(
    [f"/api/{root}/{m}" for root in (ROOT, LOCKED) for m in JOB_METHODS]
    + ["/api/login", "/api/logout", "/api/openapi.json", "/sockjs/info"]
)


def _chunks(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@FUZZ_SETTINGS
@given(case=http_cases(), chunk=st.integers(1, 4096))
def test_hostile_http_requests_are_refused_with_4xx(
    target: Target, case: HttpCase, chunk: int
) -> None:
    before = dump(target.db)
    body = fill_ids(case.body.decode("latin-1"), target).encode("latin-1")
    try:
        response = target.http.request(
            case.verb,
            case.path,
            headers={k: v.strip() for k, v in case.headers.items()},  # h11 refuses edge spaces
            content=_chunks(body, max(chunk, len(body) // 64)) if case.chunked else body,
            timeout=10,
        )
        assert response.status_code in case.statuses, (response.status_code, response.text)
        if case.verb != "HEAD" and case.path.startswith("/api/"):
            error = response.json()["error"]
            assert error["errorType"] == "Meteor.Error"
            assert isinstance(error["reason"], str)
    finally:
        check_still_serving(target)
    assert dump(target.db) == before


# -- edges that close the connection, floods ---------------------------------------------------


def _assert_closed(ws: ClientConnection) -> None:
    def drain() -> None:
        while True:  # whatever came before, the connection must end
            recv_json(ws, timeout=5)

    with pytest.raises(ConnectionClosed):
        drain()


def test_frames_over_the_transport_limit_close_only_that_connection(target: Target) -> None:
    before = dump(target.db)
    with open_ws(target.fuzz.url) as ws:
        assert recv_json(ws) == {"server_id": "0"}
        ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
        assert recv_json(ws)["msg"] == "connected"
        # The server may close while the 2 MiB are still going out: the send then fails too.
        with contextlib.suppress(ConnectionClosed, ConnectionError):
            ws.send(
                '{"msg":"method","id":"big","method":"fuzz_jobSave","params":["' + "x" * (2 << 20)
            )
        _assert_closed(ws)
    with open_ws(target.fuzz.url) as ws:
        assert recv_json(ws) == {"server_id": "0"}
        ws.send(b'{"msg":"connect","version":"1","support":["1"]}\xff', text=True)  # not UTF-8
        _assert_closed(ws)
    check_still_serving(target)
    assert dump(target.db) == before


def test_fragmented_and_binary_messages_are_whole_messages(target: Target) -> None:
    with open_ws(target.fuzz.url) as ws:
        assert recv_json(ws) == {"server_id": "0"}
        ws.send(iter(['{"msg":"con', 'nect","version":"1",', '"support":["1"]}']))
        assert recv_json(ws)["msg"] == "connected"
        ws.send(iter([b'{"msg":"pi', b'ng","id":"\xc3', b'\xa9"}']))
        assert recv_json(ws) == {"msg": "pong", "id": "é"}


def test_a_flood_of_pipelined_refused_calls_is_answered_in_full(target: Target) -> None:
    before = dump(target.db)
    calls = 400  # above the server's 100 pending calls per connection
    with open_ws(target.fuzz.url) as ws:
        assert recv_json(ws) == {"server_id": "0"}
        ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
        assert recv_json(ws)["msg"] == "connected"
        for n in range(calls):
            params = [target.ids["ready"], None, "flood", {"level": "nope"}]
            ws.send(
                json.dumps(
                    {"msg": "method", "id": f"f{n}", "method": "fuzz_jobLog", "params": params}
                )
            )
        results: dict[str, dict[str, Any]] = {}
        updated: list[str] = []
        while len(updated) < calls:
            message = recv_json(ws)
            if message["msg"] == "result":
                results[message["id"]] = message
            elif message["msg"] == "updated":
                updated += message["methods"]
    assert sorted(updated) == sorted(f"f{n}" for n in range(calls))
    assert set(results) == {f"f{n}" for n in range(calls)}
    assert {r["error"]["error"] for r in results.values()} <= {400, 429}
    # pipelined calls beyond the limit may be refused with 429, but never lost
    check_still_serving(target)
    assert dump(target.db) == before


def test_clients_that_vanish_with_calls_in_flight_do_not_hurt(target: Target) -> None:
    before = dump(target.db)
    for _ in range(20):
        with open_ws(target.fuzz.url) as ws:
            ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
            for n in range(20):
                params = [target.ids["ready"], {"bogus": n}]
                ws.send(
                    json.dumps(
                        {"msg": "method", "id": f"v{n}", "method": "fuzz_getJob", "params": params}
                    )
                )
                ws.send(
                    json.dumps({"msg": "sub", "id": f"s{n}", "name": "fuzz.jobs", "params": []})
                )
    check_still_serving(target)
    assert dump(target.db) == before


# -- found by fuzzing, fixed in core/ejson.py ---------------------------------------------


def test_user_data_shaped_like_a_broken_ejson_form_round_trips(db: str) -> None:
    with JobCollection(ROOT, db=db) as jc:
        jc.allow(admin="anyone")
        with serving(Server(jc)) as url, httpx.Client(base_url=url) as http:
            data = {"$escape": {"$binary": "a"}}
            saved = http.post(f"/api/{ROOT}/jobSave", json=[job_doc("t", data=data)])
            assert saved.status_code == 200, saved.text
            got = http.post(f"/api/{ROOT}/getJob", json=[saved.json()["result"]])
            assert got.json()["result"]["data"] == data
