"""`jobcollection db upgrade|copy`: the database itself.

`upgrade [--dry-run]` brings a database's schema up to this version. Every command migrates the
database it opens anyway (in one transaction, so a failed migration leaves it as it was); this
does it on purpose, before a deployment, and `--dry-run` shows what would be applied, SQL
included, without changing anything.

`copy --from URL --to URL [--force]` copies every collection (jobs with their logs), user and
login token to another database, e.g. from SQLite to PostgreSQL, and checks the copy
(`storage/transfer.py`). A target that holds anything is refused unless `--force`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..storage import SchemaStatus, open_storage, schema_status, upgrade
from .errors import EXIT_OK, CommandFailed, UsageError
from .status_line import StatusLine
from .target import database_missing


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
    text = "copy every collection, user and login token to another database, and check the copy"
    copy = sub.add_parser("copy", help=text, description=text)
    copy.add_argument("--from", dest="source", metavar="URL", required=True, help="the source")
    copy.add_argument(
        "--to", dest="target", metavar="URL", required=True, help="the target (created if new)"
    )
    copy.add_argument(
        "--force", action="store_true", help="copy into a target that already holds jobs or users"
    )
    copy.set_defaults(handler=cmd_db_copy, db=None)


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


def cmd_db_copy(args: argparse.Namespace) -> int:
    from ..storage import transfer

    if args.source == args.target:
        raise UsageError("--to: the target is the source")
    if database_missing(args.source):
        raise CommandFailed(f"--from {args.source}: no such database file")
    source = open_storage(args.source)
    try:
        target = open_storage(args.target)
        try:
            held = transfer.target_contents(target)
            if held is not None and not args.force:
                raise CommandFailed(
                    f"--to {args.target}: the target is not empty ({held}); "
                    "give --force to copy into it anyway"
                )
            status = StatusLine(sys.stderr)
            totals = {name: transfer.count_jobs(source, name) for name in source.collections()}

            def progress(name: str, copied: int) -> None:
                total = totals.get(name) or copied
                done = int(20 * copied / total) if total else 20
                bar = "#" * done + "-" * (20 - done)
                status.show(f"copying {name!r}: [{bar}] {copied:,} / {total:,} jobs")

            report = transfer.copy_database(source, target, progress=progress)
            status.show("")
        finally:
            target.close()
    finally:
        source.close()
    for name, count in report.jobs.items():
        print(f"{name}: {count:,} job{'s' if count != 1 else ''}")
    print(f"users: {report.users}, login tokens: {report.tokens}")
    print(f"checked: every document read back, sha256 {report.checksum}")
    return EXIT_OK
