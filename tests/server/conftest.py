"""Fixtures shared by the tests of a remote collection: a local collection, a server over it
with two users (`ada` and `wes`, password `s3cret`), and `ada`'s remote collection. A module
that needs other data or permissions overrides `local`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ddp_harness import serving

from jobcollection import JobCollection, connect
from jobcollection.server import Server

PASSWORD = "s3cret"


@pytest.fixture
def local(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as jc:
        jc.allow(admin="users")
        yield jc


@pytest.fixture
def url(local: JobCollection) -> Iterator[str]:
    server = Server(local)
    assert server.accounts is not None
    for name in ("ada", "wes"):
        server.accounts.add_user(name, PASSWORD)
    with serving(server) as base:
        yield base


@pytest.fixture
def remote(url: str) -> Iterator[JobCollection]:
    jc = connect(url, username="ada", password=PASSWORD)
    try:
        yield jc
    finally:
        jc.close()
