"""`jobcollection bench --storage postgresql://...`: each figure in a schema of its own, dropped
after; the single-connection commit floor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobcollection import Job, JobCollection
from jobcollection.bench import databases
from pg_support import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[str]:
    with fresh_database():  # skips (or fails under CI) when PostgreSQL cannot be reached
        pass
    from pg_support import server_url

    databases.use(server_url())
    try:
        yield server_url()
    finally:
        databases.use(None)


def _schemas(server: str) -> set[str]:
    import psycopg

    with psycopg.connect(server) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'jcbench_%'")
        return {name for (name,) in rows}


def test_each_fresh_database_is_a_schema_of_its_own_dropped_after(server: str) -> None:
    before = _schemas(server)
    assert databases.kind() == "postgres"
    with databases.fresh() as first, databases.fresh() as second:
        assert first != second
        for url in (first, second):
            with JobCollection("bench", url) as jc:
                Job(jc, "noop", {}).save()
                assert len(jc.find({})) == 1  # each sees only its own jobs
        assert len(_schemas(server) - before) == 2
    assert _schemas(server) == before


def test_the_commit_floor_is_measured_in_a_schema_dropped_after(server: str) -> None:
    before = _schemas(server)
    assert databases.commit_floor(50) > 0
    assert _schemas(server) == before


def test_without_a_server_the_databases_are_sqlite_files() -> None:
    databases.use(None)
    assert databases.kind() == "sqlite"
    databases.use("some/file.db")
    assert databases.kind() == "sqlite"
    with databases.fresh() as path:
        assert path.endswith("bench.db")
