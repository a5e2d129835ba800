"""`jobcollection db upgrade [--dry-run]`: bring a database's schema up to this version.

Every command migrates the database it opens anyway (in one transaction, so a failed migration
leaves it as it was); this command does it on purpose, before a deployment, and with
`--dry-run` shows what would be applied, SQL included, without changing anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..storage import SchemaStatus, schema_status, upgrade
from .errors import EXIT_OK


def add_parser(
    subparsers: argparse._SubParsersAction[Any],
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add the `db` command (and its subcommands) to the CLI."""
    text = "the database itself: its schema"
    db = subparsers.add_parser("db", parents=list(parents), help=text, description=text)
    sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    text = "apply the schema migrations the database lacks (creating it if there is none)"
    up = sub.add_parser("upgrade", parents=list(parents), help=text, description=text)
    up.add_argument(
        "--dry-run",
        action="store_true",
        help="print the migrations that would be applied, with their SQL; change nothing",
    )
    up.set_defaults(handler=cmd_db_upgrade)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    if args.dry_run:
        status = schema_status(args.db)
        print(_headline(status, done=False))
        for migration in status.pending:
            print(f"\n-- migration {migration.number}")
            print(migration.script.rstrip())
        return EXIT_OK
    status = upgrade(args.db)
    print(_headline(status, done=True))
    return EXIT_OK


def _headline(status: SchemaStatus, *, done: bool) -> str:
    where = f"database {status.url}"
    if not status.pending:
        return f"{where}: up to date (schema version {status.version})"
    verb = "applied" if done else "would apply"
    lines = [
        f"{where}: schema version {status.version} -> {status.latest}; {verb} "
        f"{len(status.pending)} migration{'s' if len(status.pending) != 1 else ''}:"
    ]
    lines += [f"  {m.number:>3}  {m.summary or '(no description)'}" for m in status.pending]
    return "\n".join(lines)
