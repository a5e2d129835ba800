"""`jobcollection workers [--json]`: the worker registry — who works on the collection's jobs.

One row per worker: local queues (`jobcollection worker`, `process_jobs`) of every process on
the database, and remote workers (DDP connections of a `jobcollection serve`), with their
heartbeats. Also `--lost-after MS`, the option `worker` and `serve` share.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.constants import MAX_LOST_AFTER_MS, MIN_LOST_AFTER_MS
from . import render
from .errors import EXIT_OK
from .target import nothing_stored, open_collection

if TYPE_CHECKING:
    from ..core.workers import WorkerRecord

HEADERS = ("ID", "KIND", "STATUS", "TYPES", "CONC", "RUNNING", "WHERE", "USER", "STARTED", "SEEN")
RIGHT = (4, 5, 9)


def lost_after_ms(text: str) -> int:
    """`--lost-after MS`: a heartbeat lapse in ms."""
    stripped = text.strip()
    value = int(stripped) if stripped.isdigit() else None
    if value is None or not MIN_LOST_AFTER_MS <= value <= MAX_LOST_AFTER_MS:
        raise argparse.ArgumentTypeError(
            f"must be a number of ms from {MIN_LOST_AFTER_MS} to {MAX_LOST_AFTER_MS}, got {text!r}"
        )
    return value


LOST_AFTER_HELP = (
    "a worker silent this long is lost: its running jobs fail and are retried "
    "(default 30000; heartbeats go out every third of it)"
)


def add_parser(sub: Any, *, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    p = sub.add_parser(
        "workers",
        parents=list(parents),
        help="list the workers (queues and remote connections) with their heartbeats",
        description="List the collection's workers: the queues of every process on the "
        "database and the remote workers of its servers. A worker whose heartbeat stops for "
        "its lapse (LOST AFTER) is lost: its running jobs are failed and retried, and it stays "
        "listed as lost for an hour.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line (times in ms)")
    p.set_defaults(handler=cmd_workers)


def _where(worker: WorkerRecord) -> str:
    if worker.host is not None:
        return f"{worker.host}:{worker.pid}" if worker.pid is not None else worker.host
    return worker.address or "-"


def _ago(then: int, now: int) -> str:
    seconds = max(now - then, 0) / 1000
    return f"{seconds:.1f}s ago" if seconds < 100 else f"{seconds / 60:.0f}m ago"


def row(worker: WorkerRecord, now: int) -> list[object]:
    return [
        worker.id,
        worker.kind,
        worker.status,
        ",".join(worker.types) or "-",
        "-" if worker.concurrency is None else worker.concurrency,
        worker.running,
        _where(worker),
        worker.username or "-",
        render.iso(worker.started),
        _ago(worker.last_seen, now),
    ]


def cmd_workers(args: argparse.Namespace) -> int:
    workers: list[WorkerRecord] = []
    now = 0
    if not nothing_stored(args):
        with open_collection(args) as jc:
            workers = jc.workers()
            now = jc.now_ms()
    if args.json:
        for worker in workers:
            print(render.to_json(worker.to_wire()))
    elif workers:
        print(render.table(HEADERS, [row(w, now) for w in workers], RIGHT))
    else:
        print("no workers")
    return EXIT_OK
