"""PostgreSQL for tests: an isolated, empty schema per test, dropped afterwards.

The server is the one `$JOBCOLLECTION_TEST_POSTGRES` names (default
`postgresql://postgres@127.0.0.1:5432/test`). Each test gets a schema of its own on it (the
URL it is given sets `search_path` to that schema), so tests never see each other's rows and
need no CREATE DATABASE. When the server cannot be reached the test is skipped with one line
saying so, unless `$CI` is set: then it fails, since CI must run the PostgreSQL tests.

Use `fresh_database()` (a context manager giving the URL) or the `postgres_url` fixture.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

ENV = "JOBCOLLECTION_TEST_POSTGRES"
DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
UNREACHABLE_PREFIX = "PostgreSQL not reachable at"
_unreachable: list[str] = []  # the reason, once the server was found unreachable


def server_url() -> str:
    return os.environ.get(ENV) or DEFAULT


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def with_search_path(url: str, schema: str) -> str:
    """The URL with its sessions' `search_path` set to `schema` (libpq's `options`), and the
    schema's name as their `application_name` (a test can find its own connections)."""
    joined = f"options=-csearch_path%3D{schema}&application_name={schema}"
    return f"{url}{'&' if '?' in url else '?'}{joined}"


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of an empty schema of its own on the test server, dropped afterwards."""
    url = server_url()
    message = f"{UNREACHABLE_PREFIX} {url}: set {ENV}"
    if _unreachable:
        unavailable(_unreachable[0])
    try:
        import psycopg
    except ImportError:
        unavailable(f"{message} (psycopg is not installed: pip install -e '.[test]')")
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        _unreachable.append(f"{message} ({str(error).strip().splitlines()[0]})")
        unavailable(_unreachable[0])
    schema = f"jc_test_{uuid.uuid4().hex[:16]}"
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(url, schema)
    finally:
        try:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            admin.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url
