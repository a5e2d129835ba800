"""Schema version 3 adds the accounts tables; a version 2 database gains them in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _schema import drop_worker_registry

from jobcollection import Job, JobCollection
from jobcollection.server.accounts import Accounts
from jobcollection.storage.sqlite import SCHEMA_VERSION, SqliteStorage

pytestmark = pytest.mark.sqlite_only(
    reason="migrates SQLite databases of schema version 2 (sqlite_00N.sql), raw sqlite3"
)

ACCOUNT_TABLES = ["login_tokens", "user_emails", "users"]


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return [name for (name,) in rows]


def _make_version_2(path: Path) -> str:
    """A database as schema version 2 left it: jobs, no users."""
    with JobCollection("m", str(path)) as jc:
        job_id = Job(jc, "t", {"n": 1}).save()
        assert job_id is not None
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for table in ACCOUNT_TABLES:
            conn.execute(f"DROP TABLE {table}")
        drop_worker_registry(conn)
        conn.execute("PRAGMA user_version = 2")
        conn.execute("COMMIT")
        assert not set(ACCOUNT_TABLES) & set(_tables(conn))
    finally:
        conn.close()
    return job_id


def test_version_2_database_gains_the_accounts_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    job_id = _make_version_2(path)

    storage = SqliteStorage(str(path))
    try:
        accounts = Accounts(storage.users, bcrypt_rounds=4)
        user_id = accounts.add_user("bob", "pw", "bob@example.org")
        options = {"user": {"email": "BOB@example.org"}, "password": "pw"}
        token = accounts.login(options).token
        assert accounts.resume(token) is not None
    finally:
        storage.close()

    with JobCollection("m", str(path)) as jc:
        job = jc.get_job(job_id)
        assert job is not None
        assert job.data == {"n": 1}
    conn = sqlite3.connect(path)
    try:
        assert SCHEMA_VERSION >= 3
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert set(ACCOUNT_TABLES) <= set(_tables(conn))
        assert conn.execute("SELECT id, username FROM users").fetchall() == [(user_id, "bob")]
    finally:
        conn.close()


def test_users_are_shared_by_every_connection_to_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    first, second = SqliteStorage(path), SqliteStorage(path)
    try:
        user_id = Accounts(first.users, bcrypt_rounds=4).add_user("bob", "pw")
        found = second.users.user_by_username("BOB")
        assert found is not None
        assert found.id == user_id
    finally:
        first.close()
        second.close()
