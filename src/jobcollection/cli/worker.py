"""`jobcollection worker MODULE:FUNCTION --type T`: serve jobs until signalled.

The first SIGINT/SIGTERM shuts the queue down softly (running and queued jobs are finished);
a second one escalates to a hard shutdown: queued and running jobs are failed with "Worker
shutdown" and the process exits without waiting for worker code that is still running (it
cannot be interrupted; its later `done()` would be refused anyway).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..api._queue_options import QueueOptions
from ..api.collection import JobCollection
from ..api.queue import JobQueue
from ..engine.events import CallEvent
from ..errors import JobValidationError, ValidationError
from . import logs
from .errors import EXIT_OK, UsageError
from .status_line import StatusLine
from .target import describe, open_collection, remote

SHUTDOWN_ERROR = "Worker shutdown"
_M_ARENA_MAX = -8  # glibc's mallopt parameter number
_TICK = 0.25  # seconds between status-line refreshes


def load_worker(module_name: str, attribute: str) -> Callable[..., Any]:
    """Import `module_name` (the current directory first on sys.path) and get `attribute`."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    spec = f"{module_name}:{attribute}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise UsageError(f"{spec}: cannot import module {module_name!r}: {error}") from None
    except (Exception, SystemExit) as error:
        problem = f"{type(error).__name__}: {error}"
        raise UsageError(f"{spec}: importing module {module_name!r} failed: {problem}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"{spec}: module {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise UsageError(f"{spec}: not a function ({type(target).__name__})")
    return target  # type: ignore[no-any-return]


def queue_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `process_jobs` keyword options the user gave (the library defaults the rest)."""
    given = {
        "concurrency": args.concurrency,
        "payload": args.payload,
        "processes": args.processes,
        "poll_interval": args.poll_interval,
        "work_timeout": args.work_timeout,
        "lost_after": args.lost_after,
    }
    return {key: value for key, value in given.items() if value is not None}


def check_queue_options(types: list[str], fn: Callable[..., Any], options: dict[str, Any]) -> None:
    try:
        QueueOptions.build(types, fn, **options)
    except JobValidationError as error:
        name = (
            "MODULE:FUNCTION" if error.field == "worker" else "--" + error.field.replace("_", "-")
        )
        raise UsageError(f"{name}: {error.problem}") from None
    except ValidationError as error:
        raise UsageError(f"--type: {error}") from None


class Tracker:
    """Counts for the status line, from the collection's events (pool processes excluded;
    a remote collection has none: its calls are announced on the server)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0
        self.completed = 0
        self.failed = 0

    def attach(self, jc: JobCollection) -> list[Callable[[], None]]:
        return [
            jc.events("getWork", self._on_get_work),
            jc.events("jobDone", self._on_finish),
            jc.events("jobFail", self._on_finish),
        ]

    def _on_get_work(self, event: CallEvent) -> None:
        if event.error is None and isinstance(event.return_value, list):
            with self._lock:
                self.taken += len(event.return_value)

    def _on_finish(self, event: CallEvent) -> None:
        if event.error is not None or not event.return_value:
            return
        with self._lock:
            if event.method == "jobDone":
                self.completed += 1
            else:
                self.failed += 1

    def summary(self, queue: JobQueue, in_processes: bool, counted: bool = True) -> str:
        text = f"running {queue.running()}, queued {queue.length()}"
        if not counted:
            return text
        text += f", taken {self.taken}"
        if not in_processes:
            text += f", completed {self.completed}, failed {self.failed}"
        return text


class Signals:
    """Counts SIGINT/SIGTERM: `first` asks for a soft stop, `second` for a hard one."""

    def __init__(self) -> None:
        self.first = threading.Event()
        self.second = threading.Event()
        self.name = ""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.first.is_set():
            self.name = signal.Signals(signum).name
            self.first.set()
        else:
            self.second.set()


def _describe(args: argparse.Namespace, jc: JobCollection, options: dict[str, Any]) -> str:
    module, function = args.worker
    settings = ", ".join(f"{key.replace('_', '-')} {value}" for key, value in options.items())
    return (
        f"jobcollection worker: serving {', '.join(args.type)} with {module}:{function}"
        f" from {describe(args, jc)} (collection {jc.root!r}"
        f"{'; ' + settings if settings else ''})"
        " - SIGINT/SIGTERM finishes running jobs, a second one stops at once"
    )


def _hard_stop(queue: JobQueue, status: StatusLine) -> None:
    """Fail queued and running jobs now (the queue does it) and leave.

    Worker code stuck in a thread cannot be interrupted; if any is left, the process exits
    without joining it (`os._exit`); its later `done()` would be refused anyway.
    """
    status.quiet = True
    queue.shutdown("hard", quiet=True)
    status.say(f"jobcollection worker: stopped at once; unfinished jobs failed ({SHUTDOWN_ERROR})")
    stuck = [t for t in threading.enumerate() if t.name.startswith("jobcollection-worker")]
    if any(t.is_alive() for t in stuck):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena; a worker process with a
    thread per concurrency slot keeps megabytes of them mostly empty. Two are plenty here.
    (Like MALLOC_ARENA_MAX=2; has to happen before the worker threads start.)"""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas)


def cmd_worker(args: argparse.Namespace) -> int:
    limit_malloc_arenas()
    module, function = args.worker
    fn = load_worker(module, function)
    if args.processes or remote(args):  # jobs fail where the worker's events do not see
        fn = logs.reporting(fn, args.log_level)
    options = queue_options(args)
    check_queue_options(args.type, fn, options)
    signals = Signals()
    status = StatusLine(sys.stderr)
    logs.setup(args.log_level, status.say)
    # A worker may start before the first job is submitted: it creates the database. A
    # long-lived client's reconnects are news (not quiet).
    jc = open_collection(args, quiet=False, create=True)
    tracker = Tracker()
    try:
        tracker.attach(jc)
        if not (args.processes or remote(args)):
            logs.FailureLines().attach(jc)
        if not remote(args):  # a server runs its collections' job servers itself
            jc.start_job_server()
        queue = jc.process_jobs(args.type, fn, error_callback=status.report, **options)
    except BaseException:
        jc.close()
        raise
    print(_describe(args, jc, options), flush=True)
    in_processes, counted = bool(args.processes), not remote(args)
    while not signals.first.wait(_TICK):
        status.show(tracker.summary(queue, in_processes, counted))
    status.say(
        f"jobcollection worker: {signals.name}: finishing running jobs"
        " (send it again to stop at once)"
    )
    drained = threading.Event()

    def soft_shutdown() -> None:
        queue.shutdown("soft", quiet=True)
        drained.set()

    threading.Thread(target=soft_shutdown, name="jobcollection-cli-shutdown", daemon=True).start()
    while not drained.wait(0.05):
        if signals.second.is_set():
            _hard_stop(queue, status)
            break
        status.show("stopping: " + tracker.summary(queue, in_processes, counted))
    jc.close()
    status.say("jobcollection worker: stopped")
    return EXIT_OK
