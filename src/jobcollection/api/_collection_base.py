"""What `JobCollection` and `AsyncJobCollection` share: the backend, constants, plain queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ..core import constants
from ..core.live import JobChange, JobDoc
from ..core.params import to_duration_ms
from ..core.workers import WorkerRecord
from ..engine.events import CallEvent, LogStream
from ..engine.manager import JobManager
from ..errors import JobCollectionError
from . import _collection_flows as flows
from ._job_core import as_object
from .backend import Backend, Run
from .job import AsyncJob, Job

_SERVER_SIDE = "is configured on the server (jobcollection serve), not through a remote client"


def completion_runs(jobs: Sequence[Job] | Sequence[AsyncJob], result: object) -> list[Run]:
    """The (id, runId, result) runs completing ``jobs`` with one ``result``. They share one
    result object: the engine then sees at a glance that they complete in one statement."""
    value = as_object(result, {})
    return [(*job.run_key(), value) for job in jobs]


def completion_and_claim(
    jobs: Sequence[Job] | Sequence[AsyncJob],
    result: object,
    types: str | Sequence[str],
    max_jobs: int,
    work_timeout: int | None,
) -> tuple[list[Run], list[Any]]:
    """The engine arguments of `complete_and_claim`: (id, runId, result) runs, getWork params."""
    return completion_runs(jobs, result), flows.get_work_params(types, max_jobs, work_timeout)


class CollectionBase:
    """What both collections share: the backend, constants, queries that need no driving."""

    forever = constants.FOREVER
    forever_date = constants.FOREVER_DATE
    job_statuses = constants.JOB_STATUSES
    job_priorities = constants.JOB_PRIORITIES
    job_log_levels = constants.JOB_LOG_LEVELS
    job_retry_backoff_methods = constants.JOB_RETRY_BACKOFF_METHODS
    job_status_cancellable = constants.JOB_STATUS_CANCELLABLE
    job_status_pausable = constants.JOB_STATUS_PAUSABLE
    job_status_removable = constants.JOB_STATUS_REMOVABLE
    job_status_restartable = constants.JOB_STATUS_RESTARTABLE
    ddp_methods = constants.DDP_METHODS
    ddp_permission_levels = constants.DDP_PERMISSION_LEVELS

    backend: Backend

    @property
    def manager(self) -> JobManager:
        """The engine behind a collection on a database (what a server serves). A remote
        collection has none: JobCollectionError."""
        engine = self.backend.engine
        if engine is None:
            raise JobCollectionError(f"{self.root}: a remote collection has no local engine")
        return engine

    def _engine(self, what: str) -> JobManager:
        """The backend's engine, for what only a collection on a database has (`what`)."""
        engine = self.backend.engine
        if engine is None:
            raise JobCollectionError(f"{what} {_SERVER_SIDE}")
        return engine

    @property
    def root(self) -> str:
        return self.backend.root

    @property
    def db_url(self) -> str:
        return self.backend.url

    def now_ms(self) -> int:
        return self.backend.now_ms()

    @property
    def lost_after(self) -> int:
        """A worker's default heartbeat lapse in ms: after it, a silent worker's (or a
        disconnected remote worker's) running jobs are failed and retried."""
        return self.backend.lost_after

    def workers(self) -> list[WorkerRecord]:
        """The collection's workers (queues of every process sharing the database, remote
        connections of servers), oldest first: who, where, which types, how many jobs they
        run, when last seen; lost ones stay listed for an hour."""
        return list(self.backend.workers())

    def events(self, name: str, listener: Callable[[CallEvent], None]) -> Callable[[], None]:
        """Listen to `call`, `error` or a method name; returns a function that stops listening.
        A remote collection's calls are announced on its server: nothing is emitted here."""
        engine = self.backend.engine
        if engine is None:
            return lambda: None
        return engine.events.on(name, listener)

    def allow(self, **rules: object) -> None:
        """Let remote callers in: ``allow(admin=["alice"], worker="users", jobSave=fn)``.

        A rule is ``"anyone"``, ``"users"`` (any logged-in user), a list (or comma-separated
        string) of user names or ids, or a function ``(user_id, method, params) -> bool``.
        Names are the groups admin, manager, creator, worker or a method name. Rules add up;
        any matching deny beats every allow; server-side calls are never checked.
        """
        self._engine("allow/deny").permissions.allow(rules)

    def deny(self, **rules: object) -> None:
        """Refuse remote callers; same rule forms as :meth:`allow`, and deny beats allow."""
        self._engine("allow/deny").permissions.deny(rules)

    def set_log_stream(self, stream: LogStream) -> None:
        self._engine("the call log").set_log_stream(stream)

    def promote(self, interval: int | timedelta = constants.DEFAULT_PROMOTE_INTERVAL_MS) -> None:
        """Set the safety-net sweep interval (ms or timedelta) and sweep once now."""
        if isinstance(interval, timedelta):
            interval = to_duration_ms(interval, "interval")
        self._engine("promote").promote(interval)

    def stats(self) -> list[tuple[str, str, int]]:
        """(status, type, count) rows, sorted."""
        return self.backend.stats()

    def count(self, selector: dict[str, Any] | None = None, at_most: int | None = None) -> int:
        """How many jobs match the selector (as `find` takes it). With `at_most`, counting
        stops once that many were found — the answer is then `at_most` or more — so it stays
        cheap however many jobs match."""
        return self.backend.count(selector, at_most)

    def observe(
        self,
        selector: dict[str, Any] | None = None,
        *,
        added: Callable[[JobDoc], object] | None = None,
        changed: Callable[[JobDoc, tuple[str, ...]], object] | None = None,
        removed: Callable[[str], object] | None = None,
    ) -> Callable[[], None]:
        """Follow the jobs matching ``selector`` live: ``added(doc)`` for each now and for each
        that starts to match, ``changed(doc, fields)``, ``removed(job_id)`` when one stops
        matching or is removed. Callbacks run on a background thread. Returns a stop
        function."""

        def dispatch(change: JobChange) -> None:
            if change.kind == "added" and added is not None and change.doc is not None:
                added(change.doc)
            elif change.kind == "changed" and changed is not None and change.doc is not None:
                changed(change.doc, change.fields)
            elif change.kind == "removed" and removed is not None:
                removed(change.id)

        return self.backend.observe(selector, dispatch)

    def watch_ready(self, types: Sequence[str], callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) whenever a job of `types` becomes ready."""
        return self.backend.watch_ready(types, callback)
