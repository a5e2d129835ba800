"""One storage contract, every adapter: each test runs on SQLite and on PostgreSQL.

`storage` is an open `Storage` on a fresh, empty database; `open_storage_again` opens another
`Storage` object on the same database (another process, as far as the adapter can tell).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contract_helpers import OpenStorage

from jobcollection.storage import open_storage
from jobcollection.storage.port import Storage
from storage_support import kind_of


@pytest.fixture
def database(db: str) -> str:
    """The URL of a fresh database of the adapter under test (the suite's `db`)."""
    return db


@pytest.fixture
def adapter(db: str) -> str:
    return kind_of(db).name


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
