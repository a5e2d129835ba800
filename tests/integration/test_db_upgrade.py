"""`jobcollection db upgrade [--dry-run]` and the shared migration rules behind it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _schema import make_version_1

from jobcollection import JobCollection, SchemaTooNew
from jobcollection.cli.main import main
from jobcollection.storage import migrations, schema_status
from jobcollection.storage.sqlite import DIALECT, SCHEMA_VERSION

pytestmark = pytest.mark.sqlite_only(
    reason="SQLite's migrations (sqlite_00N.sql) and its PRAGMA user_version"
)


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


def test_the_sqlite_migrations_are_numbered_without_gaps_and_match_the_code() -> None:
    found = migrations.migrations(DIALECT)
    assert [m.number for m in found] == list(range(1, SCHEMA_VERSION + 1))
    assert migrations.latest(DIALECT) == SCHEMA_VERSION
    assert all(m.statements() for m in found)
    assert all(m.summary for m in found)


def test_pending_refuses_a_database_newer_than_the_code() -> None:
    assert migrations.pending(DIALECT, SCHEMA_VERSION, "x.db") == []
    assert [m.number for m in migrations.pending(DIALECT, 4, "x.db")] == [5, 6][
        : SCHEMA_VERSION - 4
    ]
    with pytest.raises(SchemaTooNew, match=r"x\.db has schema version 99"):
        migrations.pending(DIALECT, 99, "x.db")


def test_dry_run_on_an_old_database_lists_the_migrations_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    make_version_1(path)
    before = path.read_bytes()
    assert main(["db", "upgrade", "--dry-run", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"schema version 1 -> {SCHEMA_VERSION}; would apply {SCHEMA_VERSION - 1} migrations" in out
    )
    for number in range(2, SCHEMA_VERSION + 1):
        assert f"-- migration {number}\n" in out  # each with its SQL
    assert "CREATE TABLE IF NOT EXISTS workers" in out
    assert _version(path) == 1
    assert path.read_bytes() == before


def test_upgrade_applies_them_and_keeps_the_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    job_id = make_version_1(path)
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"schema version 1 -> {SCHEMA_VERSION}; applied {SCHEMA_VERSION - 1} migrations" in out
    assert _version(path) == SCHEMA_VERSION
    with JobCollection("m", str(path)) as jc:
        job = jc.get_job(job_id, get_log=True)
        assert job is not None
        assert job.doc["log"][-1]["message"] == "during the run"
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    assert f"up to date (schema version {SCHEMA_VERSION})" in capsys.readouterr().out


def test_a_missing_database_is_created_by_upgrade_but_not_by_the_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new.db"
    assert main(["db", "upgrade", "--dry-run", "--db", str(path)]) == 0
    assert f"schema version 0 -> {SCHEMA_VERSION}" in capsys.readouterr().out
    assert not path.exists()
    assert schema_status(path).version == 0
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    assert _version(path) == SCHEMA_VERSION


def test_a_database_newer_than_the_code_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "newer.db"
    JobCollection("m", str(path)).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    for argv in (["db", "upgrade", "--dry-run"], ["db", "upgrade"]):
        assert main([*argv, "--db", str(path)]) == 1
        error = capsys.readouterr().err
        assert f"has schema version {SCHEMA_VERSION + 1}" in error, error
        assert "upgrade jobcollection" in error
    assert _version(path) == SCHEMA_VERSION + 1


def test_db_works_on_the_database_not_through_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--server", "http://127.0.0.1:9"]) == 2
    assert "--server: db works on the database itself" in capsys.readouterr().err
