"""`jobcollection bench`: our queue's benchmark (JSON on stdout); see `jobcollection.bench`."""

from __future__ import annotations

import argparse
from typing import Any

from ..bench.options import add_options
from .errors import EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="measure this machine: enqueue, processing, latency, claim time (JSON)",
        description="Measure the job queue on this machine, on temporary databases of its own "
        "(no --db, no --server URL), and print the figures as JSON: enqueue and processing "
        "rates, enqueue -> start latency, claim time beside a large backlog, worker memory; "
        "with --server, the network figures of `jobcollection serve` instead. A full run "
        "takes a few minutes; --quick is a smoke run.",
    )
    add_options(p)
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.report import run_and_emit  # loaded only when the command runs

    run_and_emit(args)
    return EXIT_OK
