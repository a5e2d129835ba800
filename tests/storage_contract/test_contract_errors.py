"""Failures leave as jobcollection errors and leave the stored data as it was."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

import pytest
from contract_helpers import POSTGRES_ONLY, OpenStorage, job

from jobcollection.errors import SchemaTooNew, StorageError, StorageUnavailable
from jobcollection.storage.port import Storage


def ids(storage: Storage) -> list[str]:
    with storage.read("q") as tx:
        return [doc["_id"] for doc in tx.find()]


def test_a_failed_write_is_our_error_and_writes_nothing(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([job("a")])

    def insert_twice() -> None:
        with storage.write("q") as tx:
            tx.insert([job("b")])
            tx.insert([job("a")])  # the id is taken

    with pytest.raises(StorageError) as info:
        insert_twice()
    assert type(info.value).__module__ == "jobcollection.errors"
    assert ids(storage) == ["a"]
    assert [c.job_id for c in storage.changes_since(0)] == ["a"]
    with storage.write("q") as tx:  # the storage goes on
        tx.insert([job("c")])
    assert ids(storage) == ["a", "c"]


def test_a_lone_insert_that_fails_is_our_error_and_writes_nothing(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([job("a")])
    with pytest.raises(StorageError) as info, storage.write("q") as tx:
        tx.insert([job("a", "u")])  # the id is taken (the write's only statement)
    assert type(info.value).__module__ == "jobcollection.errors"
    assert [c.job_id for c in storage.changes_since(0)] == ["a"]
    with storage.write("q") as tx:
        tx.insert([job("b")])
    assert ids(storage) == ["a", "b"]


def _label_newer(database: str, adapter: str, version: int) -> None:
    if adapter == "sqlite":
        conn = sqlite3.connect(database.removeprefix("sqlite:///"))
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))


def test_a_database_newer_than_the_code_is_refused(
    database: str, adapter: str, storage: Storage, open_storage_again: OpenStorage
) -> None:
    with storage.write("q") as tx:
        tx.insert([job("a")])
    storage.close()
    _label_newer(database, adapter, 99)
    with pytest.raises(SchemaTooNew, match="99") as info:
        open_storage_again()
    assert "upgrade jobcollection" in str(info.value)


@POSTGRES_ONLY
def test_a_lost_connection_is_unavailable_then_the_pool_reconnects(
    adapter: str, database: str, storage: Storage
) -> None:
    import psycopg

    with storage.write("q") as tx:
        tx.insert([job("a")])
    application = database.partition("application_name=")[2].partition("&")[0]
    assert application  # pg_support names the test's connections
    with psycopg.connect(database.split("?")[0], autocommit=True) as admin:

        def drop_connections() -> None:
            admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application,),
            )

        drop_connections()  # between transactions: the next one gets a fresh connection
        assert ids(storage) == ["a"]

        def write_while_dropped() -> None:
            with storage.write("q") as tx:
                tx.insert([job("b")])
                assert [doc["_id"] for doc in tx.get(["b"])] == ["b"]  # sent: the tx has begun
                drop_connections()  # in the middle of one: it fails, nothing is written
                tx.insert([job("c")])

        with pytest.raises(StorageUnavailable, match=r"PostgreSQL database \S+ is unavailable"):
            write_while_dropped()
    assert ids(storage) == ["a"]
    with storage.write("q") as tx:
        tx.insert([job("d")])
    assert ids(storage) == ["a", "d"]


@POSTGRES_ONLY
def test_subscribers_miss_nothing_across_a_lost_connection(
    adapter: str, database: str, storage: Storage, open_storage_again: OpenStorage
) -> None:
    import psycopg

    from jobcollection.storage.port import Change

    seen: list[str] = []

    def listener(changes: Sequence[Change]) -> None:
        seen.extend(change.job_id for change in changes)

    watched = open_storage_again()
    watched.subscribe(listener)
    with storage.write("q") as tx:
        tx.insert([job("before")])
    _wait(lambda: seen == ["before"])
    application = database.partition("application_name=")[2].partition("&")[0]
    with psycopg.connect(database.split("?")[0], autocommit=True) as admin:
        admin.execute(  # the watcher's connection too
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (application,),
        )
    with storage.write("q") as tx:  # while the watcher reconnects
        tx.insert([job("after")])
    _wait(lambda: seen == ["before", "after"])


def _wait(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
