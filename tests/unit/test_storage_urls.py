"""Which database a `db=` value names, and the errors for ones we cannot open."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobcollection import StorageUnavailable
from jobcollection.storage import (
    DEFAULT_DB,
    ENV_VAR,
    open_storage,
    postgres_conninfo,
    resolve_url,
    sqlite_path,
)

pytestmark = pytest.mark.sqlite_only(reason="how a db= value names a SQLite file")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("jobs.db", "jobs.db"),
        ("/abs/jobs.db", "/abs/jobs.db"),
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("postgresql://localhost/jobs", None),
    ],
)
def test_sqlite_path(url: str, path: str | None) -> None:
    assert sqlite_path(url) == path


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_url(None) == DEFAULT_DB
    monkeypatch.setenv(ENV_VAR, "from-env.db")
    assert resolve_url(None) == "from-env.db"
    assert resolve_url(tmp_path / "given.db") == str(tmp_path / "given.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://relative.db", "bad SQLite URL"),
        ("mysql://x/y", "unsupported database URL scheme 'mysql'"),
    ],
)
def test_unusable_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(StorageUnavailable, match=message):
        open_storage(url)


def test_url_forms_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "same.db"
    first = open_storage(f"sqlite:///{path}")  # an absolute path after sqlite:///
    first.close()
    second = open_storage(str(path))
    assert second.url == str(path)
    second.close()
    memory = open_storage("sqlite://")
    memory.close()


@pytest.mark.parametrize(
    ("url", "conninfo"),
    [
        ("postgresql://localhost/jobs", "postgresql://localhost/jobs"),
        ("postgresql+psycopg://u@h:5433/db?sslmode=off", "postgresql://u@h:5433/db?sslmode=off"),
        ("POSTGRESQL+PSYCOPG://h/db", "postgresql://h/db"),
        ("postgres://h/db", "postgresql://h/db"),
        ("sqlite:///jobs.db", None),
        ("jobs.db", None),
        ("postgresql+asyncpg://h/db", None),
    ],
)
def test_postgres_conninfo(url: str, conninfo: str | None) -> None:
    assert postgres_conninfo(url) == conninfo


def test_postgres_url_without_the_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in list(sys.modules):
        if name == "psycopg" or name.startswith(("psycopg.", "jobcollection.storage.postgres")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(StorageUnavailable, match=r"pip install 'jobcollection\[postgres\]'"):
        open_storage("postgresql+psycopg://localhost/jobs")


def test_unreachable_postgres_names_the_database() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1:1/nowhere"):
        open_storage("postgresql://postgres@127.0.0.1:1/nowhere")
