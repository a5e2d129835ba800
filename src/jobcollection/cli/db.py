"""`jobcollection db upgrade|copy`: the database itself.

`upgrade [--dry-run]` brings a database's schema up to this version. Every command migrates the
database it opens anyway (in one transaction, so a failed migration leaves it as it was); this
does it on purpose, before a deployment, and `--dry-run` shows what would be applied, SQL
included, without changing anything.

`copy --from URL --to URL [--force]` copies every collection (jobs with their logs), user and
login token to another database, e.g. from SQLite to PostgreSQL, and checks the copy
(`storage/transfer.py`). A target that holds anything is refused unless `--force`. With
`--live` the source may be in use: the copy then follows its changes until they stop for
`--quiet-for` seconds (the operator stops the source's writers) and compares both sides
(`storage/live_copy.py`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..storage import SchemaStatus, open_storage, schema_status, upgrade
from ..storage.port import Storage
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
    copy.add_argument(
        "--live",
        action="store_true",
        help="the source is in use: after the copy, follow its changes until none came for "
        "--quiet-for seconds (stop its servers and workers to switch), then compare both sides",
    )
    copy.add_argument(
        "--quiet-for",
        type=_seconds,
        default=2.0,
        metavar="S",
        help="with --live: seconds without a change that end the copy (default 2)",
    )
    copy.set_defaults(handler=cmd_db_copy, db=None)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600, got {text}")
    return value


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
            if held is not None and args.live:
                raise CommandFailed(
                    f"--to {args.target}: a live copy needs an empty target; it holds {held}"
                )
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

            if args.live:
                return _copy_live(source, target, args.quiet_for, status, progress)
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


def _copy_live(
    source: Storage,
    target: Storage,
    quiet_for: float,
    status: StatusLine,
    progress: Callable[[str, int], None],
) -> int:
    from ..storage import live_copy

    def following(changes: int, quiet: float) -> None:
        status.show(
            f"following the source: {changes:,} change{'s' if changes != 1 else ''} applied; "
            f"quiet for {quiet:.1f} s of {quiet_for:g} (stop its servers and workers to switch)"
        )

    report = live_copy.copy_live(
        source, target, quiet_s=quiet_for, progress=progress, following=following
    )
    status.show("")
    for name, count in report.jobs.items():
        print(f"{name}: {count:,} job{'s' if count != 1 else ''}")
    print(f"changes followed after the snapshot: {report.changes:,}")
    print(f"users: {len(target.users.list_users())}, login tokens: {len(target.users.tokens())}")
    print(f"checked: both sides hold the same documents, digest {report.digest}")
    return EXIT_OK
