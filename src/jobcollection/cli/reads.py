"""The read-only commands: ls, show and stats.

They read through `target.open_reader`: the engine itself on a local database, so a command
that lives a fraction of a second imports no more of the package than it uses (the asyncio
machinery of the Python API and the server stay unloaded).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..core.constants import JOB_STATUSES
from . import render
from .errors import EXIT_OK, CommandFailed
from .target import open_reader, remote


def where(args: argparse.Namespace) -> str:
    server = f" on {args.server}" if remote(args) else ""
    return f"collection {args.collection!r}{server}"


def _selector(args: argparse.Namespace) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if args.status:
        selector["status"] = {"$in": list(dict.fromkeys(args.status))}
    if args.type:
        selector["type"] = {"$in": list(dict.fromkeys(args.type))}
    return selector


# Counting every job of a large collection costs as much as `stats`; a cut list only says how
# many there are up to this many.
COUNT_AT_MOST = 10_000


def cmd_ls(args: argparse.Namespace) -> int:
    total = 0
    selector = _selector(args)
    with open_reader(args) as jobs:
        found = jobs.find(selector, args.limit + 1, newest_first=not args.oldest_first)
        docs = found[: args.limit]
        if len(found) > args.limit:  # cut: say so, with a count that stays cheap
            total = jobs.count(selector, at_most=COUNT_AT_MOST)
    if args.json:
        for doc in docs:
            print(render.to_json(doc))
    elif docs:
        rows = [render.job_row(doc) for doc in docs]
        print(render.table(render.JOB_HEADERS, rows, render.JOB_RIGHT))
    else:
        print("no jobs")
    if total:
        order = "oldest" if args.oldest_first else "newest"
        print(render.cut_note(len(docs), total, order, COUNT_AT_MOST), file=sys.stderr)
    return EXIT_OK


def not_found(job_id: str, args: argparse.Namespace) -> CommandFailed:
    return CommandFailed(f"no job with id {job_id!r} in {where(args)}")


def cmd_show(args: argparse.Namespace) -> int:
    with open_reader(args) as jobs:
        doc = jobs.get(args.id, get_log=True, get_failures=True)
    if doc is None:
        raise not_found(args.id, args)
    print(render.to_json(doc, indent=2) if args.json else render.show_job(doc))
    return EXIT_OK


def stats_summary(rows: Sequence[tuple[str, str, int]]) -> dict[str, Any]:
    """`{"total": n, "by_status": {status: n}, "by_type": {type: {status: n, "total": n}}}`."""
    by_status = dict.fromkeys(JOB_STATUSES, 0)
    by_type: dict[str, dict[str, int]] = {}
    for status, job_type, number in rows:
        by_status[status] = by_status.get(status, 0) + number
        counts = by_type.setdefault(job_type, {**dict.fromkeys(JOB_STATUSES, 0), "total": 0})
        counts[status] = counts.get(status, 0) + number
        counts["total"] += number
    ordered = {job_type: by_type[job_type] for job_type in sorted(by_type)}
    return {"total": sum(by_status.values()), "by_status": by_status, "by_type": ordered}


def cmd_stats(args: argparse.Namespace) -> int:
    with open_reader(args) as jobs:
        rows = jobs.stats()
    summary = stats_summary(rows)
    if args.json:
        print(render.to_json(summary))
        return EXIT_OK
    statuses = list(summary["by_status"])
    lines = [
        [job_type, *(counts[s] for s in statuses), counts["total"]]
        for job_type, counts in summary["by_type"].items()
    ]
    lines.append(["TOTAL", *summary["by_status"].values(), summary["total"]])
    right = range(1, len(statuses) + 2)
    print(render.table(["TYPE", *statuses, "TOTAL"], lines, right))
    return EXIT_OK
