"""Where the benchmark's fresh databases come from: temporary SQLite files (the default), or
schemas of their own on a PostgreSQL server (`jobcollection bench --storage postgresql://...`),
each dropped after its figure. Nothing else on that server is touched."""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..storage import resolve_url, sqlite_path

_server: list[str] = []  # the PostgreSQL server's URL, when the run is on PostgreSQL


def use(db: str | None) -> None:
    """Measure on the database server ``db`` names (None or a SQLite path: temporary files)."""
    _server.clear()
    if db is not None and sqlite_path(resolve_url(db)) is None:
        _server.append(db)


def kind() -> str:
    return "postgres" if _server else "sqlite"


@contextlib.contextmanager
def fresh() -> Iterator[str]:
    """The URL of a new, empty database, removed afterwards."""
    if not _server:
        with tempfile.TemporaryDirectory(prefix="jc-bench-") as folder:
            yield str(Path(folder) / "bench.db")
        return
    import psycopg

    server = _server[0]
    schema = f"jcbench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            separator = "&" if "?" in server else "?"
            yield f"{server}{separator}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def commit_floor(n: int) -> float:
    """Single-row autocommit INSERTs per second on one connection: the rate a database can
    commit one transaction at a time (PostgreSQL; a round trip and an fsync each)."""
    import psycopg

    with fresh() as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor (id bigint PRIMARY KEY, payload text NOT NULL)")
        start = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO floor VALUES (%s, %s)", (i, f'{{"i":{i}}}'))
        return n / (time.perf_counter() - start)
