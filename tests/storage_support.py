"""The databases the suite runs on: one kind of storage per parameter of the `db` fixtures.

A test that needs a database takes `db` (a database URL string, fresh for the test), or `dbs`
(a factory: ``dbs("other")`` makes another fresh database) when it needs several; a module-
scoped fixture takes `module_dbs`. Each is parametrized by `db_kind` over `KINDS`, so every
such test runs once per kind of storage (ids ``[sqlite]`` and ``[postgres]``). The URL
works as ``JobCollection(root, db)``, ``--db URL`` and ``JOBCOLLECTION_DB=URL`` alike, so
subprocesses (the CLI, `serve`, workers) are handed the same string.

Tests about SQLite itself (its files, WAL, PRAGMAs, its migrations, raw `sqlite3` access, the
write lock another process holds) are marked ``@pytest.mark.sqlite_only(reason=...)``: they
keep their SQLite file, and if they take `db` it is a SQLite one only. Tests about what only a
client/server database has (a connection to lose, writers committing concurrently) are marked
``@pytest.mark.postgres_only(reason=...)``.

Adding a kind of storage is one `register(StorageKind(...))` (e.g. from a module that
`tests/conftest.py` imports), or listing it in `KINDS`, as `POSTGRES` (a schema per
database, from `pg_support`) is. A kind's `create`
makes an isolated database and drops it after; its `dump` reads every row of some tables (or
all) through a connection of its own (tests compare such snapshots to show that a refused
call changed nothing).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobcollection.storage import sqlite_path

Rows = dict[str, list[tuple[Any, ...]]]
# (a folder the test may use, a name unique among the test's databases) -> its URL, dropped at exit
CreateDatabase = Callable[[Path, str], AbstractContextManager[str]]
DumpTables = Callable[[str, Sequence[str] | None], Rows]  # None: every table


@dataclass(frozen=True)
class StorageKind:
    name: str  # the test id, e.g. "sqlite"
    create: CreateDatabase
    dump: DumpTables
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())
    owns: Callable[[str], bool] = field(default=lambda url: False)  # is this URL of this kind?


@contextmanager
def _sqlite_database(folder: Path, name: str) -> Iterator[str]:
    """A file under the test's tmp_path, as a plain path (removed with tmp_path)."""
    yield str(folder / f"{name}.db")


def _sqlite_dump(url: str, tables: Sequence[str] | None) -> Rows:
    path = sqlite_path(url)
    assert path is not None, url
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        if tables is None:
            query = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            tables = [row[0] for row in conn.execute(query)]
        return {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }
    finally:
        conn.close()


SQLITE = StorageKind(
    "sqlite", _sqlite_database, _sqlite_dump, owns=lambda url: sqlite_path(url) is not None
)

_PG_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


@contextmanager
def _postgres_database(folder: Path, name: str) -> Iterator[str]:
    """An empty schema of its own on the test server (`pg_support`), dropped afterwards; the
    test skips, or under CI fails, when the server cannot be reached."""
    from pg_support import fresh_database

    with fresh_database() as url:
        yield url


def _postgres_dump(url: str, tables: Sequence[str] | None) -> Rows:
    import psycopg

    plain = "postgresql://" + url.split("://", 1)[1]  # libpq knows no "+psycopg"
    with psycopg.connect(plain, autocommit=True) as conn:  # the URL sets the search_path
        if tables is None:
            query = (
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
            tables = sorted(row[0] for row in conn.execute(query))
        return {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }


POSTGRES = StorageKind(
    "postgres",
    _postgres_database,
    _postgres_dump,
    marks=(pytest.mark.postgres,),
    owns=lambda url: url.startswith(_PG_SCHEMES),
)

# The kinds every test that takes `db` runs on (PostgreSQL's skip without a server, and fail
# under CI).
KINDS: list[StorageKind] = [SQLITE, POSTGRES]


def register(kind: StorageKind) -> None:
    """Run every test that takes `db` on this kind of storage too."""
    assert all(k.name != kind.name for k in KINDS), kind.name
    KINDS.append(kind)


def kind_named(name: str) -> StorageKind:
    [kind] = [k for k in KINDS if k.name == name]
    return kind


def kind_of(url: str) -> StorageKind:
    """The kind of storage a URL names (SQLite, which takes any plain path, is asked last)."""
    for kind in reversed(KINDS):
        if kind.owns(url):
            return kind
    raise AssertionError(f"no kind of storage owns {url!r}")


def is_sqlite(url: str) -> bool:
    return kind_of(url) is SQLITE


def dump_tables(url: str, tables: Sequence[str] | None = None) -> Rows:
    """Every row of `tables` (None: of every table), each table's rows sorted, read through a
    connection of its own (so it sees every commit, and nothing uncommitted)."""
    return kind_of(url).dump(url, tables)


# -- the fixtures (tests/conftest.py imports them) ---------------------------------------------


def kind_params(definition: pytest.Item) -> list[Any]:
    if definition.get_closest_marker("sqlite_only"):
        kinds = [SQLITE]
    elif definition.get_closest_marker("postgres_only"):
        kinds = [k for k in KINDS if k is not SQLITE]
    else:
        kinds = KINDS
    return [pytest.param(k.name, marks=k.marks, id=k.name) for k in kinds]


@dataclass
class Databases:
    """Makes fresh databases of one kind; drops them all at `close`."""

    kind: StorageKind
    folder: Path
    _stack: ExitStack = field(default_factory=ExitStack)
    _names: set[str] = field(default_factory=set)

    def __call__(self, name: str = "jobs") -> str:
        assert name not in self._names, f"database {name!r} made twice"
        self._names.add(name)
        return self._stack.enter_context(self.kind.create(self.folder, name))

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def db_kind() -> str:
    raise AssertionError("db_kind is parametrized by pytest_generate_tests (tests/conftest.py)")


@pytest.fixture
def dbs(db_kind: str, tmp_path: Path) -> Iterator[Databases]:
    """A factory of fresh databases for one test: ``dbs("name")`` -> URL."""
    made = Databases(kind_named(db_kind), tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def db(dbs: Databases) -> str:
    """A fresh database for one test (a URL; for SQLite a plain path under tmp_path)."""
    return dbs("jobs")


@pytest.fixture(scope="module")
def module_dbs(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """A factory of fresh databases shared by a module's tests (for module-scoped fixtures)."""
    made = Databases(kind_named(db_kind), tmp_path_factory.mktemp(db_kind))
    try:
        yield made
    finally:
        made.close()
