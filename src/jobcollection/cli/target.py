"""Where a command acts: the database itself (`--db`), or a server (`--server URL`, logged in
with `--user NAME --password-env VAR` or with a resume token, `--token-env VAR`).

`check` validates these options before anything is opened; `open_collection` is the one place
the commands open their collection.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import AuthenticationFailed, ConnectionClosed, ProtocolError
from ..storage import ENV_VAR, open_storage, resolve_url, sqlite_path
from .errors import CommandFailed, UsageError

if TYPE_CHECKING:
    from ..api.collection import JobCollection

LOCAL_ONLY = ("serve", "users", "db")  # commands that work on the database itself, never remotely
OWN_DATABASES = ("bench",)  # commands that work on temporary databases of their own
_LOGIN_OPTIONS = {
    "server_user": "--user",
    "server_password_env": "--password-env",
    "server_token_env": "--token-env",
}


def database_missing(db: str | None) -> bool:
    """True if the database is a SQLite file that does not exist (yet)."""
    path = sqlite_path(resolve_url(db))
    return path is not None and path != ":memory:" and not os.path.exists(path)


def require_database(db: str | None) -> None:
    """Refuse a SQLite database file that does not exist: commands that only read or change
    existing jobs or users never create one (a mistyped --db would look like an empty one)."""
    if not database_missing(db):
        return
    path = sqlite_path(resolve_url(db))
    if db is not None:
        where = f"--db {db}"
    elif os.environ.get(ENV_VAR):
        where = f"${ENV_VAR} ({path})"
    else:
        where = f"{path} (the default; give --db PATH or set ${ENV_VAR})"
    creators = "submit, worker, serve and users add create one"
    raise CommandFailed(f"{where}: no such database file ({creators})")


def remote(args: argparse.Namespace) -> bool:
    """True if the command acts through a server."""
    return getattr(args, "server", None) is not None


def nothing_stored(args: argparse.Namespace) -> bool:
    """True if there is certainly no job to find: a local database file that does not exist."""
    return not remote(args) and database_missing(args.db)


def _given(args: argparse.Namespace) -> list[str]:
    return [option for dest, option in _LOGIN_OPTIONS.items() if getattr(args, dest, None)]


def _env(option: str, variable: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise UsageError(f"{option}: environment variable {variable!r} is not set")
    if not value:
        raise UsageError(f"{option}: environment variable {variable!r} is empty")
    return value


def login(args: argparse.Namespace) -> dict[str, str]:
    """`connect()`'s login arguments (read from the environment); UsageError if unusable."""
    if args.server_token_env:
        return {"token": _env("--token-env", args.server_token_env)}
    if args.server_password_env:
        password = _env("--password-env", args.server_password_env)
        return {"username": args.server_user, "password": password}
    return {}


def check(args: argparse.Namespace) -> None:
    """Refuse contradictory or incomplete server options (exit 2; nothing is opened)."""
    given = _given(args)
    if args.command in OWN_DATABASES:
        taken = [o for o, v in (("--db", args.db), ("--server", remote(args))) if v] + given
        if taken:
            raise UsageError(f"{taken[0]}: {args.command} works on temporary databases of its own")
        return
    if args.command in LOCAL_ONLY:
        if remote(args):
            raise UsageError(
                f"--server: {args.command} works on the database itself, not through a server"
                " (run it where the database is, with --db)"
            )
        if given:
            raise UsageError(f"{given[0]}: only with --server, which {args.command} does not take")
        return
    if not remote(args):
        if given:
            raise UsageError(f"{given[0]}: needs --server URL")
        return
    if args.db is not None:
        raise UsageError("--db: give either --db or --server, not both")
    if args.server_token_env and (args.server_password_env or args.server_user):
        raise UsageError("--token-env: give either --token-env or --user/--password-env")
    if args.server_user and not args.server_password_env:
        raise UsageError("--user: needs --password-env VAR (the variable holding the password)")
    if args.server_password_env and not args.server_user:
        raise UsageError("--password-env: needs --user NAME")
    login(args)


def describe(args: argparse.Namespace, jc: JobCollection) -> str:
    """Where the collection is, for messages: the database URL or the server (and user)."""
    if not remote(args):
        return jc.db_url
    who = f" as {args.server_user}" if args.server_user else ""
    return f"server {args.server}{who}"


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def open_collection(
    args: argparse.Namespace, *, quiet: bool = True, create: bool = False
) -> JobCollection:
    """The command's collection: opened on the database, or connected to `--server`.
    `create`: a database file that does not exist yet is created (else refused, see
    `require_database`). `quiet`: the client's own warnings are not shown (the command's error
    says it all)."""
    if not remote(args):
        if not create:
            require_database(args.db)
        from ..api.collection import JobCollection  # the Python API only when it is used

        return JobCollection(args.collection, args.db)
    from ..client.remote import connect  # the websocket client only when it is used

    if quiet:
        logging.getLogger("jobcollection.client").setLevel(logging.CRITICAL)
    credentials = login(args)
    try:
        return connect(args.server, args.collection, **credentials)
    except AuthenticationFailed as error:
        who = f" as {args.server_user!r}" if args.server_user else " with --token-env"
        raise CommandFailed(
            f"--server {args.server}: login{who} refused: {_one_line(error)}"
        ) from None
    except (ConnectionClosed, ProtocolError) as error:
        raise CommandFailed(f"--server {args.server}: {_one_line(error)}") from None


@contextmanager
def open_reader(args: argparse.Namespace) -> Iterator[Any]:
    """What the read-only commands (`ls`, `show`, `stats`) read through: a `JobReader` on the
    database itself (so such a short-lived command loads neither the Python API's asyncio
    machinery nor the engine's), or the same reads of the remote collection."""
    if remote(args):
        with open_collection(args) as jc:
            yield _RemoteReader(jc)
        return
    from ..engine.reader import JobReader

    require_database(args.db)
    storage = open_storage(args.db)
    try:
        yield JobReader(storage, args.collection)
    finally:
        storage.close()


class _RemoteReader:
    """`JobReader`'s reads of a remote collection."""

    def __init__(self, jc: JobCollection) -> None:
        self._backend = jc.backend

    def find(
        self, selector: dict[str, Any], limit: int | None, *, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        return self._backend.find(selector, limit, newest_first=newest_first)

    def count(self, selector: dict[str, Any], at_most: int | None = None) -> int:
        return self._backend.count(selector, at_most)

    def stats(self) -> list[tuple[str, str, int]]:
        return self._backend.stats()

    def get(self, job_id: str, *, get_log: bool = False, get_failures: bool = False) -> Any:
        options = {"getLog": get_log, "getFailures": get_failures}
        return self._backend.call("getJob", [job_id, options])
