"""PostgreSQL driver errors leave as jobcollection errors that name the database."""

from __future__ import annotations

import pytest

from jobcollection.errors import ConflictError, StorageCorrupt, StorageError, StorageUnavailable

psycopg = pytest.importorskip("psycopg")
pool = pytest.importorskip("psycopg_pool")

from psycopg import errors as pg_errors  # noqa: E402

from jobcollection.storage.postgres.storage import describe, translate  # noqa: E402


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (psycopg.OperationalError("connection refused"), StorageUnavailable, "is unavailable"),
        (pg_errors.AdminShutdown("terminating"), StorageUnavailable, "is unavailable"),
        (pool.PoolTimeout("no connection in 5 s"), StorageUnavailable, "is unavailable"),
        (psycopg.InterfaceError("the connection is closed"), StorageUnavailable, "unavailable"),
        (pg_errors.ReadOnlySqlTransaction("read-only"), StorageUnavailable, "refuses"),
        (pg_errors.InsufficientPrivilege("denied"), StorageUnavailable, "refuses"),
        (pg_errors.SerializationFailure("could not serialize"), ConflictError, "serialize"),
        (pg_errors.DeadlockDetected("deadlock"), ConflictError, "deadlock"),
        (pg_errors.UndefinedTable('relation "jobs"'), StorageCorrupt, "lacks"),
        (pg_errors.UniqueViolation("duplicate key"), StorageError, "duplicate key"),
    ],
)
def test_translate(error: Exception, kind: type[StorageError], words: str) -> None:
    translated = translate(error, "db.example:5432/jobs")
    assert type(translated) is kind
    assert "PostgreSQL database db.example:5432/jobs" in str(translated)
    assert words in str(translated)


def test_describe_never_shows_the_password() -> None:
    named = describe("postgresql://ada:s3cret@db.example:6543/jobs?sslmode=require")
    assert named == "db.example:6543/jobs"
    assert describe("postgresql:///jobs") == "localhost:5432/jobs"
