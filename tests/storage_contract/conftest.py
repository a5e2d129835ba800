"""One storage contract, every adapter: each test runs on SQLite and on PostgreSQL.

`storage` is an open `Storage` on a fresh, empty database; `open_storage_again` opens another
`Storage` object on the same database (another process, as far as the adapter can tell).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_helpers import OpenStorage

from jobcollection.storage import open_storage
from jobcollection.storage.port import Storage
from pg_support import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database of the adapter under test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def adapter(database: str) -> str:
    return "postgres" if database.startswith("postgresql") else "sqlite"


@pytest.fixture
def open_storage_again(database: str) -> Iterator[OpenStorage]:
    opened: list[Storage] = []

    def again() -> Storage:
        storage = open_storage(database)
        opened.append(storage)
        return storage

    yield again
    for storage in reversed(opened):
        storage.close()


@pytest.fixture
def storage(open_storage_again: OpenStorage) -> Storage:
    return open_storage_again()
