"""Schemathesis against the HTTP API, in-process: no 5xx, and every response as documented.

Generated requests (valid and invalid, per the OpenAPI document the app serves) go to an
`HttpApi` over a real collection where anyone may call every method. The bound keeps the whole
module well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobcollection import JobCollection
from jobcollection.core.ejson import Date
from jobcollection.core.permissions import Caller
from jobcollection.server.dispatch import Dispatcher
from jobcollection.server.http_api import HttpApi
from jobcollection.server.meteor_error import MeteorError
from storage_support import Databases

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


async def _login(options: object, host: str) -> dict[str, object]:
    if options == {"user": {"username": "alice"}, "password": "pw"}:
        return {"id": "u1", "token": "t1", "tokenExpires": Date(0), "type": "password"}
    if isinstance(options, dict) and set(options) == {"user", "password"}:
        raise MeteorError(403, "Incorrect username or password")
    raise MeteorError(400, "Match failed")


def _authenticate(token: str) -> Caller | None:
    return Caller("u1", "alice") if token == "t1" else None


class _Served:
    """The ASGI app under test: the HTTP API over the current database's collection (the
    `served` fixture sets it, one per kind of storage)."""

    def __init__(self) -> None:
        self.app: HttpApi | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "no collection served"
        await self.app(scope, receive, send)


def _api(jc: JobCollection) -> HttpApi:
    jc.start_job_server()
    jc.allow(admin="anyone")
    jc.deny(shutdownJobServer="anyone", stopJobs="anyone")  # keep the server claiming jobs
    return HttpApi(
        Dispatcher([jc.manager]), login=_login, authenticate=_authenticate, logout=lambda t: None
    )


APP = _Served()
# Loaded eagerly, at import (the OpenAPI document is the same whatever the database, so a
# collection in memory serves it): `schemathesis.pytest.from_fixture` fails under pytest 9
# (`Function._nodeid`).
with JobCollection("q", "sqlite://") as _document_only:
    APP.app = _api(_document_only)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)
    APP.app = None


@pytest.fixture(scope="module", autouse=True)
def served(module_dbs: Databases) -> Iterator[None]:
    with JobCollection("q", module_dbs("api")) as jc:
        APP.app = _api(jc)
        try:
            yield
        finally:
            APP.app = None


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_http_api_conforms_to_its_openapi_document(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
