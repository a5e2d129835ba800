"""Logging for the long-running commands (`worker`, `serve`): `--log-level` and the one line a
worker writes per failed job (``job ID (TYPE) failed: <the error's first line>``), on stderr,
whether or not it is a terminal.

A collection on a database announces each `jobFail` as an event (`FailureLines`), whoever
failed the job: an exception, the worker's own `job.fail()`, a shutdown. The worker listens to
its own collection; in pool processes the wrapped worker function (`reporting`) listens to the
process' collection. A collection on a server announces its calls on the server, so there the
wrapper reports the exceptions of the worker function instead.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .render import to_json

if TYPE_CHECKING:
    from ..api.collection import JobCollection
    from ..engine.events import CallEvent

LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "warning"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
jobs_log = logging.getLogger("jobcollection.worker")


def add_option(parser: Any, warnings: str = "problems") -> None:
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=DEFAULT_LEVEL,
        help=f"what to log on stderr (default: warning: {warnings})",
    )


class _Say(logging.Handler):
    """Hands each formatted record to `write` (e.g. a status line that clears itself first)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__()
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record))
        except Exception:
            self.handleError(record)


def setup(level: str, write: Callable[[str], None] | None = None) -> None:
    """Log at `level` and above, on stderr (or through `write`), for every logger."""
    handler = logging.StreamHandler(sys.stderr) if write is None else _Say(write)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0] if text.strip() else "(no message)"


def error_line(error: object) -> str:
    """The first line of a failure as stored (``{"type", "value"}`` or any object)."""
    if isinstance(error, BaseException):
        return first_line(f"{type(error).__name__}: {error}")
    if isinstance(error, dict):
        value = error.get("value", error.get("message"))
        text = value if isinstance(value, str) else to_json(error)
        kind = error.get("type")
        return first_line(f"{kind}: {text}" if isinstance(kind, str) else text)
    return first_line(str(error))


def failed(job_id: object, job_type: object, error: object) -> None:
    jobs_log.warning("job %s (%s) failed: %s", job_id, job_type, error_line(error))


class FailureLines:
    """One line per job failed through a collection of this process, from its events. A job's
    type is learnt from the `getWork` that handed it out (or from `expect`) and forgotten when
    the job is done or failed."""

    def __init__(self) -> None:
        self._types: dict[str, str] = {}
        self._lock = threading.Lock()

    def attach(self, jc: JobCollection) -> list[Callable[[], None]]:
        return [
            jc.events("getWork", self._on_get_work),
            jc.events("jobDone", self._on_finish),
            jc.events("jobFail", self._on_finish),
        ]

    def expect(self, job_id: object, job_type: object) -> None:
        with self._lock:
            self._types[str(job_id)] = str(job_type)

    def _on_get_work(self, event: CallEvent) -> None:
        if event.error is None and isinstance(event.return_value, list):
            for doc in event.return_value:
                self.expect(doc.get("_id"), doc.get("type"))

    def _on_finish(self, event: CallEvent) -> None:
        job_id = str(event.params[0]) if event.params else "?"
        with self._lock:
            job_type = self._types.pop(job_id, "?")
        if event.method == "jobFail" and event.error is None and event.return_value:
            failed(job_id, job_type, event.params[2] if len(event.params) > 2 else None)


def announces_calls(jc: JobCollection) -> bool:
    """True if `jc` emits events for the calls made through it (a collection on a database;
    a server's collection announces them on the server)."""
    return jc.backend.engine is not None


_lines: dict[int, FailureLines | None] = {}  # per collection (a pool process keeps its one)
_lines_lock = threading.Lock()


def _lines_for(jc: JobCollection) -> FailureLines | None:
    with _lines_lock:
        if id(jc) not in _lines:
            lines = FailureLines() if announces_calls(jc) else None
            if lines is not None:
                lines.attach(jc)
            _lines[id(jc)] = lines
        return _lines[id(jc)]


def _jobs(work: Any) -> list[Any]:
    return work if isinstance(work, list) else [work]


def _before(work: Any) -> FailureLines | None:
    """Where the failures of `work` will be reported from: its collection's events (told the
    jobs' types now), or None (this wrapper reports its exceptions)."""
    jobs = _jobs(work)
    lines = _lines_for(jobs[0].collection) if jobs else None
    if lines is not None:
        for job in jobs:
            lines.expect(job.id, job.type)
    return lines


def _report(work: Any, error: BaseException) -> None:
    for job in _jobs(work):
        if not getattr(job, "finished", False):  # left to the queue, which fails it
            failed(job.id, job.type, error)


@dataclass(frozen=True)
class _Reporting:
    """A worker function whose failed jobs are reported (picklable, for pool processes, where
    it also sets up logging once)."""

    fn: Callable[..., Any]
    level: str

    def __call__(self, work: Any) -> Any:
        _setup_once(self.level)
        lines = _before(work)
        try:
            return self.fn(work)
        except Exception as error:
            if lines is None:
                _report(work, error)
            raise


@functools.cache
def _setup_once(level: str) -> None:
    if not logging.getLogger().handlers:  # a pool process: nothing set up yet
        setup(level)


def reporting(fn: Callable[..., Any], level: str) -> Callable[..., Any]:
    """`fn`, with its failed jobs reported: by its collection's events where it has them,
    else its exceptions (a coroutine function stays one)."""
    if not inspect.iscoroutinefunction(fn):
        return _Reporting(fn, level)

    async def run(work: Any) -> Any:
        lines = _before(work)
        try:
            return await fn(work)
        except Exception as error:
            if lines is None:
                _report(work, error)
            raise

    return run
