"""`jobcollection [--db URL | --server URL [--user NAME --password-env VAR | --token-env VAR]]
[--collection NAME] COMMAND ...`: the parser and the dispatch.

Exit codes: 0 done; 1 the command failed (unknown job id, database locked, corrupt or too new,
server unreachable, login refused); 2 bad arguments (nothing was written). Every error is one
line on stderr: `jobcollection: error: <what>: <problem>`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import __version__
from ..core.constants import JOB_RETRY_BACKOFF_METHODS, JOB_STATUSES
from ..errors import JobCollectionError, StorageError, ValidationError
from ..storage import ENV_VAR
from . import args as conv
from . import bench as bench_command
from . import db as db_command
from . import logs, target, users
from . import serve as serve_command
from . import workers as workers_command
from .errors import EXIT_FAILURE, EXIT_USAGE, CliError, UsageError

PROG = "jobcollection"
Handler = Callable[[argparse.Namespace], int]


def _lazy(module: str, name: str) -> Handler:
    """The handler `name` of command module `module`, imported when the command runs: a
    command loads only what it uses (`ls` needs neither the worker nor the network client)."""

    def handler(args: argparse.Namespace) -> int:
        command: Handler = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        return command(args)

    return handler


ACTION_HELP = {
    "cancel": "cancel running, ready, waiting or paused jobs, with their antecedents and "
    "dependents (as Job.cancel does)",
    "restart": "restart cancelled or failed jobs (one more run), with their antecedents and "
    "dependents (as Job.restart does)",
    "pause": "pause ready or waiting jobs",
    "resume": "resume paused jobs",
    "ready": "make waiting jobs ready now, even if delayed (dependencies must be done)",
    "remove": "delete completed, cancelled or failed jobs",
    "rerun": "run a completed job again, at once, as a new job",
}


def _tidy(message: str) -> str:
    """argparse's messages, shortened: `argument --x: ...` becomes `--x: ...`."""
    if message.startswith("argument COMMAND: invalid choice:"):
        choice = message.split("invalid choice:", 1)[1].split("(choose", 1)[0].strip()
        return f"COMMAND: unknown command {choice} (try {PROG} --help)"
    if message.startswith("argument "):
        message = message[len("argument ") :]
    if message == "the following arguments are required: COMMAND":
        return f"no command given (try {PROG} --help)"
    return message.replace("the following arguments are required", "missing required argument")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, so `main` can return 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(_tidy(message))


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--db and --collection: before the command (with defaults) or after it (without, so
    that the values given before are kept)."""
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None if top else argparse.SUPPRESS,
        help=(
            "SQLite file, sqlite:/// URL or postgresql:// URL "
            f"(default: ${ENV_VAR}, else ./jobcollection.db)"
        ),
    )
    parser.add_argument(
        "--collection",
        metavar="NAME",
        type=conv.non_empty,
        default="queue" if top else argparse.SUPPRESS,
        help="collection (root) name (default: queue)",
    )


def _server_options(parser: argparse.ArgumentParser, *, top: bool, login: bool = True) -> None:
    """--server (and how to log in to it), placed like `_global_options`. Commands that work
    on the database itself get --server alone, kept out of their help, so that they can
    refuse it clearly."""
    parser.add_argument(
        "--server",
        metavar="URL",
        type=conv.server_url,
        default=None if top else argparse.SUPPRESS,
        help="act through the server at URL (jobcollection serve) instead of opening --db"
        if login
        else argparse.SUPPRESS,
    )
    if not login:
        return
    parser.add_argument(
        "--user",
        metavar="NAME",
        dest="server_user",
        type=conv.non_empty,
        default=None if top else argparse.SUPPRESS,
        help="log in to --server as NAME (with --password-env)",
    )
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        dest="server_password_env",
        type=conv.non_empty,
        default=None if top else argparse.SUPPRESS,
        help="the environment variable holding --user's password",
    )
    parser.add_argument(
        "--token-env",
        metavar="VAR",
        dest="server_token_env",
        type=conv.non_empty,
        default=None if top else argparse.SUPPRESS,
        help="log in to --server with the resume token in environment variable VAR",
    )


def _add_submit(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "submit",
        parents=[common],
        help="save a new job and print its id",
        description="Save a new job and print its id. --retry-wait/--backoff without --retries "
        "retry forever; --repeat-wait/--cron without --repeats repeat forever (as Job.retry and "
        "Job.repeat do).",
    )
    p.add_argument("type", metavar="TYPE", type=conv.non_empty, help="job type")
    p.add_argument(
        "--data", metavar="JSON", type=conv.json_object, default={}, help="job data, a JSON object"
    )
    p.add_argument("--priority", metavar="P", type=conv.priority, help="name or integer")
    p.add_argument("--retries", metavar="N", type=conv.count, help="retries after a failure")
    p.add_argument("--retry-wait", metavar="MS", type=conv.count, help="wait before a retry")
    p.add_argument("--backoff", choices=JOB_RETRY_BACKOFF_METHODS, help="retry wait growth")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", metavar="MS", type=conv.count, help="run no sooner than in MS")
    when.add_argument(
        "--after",
        metavar="TIME",
        type=conv.time_ms,
        help="run no sooner than TIME: ISO 8601 (UTC if no offset) or ms since the epoch",
    )
    p.add_argument("--repeats", metavar="N", type=conv.count, help="repeat N times when done")
    plan = p.add_mutually_exclusive_group()
    plan.add_argument("--repeat-wait", metavar="MS", type=conv.count, help="wait between repeats")
    plan.add_argument("--cron", metavar="EXPR", help="repeat on a cron schedule (UTC)")
    p.add_argument(
        "--depends",
        metavar="ID",
        nargs="+",
        action="extend",
        default=[],
        help="run only after these jobs complete",
    )
    p.set_defaults(handler=_lazy("commands", "cmd_submit"))


def _add_queries(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    ls = sub.add_parser(
        "ls",
        parents=[common],
        help="list jobs, newest first",
        description="List jobs, the newest (last submitted) first. RUNS: the runs a job has "
        "had; RUNS LEFT: how many more it may get (its retries).",
    )
    ls.add_argument(
        "--status", metavar="S", nargs="+", action="extend", choices=JOB_STATUSES, default=[]
    )
    ls.add_argument("--type", metavar="T", nargs="+", action="extend", default=[])
    ls.add_argument("--limit", metavar="N", type=conv.positive, default=50, help="default 50")
    ls.add_argument("--oldest-first", action="store_true", help="the first submitted first")
    ls.add_argument("--json", action="store_true", help="one JSON document per line")
    ls.set_defaults(handler=_lazy("reads", "cmd_ls"))

    show = sub.add_parser("show", parents=[common], help="show one job with its log")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the document as JSON")
    show.set_defaults(handler=_lazy("reads", "cmd_show"))

    stats = sub.add_parser("stats", parents=[common], help="job counts per type and status")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=_lazy("reads", "cmd_stats"))


def _add_controls(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    for name, text in ACTION_HELP.items():
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.add_argument("ids", metavar="ID", nargs="+")
        p.set_defaults(handler=_lazy("commands", "cmd_control"))


def _add_worker(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "worker",
        parents=[common],
        help="run MODULE:FUNCTION on jobs until SIGINT/SIGTERM",
        description="Run MODULE:FUNCTION on jobs (the current directory is importable). The "
        "first SIGINT/SIGTERM finishes running and queued jobs, a second one fails them and "
        "stops at once.",
    )
    p.add_argument("worker", metavar="MODULE:FUNCTION", type=conv.worker_spec)
    p.add_argument(
        "--type",
        metavar="T",
        type=conv.non_empty,
        nargs="+",
        action="extend",
        required=True,
        help="job type(s) to serve",
    )
    p.add_argument(
        "--concurrency",
        metavar="N",
        type=conv.positive,
        help="jobs run at once (default: as many as --processes, else 1)",
    )
    p.add_argument("--payload", metavar="N", type=conv.positive, help="jobs per call (default 1)")
    p.add_argument("--processes", metavar="N", type=conv.positive, help="use N processes")
    p.add_argument("--poll-interval", metavar="MS", type=conv.count, help="0: no polling")
    p.add_argument("--work-timeout", metavar="MS", type=conv.positive)
    p.add_argument(
        "--lost-after",
        metavar="MS",
        type=workers_command.lost_after_ms,
        help=workers_command.LOST_AFTER_HELP,
    )
    logs.add_option(p, "problems and one line per failed job")
    p.set_defaults(handler=_lazy("worker", "cmd_worker"))


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Submit, inspect, control and work on jobcollection jobs.",
        epilog=f"Errors exit 2 (bad arguments) or 1 (failed). See '{PROG} COMMAND --help'.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _global_options(parser, top=True)
    _server_options(parser, top=True)
    common = Parser(add_help=False)
    _global_options(common, top=False)
    _server_options(common, top=False)
    local = Parser(add_help=False)  # users: the database itself (--server is refused)
    _global_options(local, top=False)
    _server_options(local, top=False, login=False)
    serve_only = Parser(add_help=False)
    _server_options(serve_only, top=False, login=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_submit(sub, common)
    _add_queries(sub, common)
    _add_controls(sub, common)
    _add_worker(sub, common)
    workers_command.add_parser(sub, parents=[common])
    users.add_parser(sub, parents=[local])
    db_command.add_parser(sub, parents=[local])
    serve_command.add_parser(sub, parents=[serve_only])
    bench_command.add_parser(sub)
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failed, 2 bad arguments)."""
    try:
        args = build_parser().parse_args(argv)
        target.check(args)
        handler: Handler = args.handler
        return handler(args)
    except CliError as error:
        _error(error.message)
        return error.code
    except ValidationError as error:
        _error(str(error))
        return EXIT_USAGE
    except StorageError as error:
        _error(f"database: {error}")
        return EXIT_FAILURE
    except JobCollectionError as error:
        _error(str(error))
        return EXIT_FAILURE
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `jobcollection ls | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
