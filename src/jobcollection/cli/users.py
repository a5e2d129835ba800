"""`jobcollection users add|list|remove|passwd`: the accounts that may log in to the server.

Users live in the job database. Every input is checked before the database is opened; only
`add` creates a database file, `list`, `remove` and `passwd` refuse one that does not exist.
Passwords come from `--password PW` or, to keep them off the command line, `--password-env VAR`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..core import ejson
from ..storage import open_storage
from ..storage.port import UserStore
from . import render
from .errors import EXIT_OK, CommandFailed, UsageError
from .target import require_database

if TYPE_CHECKING:
    from ..server.accounts import Accounts, UserInfo


def _converter(check: str) -> Callable[[str], str]:
    """The argparse type checking a value with `server.accounts.<check>` (imported only when a
    `users` command runs: the other commands build this parser too)."""

    def convert(text: str) -> str:
        from ..server import accounts

        try:
            checked: str = getattr(accounts, check)(text)
        except accounts.AccountValidationError as error:
            raise argparse.ArgumentTypeError(error.problem) from None
        return checked

    return convert


def _password_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--password", metavar="PW", type=_converter("check_password"), help="the password"
    )
    source.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from environment variable VAR (keeps it off the command line)",
    )


def add_parser(
    subparsers: argparse._SubParsersAction[Any],
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add the `users` command (and its subcommands) to the CLI."""
    text = "manage the users who may log in to the server (kept in the job database)"
    users = subparsers.add_parser("users", parents=list(parents), help=text, description=text)
    sub = users.add_subparsers(dest="users_command", metavar="SUBCOMMAND", required=True)

    add = sub.add_parser("add", parents=list(parents), help="create a user and print its id")
    add.add_argument("name", metavar="NAME", type=_converter("check_username"), help="username")
    _password_options(add)
    add.add_argument("--email", metavar="E", type=_converter("check_email"), help="e-mail address")
    add.set_defaults(handler=cmd_users_add)

    ls = sub.add_parser("list", parents=list(parents), help="list the users (oldest first)")
    ls.add_argument("--json", action="store_true", help="one JSON document per line")
    ls.set_defaults(handler=cmd_users_list)

    remove = sub.add_parser(
        "remove", parents=list(parents), help="delete a user and log out its sessions"
    )
    remove.add_argument("name", metavar="NAME", type=_converter("check_username"))
    remove.set_defaults(handler=cmd_users_remove)

    passwd = sub.add_parser(
        "passwd", parents=list(parents), help="set a user's password and log out its sessions"
    )
    passwd.add_argument("name", metavar="NAME", type=_converter("check_username"))
    _password_options(passwd)
    passwd.set_defaults(handler=cmd_users_passwd)


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        password: str = args.password
        return password
    variable: str = args.password_env
    value = os.environ.get(variable)
    if value is None:
        raise UsageError(f"--password-env: environment variable {variable!r} is not set")
    if not value:
        raise UsageError(f"--password-env: environment variable {variable!r} is empty")
    return value


@contextmanager
def _accounts(args: argparse.Namespace, *, create: bool = False) -> Iterator[Accounts]:
    if not create:
        require_database(args.db)
    storage = open_storage(args.db)
    try:
        store: UserStore | None = getattr(storage, "users", None)
        if store is None:
            raise CommandFailed(f"database {storage.url} cannot keep users")
        from ..server.accounts import Accounts

        yield Accounts(store)
    finally:
        storage.close()


def cmd_users_add(args: argparse.Namespace) -> int:
    password = _password(args)
    with _accounts(args, create=True) as accounts:
        user_id = accounts.add_user(args.name, password, args.email)
    print(user_id)
    return EXIT_OK


def _user_json(user: UserInfo) -> str:
    return render.to_json(
        {
            "_id": user.id,
            "username": user.username,
            "emails": [{"address": e.address, "verified": e.verified} for e in user.emails],
            "hasPassword": user.has_password,
            "createdAt": ejson.Date(user.created),
        }
    )


def cmd_users_list(args: argparse.Namespace) -> int:
    with _accounts(args) as accounts:
        users = accounts.list_users()
    if args.json:
        for user in users:
            print(_user_json(user))
    elif users:
        rows = [
            [
                user.id,
                user.username,
                ",".join(e.address for e in user.emails) or "-",
                "yes" if user.has_password else "no",
                render.iso(user.created),
            ]
            for user in users
        ]
        print(render.table(("ID", "USERNAME", "EMAILS", "PASSWORD", "CREATED"), rows))
    else:
        print("no users")
    return EXIT_OK


def cmd_users_remove(args: argparse.Namespace) -> int:
    with _accounts(args) as accounts:
        user = accounts.remove_user(args.name)
    print(f"removed user {user.username} ({user.id})")
    return EXIT_OK


def cmd_users_passwd(args: argparse.Namespace) -> int:
    password = _password(args)
    with _accounts(args) as accounts:
        user = accounts.set_password(args.name, password)
    print(f"changed the password of {user.username} ({user.id}) and logged out its sessions")
    return EXIT_OK
