"""The `jobcollection` command-line interface (argparse, stdlib only).

Modules: `main` (parser and dispatch), `args` (argument converters), `target` (the database or
`--server`: where commands open their collection), `commands` (submit, ls, show, control
commands, stats), `worker` (the long-running worker), `serve`, `users` and `bench`, `logs`
(`--log-level` and the worker's line per failed job), `render` (tables, times, JSON output)
and `errors` (the two exit-code carrying exceptions).
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
