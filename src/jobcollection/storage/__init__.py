"""Storage port and adapters. Adapters import `core` and `storage.port`, never `engine`."""

from __future__ import annotations

import os

from ..errors import StorageUnavailable
from .port import Storage

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


def open_storage(db: str | os.PathLike[str] | None = None) -> Storage:
    """Open the storage a URL or path names (SQLite today; PostgreSQL comes next)."""
    url = resolve_url(db)
    path = sqlite_path(url)
    if path is None:
        scheme = url.split("://", 1)[0]
        raise StorageUnavailable(
            f"unsupported database URL scheme {scheme!r} in {url!r}: "
            "use a SQLite file path or a sqlite:/// URL"
        )
    from .sqlite import SqliteStorage

    return SqliteStorage(path, url)
