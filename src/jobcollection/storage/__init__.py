"""Storage port and adapters. Adapters import `core` and `storage.port`, never `engine`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import StorageUnavailable
from .port import Storage

if TYPE_CHECKING:
    from .migrations import Migration

DEFAULT_DB = "./jobcollection.db"
ENV_VAR = "JOBCOLLECTION_DB"


def resolve_url(db: str | os.PathLike[str] | None) -> str:
    """The database to use: the argument, else $JOBCOLLECTION_DB, else ./jobcollection.db."""
    if db is None:
        db = os.environ.get(ENV_VAR) or DEFAULT_DB
    return os.fspath(db)


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL or plain path (SQLAlchemy's convention), else None."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if rest in ("", "/", "/:memory:"):
            return ":memory:"
        if not rest.startswith("/"):
            raise StorageUnavailable(
                f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db"
            )
        return rest[1:]
    if "://" in url:
        return None
    return url


POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")
POSTGRES_EXTRA = "pip install 'jobcollection[postgres]'"


def postgres_conninfo(url: str) -> str | None:
    """The libpq URL of a PostgreSQL URL (`postgresql+psycopg://` is SQLAlchemy's spelling of
    `postgresql://`, accepted so one URL serves both), else None."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in POSTGRES_SCHEMES:
        return None
    return f"postgresql://{rest}"


def open_storage(db: str | os.PathLike[str] | None = None) -> Storage:
    """Open the storage a URL or path names: a SQLite file or URL, or a PostgreSQL URL."""
    url = resolve_url(db)
    conninfo = postgres_conninfo(url)
    if conninfo is not None:
        try:  # psycopg is an optional extra: imported only for a PostgreSQL URL
            from .postgres import PgStorage
        except ImportError as error:
            raise StorageUnavailable(
                f"{url.partition('://')[0]}:// needs the PostgreSQL driver ({error.name} is "
                f"not installed): {POSTGRES_EXTRA}"
            ) from error
        return PgStorage(conninfo, url)
    path = sqlite_path(url)
    if path is None:
        scheme = url.split("://", 1)[0]
        raise StorageUnavailable(
            f"unsupported database URL scheme {scheme!r} in {url!r}: use a SQLite file path, "
            "a sqlite:/// URL or a postgresql:// URL"
        )
    from .sqlite import SqliteStorage

    return SqliteStorage(path, url)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands: its version, the version this code writes, and the
    migrations that would take it there (`jobcollection db upgrade`)."""

    url: str
    version: int  # 0: no database yet
    latest: int
    pending: list[Migration]


def schema_status(db: str | os.PathLike[str] | None = None) -> SchemaStatus:
    """The schema of the database a URL or path names, read without changing anything (a
    database that does not exist yet is at version 0). Raises `SchemaTooNew` for a database
    written by a newer jobcollection."""
    from . import migrations

    url = resolve_url(db)
    conninfo = postgres_conninfo(url)
    if conninfo is not None:
        try:
            from . import postgres
        except ImportError:
            open_storage(url)  # the missing driver's error
            raise
        where = f"PostgreSQL {postgres.storage.describe(conninfo)}"
        version = postgres.schema_version(conninfo)
        pending = migrations.pending(postgres.DIALECT, version, where)
        return SchemaStatus(url, version, migrations.latest(postgres.DIALECT), pending)
    path = sqlite_path(url)
    if path is None:
        open_storage(url)  # the scheme's own error
        raise AssertionError("unreachable: open_storage refuses unknown schemes")
    from .sqlite import DIALECT, schema_version

    version = schema_version(path)
    pending = migrations.pending(DIALECT, version, path)
    return SchemaStatus(url, version, migrations.latest(DIALECT), pending)


def upgrade(db: str | os.PathLike[str] | None = None) -> SchemaStatus:
    """Apply the pending migrations (creating the database if there is none); returns the
    status from before, whose `pending` are the migrations applied."""
    before = schema_status(db)
    open_storage(before.url).close()  # opening migrates, inside one transaction
    return before
