"""The HTTP JSON API end to end: httpx against `HttpApi` over a real collection, in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from jobcollection import JobCollection
from jobcollection.core.ejson import Date
from jobcollection.core.permissions import Caller
from jobcollection.engine.events import CallEvent
from jobcollection.server.dispatch import Dispatcher
from jobcollection.server.http_api import HttpApi, HttpConnection
from jobcollection.server.meteor_error import MeteorError

TOKENS = {"tok-alice": Caller("uid-alice", "alice")}
FUTURE = 4102444800000  # 2100-01-01


class FakeAccounts:
    """Stands in for `Accounts`: one user, alice / pw, token tok-alice."""

    def __init__(self) -> None:
        self.logins: list[tuple[object, str]] = []
        self.logged_out: list[str] = []
        self.tokens = dict(TOKENS)

    async def login(self, options: object, host: str) -> dict[str, object]:
        self.logins.append((options, host))
        if options != {"user": {"username": "alice"}, "password": "pw"}:
            raise MeteorError(403, "Incorrect username or password")
        self.tokens["tok-alice"] = TOKENS["tok-alice"]
        return {
            "id": "uid-alice",
            "token": "tok-alice",
            "tokenExpires": Date(FUTURE),
            "type": "password",
        }

    def authenticate(self, token: str) -> Caller | None:
        return self.tokens.get(token)

    def logout(self, token: str) -> None:
        self.logged_out.append(token)
        self.tokens.pop(token, None)


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("q", db)
    collection.start_job_server()
    yield collection
    collection.close()


@pytest.fixture
def accounts() -> FakeAccounts:
    return FakeAccounts()


def make_app(jc: JobCollection, accounts: FakeAccounts, **options: Any) -> HttpApi:
    return HttpApi(
        Dispatcher([jc.manager]),
        login=accounts.login,
        authenticate=accounts.authenticate,
        logout=accounts.logout,
        **options,
    )


@pytest.fixture
async def client(jc: JobCollection, accounts: FakeAccounts) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(jc, accounts))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def new_job(jc: JobCollection, job_type: str = "t", data: object = None) -> dict[str, Any]:
    """A fresh job document as a client sends it: EJSON, times as `{"$date": ms}`."""
    doc = dict(jc.job(job_type, data or {}).doc)
    for key in ("after", "updated", "created", "retryUntil", "repeatUntil"):
        doc[key] = {"$date": doc[key]}
    doc["log"] = [{**entry, "time": {"$date": entry["time"]}} for entry in doc["log"]]
    return doc


def dump(jc: JobCollection) -> list[dict[str, Any]]:
    """Every stored job with its log and failures."""
    ids = sorted(doc["_id"] for doc in jc.manager.find())
    if not ids:
        return []
    docs: list[dict[str, Any]] = jc.manager.call(
        "getJob", [ids, {"getLog": True, "getFailures": True}]
    )
    return docs


async def call(
    client: httpx.AsyncClient, method: str, *params: object, token: str | None = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await client.post(f"/api/q/{method}", json=list(params), headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["errorType"] == "Meteor.Error"
    assert error["isClientSafe"] is True
    assert error["message"].endswith(f"[{error['error']}]")
    return error


# -- the job methods ---------------------------------------------------------------------------


async def test_save_get_work_done_flow(jc: JobCollection, client: httpx.AsyncClient) -> None:
    jc.allow(admin="anyone")
    saved = await call(client, "jobSave", new_job(jc, "mail", {"to": "x"}))
    assert saved.status_code == 200, saved.text
    job_id = saved.json()["result"]
    assert isinstance(job_id, str)

    work = await call(client, "getWork", "mail", {"maxJobs": 5, "workTimeout": 60_000})
    assert work.status_code == 200
    (doc,) = work.json()["result"]
    assert doc["_id"] == job_id
    assert doc["status"] == "running"
    assert set(doc["expiresAfter"]) == {"$date"}
    run_id = doc["runId"]

    assert (await call(client, "jobProgress", job_id, run_id, 1, 2)).json() == {"result": True}
    logged = await call(client, "jobLog", job_id, run_id, "half", {"level": "success"})
    assert logged.json() == {"result": True}
    done = await call(client, "jobDone", job_id, run_id, {"sent": True})
    assert done.json() == {"result": True}
    again = await call(client, "jobDone", job_id, run_id, {})
    assert again.json() == {"result": False}

    fetched = await call(client, "getJob", job_id, {"getLog": True})
    stored = fetched.json()["result"]
    assert stored["status"] == "completed"
    assert stored["runId"] == run_id  # the run that completed it
    assert stored["result"] == {"sent": True}
    assert [entry["level"] for entry in stored["log"]][-2:] == ["success", "success"]
    assert all(set(entry["time"]) == {"$date"} for entry in stored["log"])
    assert (await call(client, "getJob", "nope")).json() == {"result": None}
    assert (await call(client, "getWork", ["mail", "other"])).json() == {"result": []}


async def test_empty_body_means_no_params(jc: JobCollection, client: httpx.AsyncClient) -> None:
    jc.allow(admin="anyone")
    response = await client.post("/api/q/startJobServer")
    assert response.json() == {"result": True}
    response = await client.post("/api/q/getWork", content=b"")
    assert response.status_code == 400
    assert error_of(response)["reason"] == "Match failed"


async def test_permission_refusal_is_403_and_writes_nothing(
    jc: JobCollection, client: httpx.AsyncClient
) -> None:
    jc.allow(worker="anyone")
    job_id = jc.job("t", {}).save()
    before = dump(jc)
    attempts: list[tuple[str, list[object]]] = [
        ("jobSave", [new_job(jc)]),
        ("jobCancel", [job_id]),
        ("jobRemove", [[job_id]]),
        ("shutdownJobServer", [{}]),
    ]
    for method, params in attempts:
        response = await call(client, method, *params, token="tok-alice")
        assert response.status_code == 403, method
        error = error_of(response)
        assert error["error"] == 403
        assert error["reason"] == "Method not authorized"
        assert error["details"] == "Authenticated user is not permitted to invoke this method."
    assert dump(jc) == before
    assert (await call(client, "getJob", job_id)).status_code == 200  # the worker group


async def test_anonymous_refusal_is_401_with_a_login_hint(
    jc: JobCollection, client: httpx.AsyncClient
) -> None:
    jc.allow(worker="anyone")
    before = dump(jc)
    response = await call(client, "jobSave", new_job(jc))  # no token: nobody logged in
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="jobcollection"'
    error = error_of(response)
    assert (error["error"], error["reason"]) == (401, "Method not authorized")
    assert error["details"] == (
        "no user is logged in, and q_jobSave needs one allowed under admin, creator or jobSave."
        " Log in with POST /api/login and send the token it returns as"
        " 'Authorization: Bearer <token>'."
    )
    assert dump(jc) == before
    ok = await call(client, "jobSave", new_job(jc), token="tok-alice")
    assert ok.status_code == 403  # logged in, and still not allowed: 403, not 401


async def test_validation_error_is_400_match_failed(
    jc: JobCollection, client: httpx.AsyncClient
) -> None:
    jc.allow(admin="anyone")
    jc.job("t", {}).save()
    before = dump(jc)
    cases: list[tuple[str, list[object]]] = [
        ("jobSave", [{**new_job(jc), "priority": "high"}]),
        ("jobSave", [new_job(jc), None]),
        ("jobSave", [{**new_job(jc), "_private": 1}]),
        ("getWork", [123]),
        ("getWork", ["t", {"maxJobs": True}]),
        ("jobCancel", [[1, 2]]),
        ("jobProgress", ["a", "b", 3, 2]),
        ("jobReady", [[], {"time": "tomorrow"}]),
    ]
    for method, params in cases:
        response = await call(client, method, *params)
        assert response.status_code == 400, (method, params)
        error = error_of(response)
        assert error["reason"] == "Match failed"
        assert error["details"]  # names the field
    assert dump(jc) == before


BAD_BODIES = [
    pytest.param(b"[{", "application/json", 400, "not valid JSON", id="not-json"),
    pytest.param(b'{"doc": 1}', "application/json", 400, "JSON array", id="object"),
    pytest.param(b'"x"', "application/json", 400, "JSON array", id="string"),
    pytest.param(b"[NaN]", "application/json", 400, "not valid JSON", id="nan"),
    pytest.param(b'[{"$date": 1e999}]', "application/json", 400, "Match failed", id="huge"),
    pytest.param(
        b'[{"$binary": "A"}]',
        "application/json",
        400,
        "Invalid EJSON in the request body: $binary",
        id="b64",
    ),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "JSON", id="deep"),
    pytest.param(b'["\xff"]', "application/json", 400, "not UTF-8", id="not-utf8"),
    pytest.param(b"[]", "text/plain", 400, "Content-Type", id="text-plain"),
    pytest.param(b"[]", None, 400, "Content-Type", id="no-content-type"),
    pytest.param(b"[" + b" " * (1 << 20) + b"]", "application/json", 413, "too large", id="big"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "reason"), BAD_BODIES)
async def test_bad_bodies_get_a_clear_error_and_write_nothing(
    jc: JobCollection,
    client: httpx.AsyncClient,
    body: bytes,
    content_type: str | None,
    status: int,
    reason: str,
) -> None:
    jc.allow(admin="anyone")
    jc.job("t", {}).save()
    before = dump(jc)
    headers = {} if content_type is None else {"content-type": content_type}
    for method in ("jobSave", "jobCancel", "getWork", "jobRemove"):
        response = await client.post(f"/api/q/{method}", content=body, headers=headers)
        assert response.status_code == status, response.text
        error = error_of(response)
        assert error["error"] == status
        assert reason in error["reason"]
    assert dump(jc) == before
    assert (await call(client, "getJob", [])).json() == {"result": None}  # still serving


async def test_streamed_oversized_body_is_413(jc: JobCollection, accounts: FakeAccounts) -> None:
    jc.allow(admin="anyone")
    app = make_app(jc, accounts, max_body=1000)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        for _ in range(100):
            yield b'"x",' * 10
        yield b'"x"]'

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.post(
            "/api/q/jobSave", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert error_of(response)["details"] == "the limit is 1000 bytes"
        declared = await http.post(
            "/api/q/jobSave",
            content=b"[]",
            headers={"content-type": "application/json", "content-length": "5000"},
        )
        assert declared.status_code == 413
    assert dump(jc) == []


async def test_ejson_values_round_trip(jc: JobCollection, client: httpx.AsyncClient) -> None:
    jc.allow(admin="anyone")
    data = {
        "when": {"$date": -5},
        "bytes": {"$binary": "AAEC/w=="},
        "inf": {"$InfNaN": -1},
        "oid": {"$type": "oid", "$value": "0123456789abcdef01234567"},
        "literal": {"$escape": {"$date": 5}},
        "nested": [{"$date": FUTURE}],
    }
    doc = {**new_job(jc, "t", {}), "data": data, "after": {"$date": FUTURE}}
    saved = await client.post(
        "/api/q/jobSave",
        content=json.dumps([doc]).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    job_id = saved.json()["result"]
    stored = jc.get_job(job_id)
    assert stored is not None
    assert stored.doc["data"]["when"] == Date(-5)
    assert stored.doc["data"]["bytes"] == b"\x00\x01\x02\xff"
    assert stored.doc["data"]["literal"] == {"$date": 5}
    fetched = (await call(client, "getJob", job_id)).json()["result"]
    assert fetched["data"] == data
    assert fetched["after"] == {"$date": FUTURE}
    assert fetched["retryUntil"] == {"$date": jc.forever_date}


# -- authentication ----------------------------------------------------------------------------


async def test_bearer_token_calls_as_the_user(jc: JobCollection, client: httpx.AsyncClient) -> None:
    jc.allow(admin=["alice"])
    events: list[CallEvent] = []
    jc.events("call", events.append)
    assert (await call(client, "startJobServer")).status_code == 401  # not logged in
    response = await call(client, "startJobServer", token="tok-alice")
    assert response.json() == {"result": True}
    (event,) = events
    assert event.user_id == "uid-alice"
    assert isinstance(event.connection, HttpConnection)
    assert event.connection.client == "127.0.0.1:123"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer nope", "Unknown or expired token"),
        ("Bearer ", "must be 'Bearer <token>'"),
        ("Basic YWxpY2U6cHc=", "must be 'Bearer <token>'"),
    ],
)
async def test_bad_token_is_401(
    jc: JobCollection, client: httpx.AsyncClient, header: str, reason: str
) -> None:
    jc.allow(admin="anyone")  # even where anonymous callers may: a bad token is an error
    before = dump(jc)
    response = await client.post(
        "/api/q/jobSave", json=[new_job(jc)], headers={"authorization": header}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert reason in error_of(response)["reason"]
    assert dump(jc) == before


async def test_login_names_the_peer_and_returns_a_token(
    client: httpx.AsyncClient, accounts: FakeAccounts
) -> None:
    options = {"user": {"username": "alice"}, "password": "pw"}
    response = await client.post("/api/login", json=options)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "result": {
            "id": "uid-alice",
            "token": "tok-alice",
            "tokenExpires": {"$date": FUTURE},
            "type": "password",
        }
    }
    ((seen, host),) = accounts.logins
    assert seen == options
    assert host == "127.0.0.1"  # the throttle's source address


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (
            b'{"user": {"username": "alice"}, "password": "bad"}',
            403,
            "Incorrect username or password",
        ),
        (b"[]", 400, "must be a JSON object"),
        (b"", 400, "must be a JSON object"),
        (b"{", 400, "not valid JSON"),
    ],
)
async def test_refused_login(
    client: httpx.AsyncClient, body: bytes, status: int, reason: str
) -> None:
    response = await client.post(
        "/api/login", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert reason in error_of(response)["reason"]


async def test_logout_revokes_the_token(
    jc: JobCollection, client: httpx.AsyncClient, accounts: FakeAccounts
) -> None:
    jc.allow(admin="users")
    assert (await call(client, "startJobServer", token="tok-alice")).status_code == 200
    unauthenticated = await client.post("/api/logout")
    assert unauthenticated.status_code == 401
    response = await client.post("/api/logout", headers={"authorization": "Bearer tok-alice"})
    assert response.json() == {"result": None}
    assert accounts.logged_out == ["tok-alice"]
    assert (await call(client, "startJobServer", token="tok-alice")).status_code == 401


async def test_without_accounts_login_is_404_and_tokens_401(jc: JobCollection) -> None:
    jc.allow(admin="anyone")
    app = HttpApi(Dispatcher([jc.manager]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        assert (await http.post("/api/login", json={})).status_code == 404
        assert (await http.post("/api/logout")).status_code == 404
        headers = {"authorization": "Bearer x"}
        assert (await http.post("/api/q/startJobServer", headers=headers)).status_code == 401
        assert (await http.post("/api/q/startJobServer")).status_code == 200
        paths = (await http.get("/api/openapi.json")).json()["paths"]
        assert "/api/login" not in paths


async def test_an_internal_error_is_500_and_the_server_goes_on(jc: JobCollection) -> None:
    def broken(token: str) -> Caller | None:
        raise RuntimeError("backend down")

    jc.allow(admin="anyone")
    app = HttpApi(Dispatcher([jc.manager]), authenticate=broken)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.post("/api/q/startJobServer", headers={"authorization": "Bearer x"})
        assert response.status_code == 500
        assert error_of(response)["reason"] == "Internal server error"
        assert (await http.post("/api/q/startJobServer")).status_code == 200


# -- routing and the document ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "path", "status"),
    [
        ("POST", "/api/other/jobSave", 404),
        ("POST", "/api/q/jobFrobnicate", 404),
        ("POST", "/api/q/jobSave/", 404),
        ("POST", "/api/q", 404),
        ("POST", "/api", 404),
        ("GET", "/", 404),
        ("GET", "/websocket", 404),
        ("GET", "/api/q/jobSave", 405),
        ("PUT", "/api/q/getWork", 405),
        ("POST", "/api/openapi.json", 405),
        ("GET", "/api/login", 405),
    ],
)
async def test_routing_errors(
    jc: JobCollection, client: httpx.AsyncClient, verb: str, path: str, status: int
) -> None:
    jc.allow(admin="anyone")
    response = await client.request(verb, path, json=[])
    assert response.status_code == status
    assert error_of(response)["error"] == status
    if status == 405:
        assert response.headers["allow"] in ("GET", "POST")


async def test_mounted_under_a_root_path(jc: JobCollection, accounts: FakeAccounts) -> None:
    jc.allow(admin="anyone")
    transport = httpx.ASGITransport(app=make_app(jc, accounts), root_path="/jobs")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.post("/jobs/api/q/startJobServer")).json() == {"result": True}
        document = (await http.get("/jobs/api/openapi.json")).json()
        assert document["servers"] == [{"url": "/jobs"}]


async def test_openapi_document(jc: JobCollection, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        *(f"/api/q/{method}" for method in jc.ddp_methods),
        "/api/login",
        "/api/logout",
    }
    save = document["paths"]["/api/q/jobSave"]["post"]
    body = save["requestBody"]["content"]["application/json"]["schema"]
    assert [item["title"] for item in body["prefixItems"]] == ["doc", "options"]
    assert set(save["responses"]) == {"200", "400", "401", "403", "404", "413", "500"}
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_lifespan(jc: JobCollection, accounts: FakeAccounts) -> None:
    app = make_app(jc, accounts)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
