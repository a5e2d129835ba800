"""The benchmark's command-line options, shared by `jobcollection bench` and
`python -m jobcollection.bench` (stdlib only: the CLI builds its parser from this without
loading the benchmark)."""

from __future__ import annotations

import argparse


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument(
        "--server",
        dest="server_figures",
        action="store_true",
        help="only the network figures: our server with DDP, node and Python clients",
    )
    parser.add_argument(
        "--backlog",
        type=positive,
        default=None,
        metavar="N",
        help="waiting jobs for the claim-time figure (default 1,000,000; --quick 100,000)",
    )
    parser.add_argument(
        "--enqueue-only",
        action="store_true",
        help="only the enqueue figures and the raw SQLite floor (~30 s)",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        default=None,
        help="measure on this PostgreSQL server (postgresql://...; each figure in a schema of "
        "its own, dropped after; with --server, the server's database); default: temporary "
        "SQLite files",
    )
    parser.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE")


def positive(text: str) -> int:
    """A whole number above 0."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, got {text!r}")
    return int(text)
