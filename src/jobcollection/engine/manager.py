"""JobManager: one job collection's engine — validates, runs and announces each operation.

Every operation runs in one storage transaction. The manager owns the collection's server state
(stopped flag, shutdown deadline) and its scheduler; it is thread-safe, and the async API runs
it on a dedicated thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..core.constants import DEFAULT_LOST_AFTER_MS, DEFAULT_PROMOTE_INTERVAL_MS
from ..core.ids import random_id
from ..core.live import JobChange
from ..core.params import (
    GetJobParams,
    ShutdownParams,
    check_save_doc,
    in_batch,
    parse_params,
)
from ..core.permissions import Permissions
from ..core.storable import (
    ENCODING_ERRORS,
    naming_unstorable,
    unstorable_param,
)
from ..core.usual_job import UsualJob
from ..core.workers import WorkerRecord
from ..errors import JobCollectionError, ValidationError
from ..storage.port import JobDoc, Storage, UserStore
from . import _control, _work
from ._batches import (
    OPERATIONS,
    Completion,
    Operation,
    Outcome,
    random_ids,
    run_calls,
)
from ._claims import Claims
from ._combiner import Combiner
from ._context import Op
from ._liveness import Liveness, fail_orphans
from ._worker_loop import WorkerLoop
from .clock import Clock, SystemClock
from .events import CallEvent, CallLog, Events, LogStream
from .live import LiveQueries
from .reader import JobReader
from .scheduler import Scheduler
from .workers import WorkerRef

log = logging.getLogger(__name__)

_OPERATIONS = OPERATIONS
# Operations that need nothing but a write transaction: several may share one (call_many).
BATCHABLE_METHODS = frozenset(_OPERATIONS)
_START = ("startJobServer", "startJobs")
_SHUTDOWN = ("shutdownJobServer", "stopJobs")


class JobManager(WorkerLoop):
    """The engine of one collection (`root`) in one storage."""

    def __init__(
        self,
        storage: Storage,
        root: str = "queue",
        *,
        clock: Clock | None = None,
        id_factory: Callable[[], str] = random_id,
        scrub: Callable[[JobDoc], JobDoc] | None = None,
    ) -> None:
        if not isinstance(root, str) or not root or "\x00" in root:
            raise ValidationError("collection name must be a non-empty string without NUL")
        self.storage = storage
        self.reader = JobReader(storage, root)
        self.live = LiveQueries(storage, root, self.reader)  # publications, observe, doorbell
        self.root = root
        self.clock = clock or SystemClock()
        self.new_id = id_factory
        self.scrub = scrub
        self.stopped = True
        self.lost_after = DEFAULT_LOST_AFTER_MS  # workers' default heartbeat lapse (ms)
        self.events = Events()
        self.call_log = CallLog()
        self.permissions = Permissions()  # checked by the server for remote calls only
        self.liveness = Liveness(self)  # before the scheduler, whose thread tends it
        self.claims = Claims()  # what was claimed through this process (see _claims)
        self.scheduler = Scheduler(self, DEFAULT_PROMOTE_INTERVAL_MS)
        # Worker threads finishing batches at once share one transaction (see _combiner).
        self._combiner: Combiner[Completion, Outcome] = Combiner(self._complete_and_claim_all)

    # -- entry point -------------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: Sequence[object] = (),
        *,
        user_id: str | None = None,
        connection: object | None = None,
        worker: WorkerRef | None = None,
    ) -> Any:
        """Validate and run one method the way a DDP call would (no permission check);
        `worker`: whom a claim is recorded for, whose heartbeat then guards the jobs."""
        params = list(params)
        try:
            with naming_unstorable(lambda: unstorable_param(method, params)):
                result = self.execute(method, parse_params(method, params), worker)
        except JobCollectionError as error:
            if self._observed:
                self._announce("error", CallEvent(method, params, user_id, connection, error))
            raise
        if self._observed:
            self._announce("call", CallEvent(method, params, user_id, connection, None, result))
        return result

    def call_many(
        self,
        calls: Sequence[tuple[str, list[object]]],
        *,
        user_id: str | None = None,
        connection: object | None = None,
        worker: WorkerRef | None = None,
    ) -> list[tuple[bool, Any]]:
        """Several calls as if made one after another, their writes in ONE transaction.

        Returns ``(True, result)`` or ``(False, error)`` per call. The server uses this for
        calls a connection has queued (a remote worker's batch of `jobDone`s): one commit
        instead of one per call. Calls that need the server state (start/shutdown, getJob,
        getWork/jobProgress while stopped), or a batch that fails as a whole, run one by one.
        """
        if any(m not in _OPERATIONS for m, _ in calls) or (
            self.stopped and any(m in ("getWork", "jobProgress") for m, _ in calls)
        ):
            return [self._call_one(m, p, user_id, connection, worker) for m, p in calls]
        outcomes: list[tuple[bool, Any]] = [(False, None)] * len(calls)
        runnable: list[tuple[int, str, Any]] = []
        for index, (method, params) in enumerate(calls):
            try:
                runnable.append((index, method, parse_params(method, params)))
            except JobCollectionError as error:
                outcomes[index] = (False, error)

        def serve(op: Op, _: object) -> list[Any]:
            op.in_steps = len(runnable) == 1  # several calls: one transaction, as promised
            return run_calls(op, [(method, parsed) for _, method, parsed in runnable])

        try:
            values = self.run(serve, None, worker) if runnable else []
        except (JobCollectionError, *ENCODING_ERRORS):
            # Nothing was written: let each call meet its own fate (a value that cannot be
            # stored fails only the call that carries it).
            return [self._call_one(m, p, user_id, connection, worker) for m, p in calls]
        for (index, method, _), value in zip(runnable, values, strict=True):
            outcomes[index] = (True, self._scrubbed(value) if method == "getWork" else value)
        if self._observed:
            for (method, params), (ok, value) in zip(calls, outcomes, strict=True):
                kind, failure, result = ("call", None, value) if ok else ("error", value, None)
                event = CallEvent(method, params, user_id, connection, failure, result)
                self._announce(kind, event)
        return outcomes

    def _call_one(
        self,
        method: str,
        params: list[object],
        user_id: str | None,
        connection: object | None,
        worker: WorkerRef | None,
    ) -> tuple[bool, Any]:
        try:
            return True, self.call(
                method, params, user_id=user_id, connection=connection, worker=worker
            )
        except JobCollectionError as error:
            return False, error

    @property
    def _observed(self) -> bool:
        """Whether anyone listens: events are only built when they will be delivered."""
        return self.call_log.stream is not None or self.events.active

    def _announce(self, kind: str, event: CallEvent) -> None:
        if self.call_log.stream is not None:
            self.call_log.record(event)
        if self.events.active:
            self.events.emit(kind, event)
            self.events.emit(event.method, event)

    def execute(self, method: str, parsed: Any, worker: WorkerRef | None = None) -> Any:
        """Run an already-validated operation (for `worker`, see `call`)."""
        if method in _START:
            return self.start()
        if method in _SHUTDOWN:
            assert isinstance(parsed, ShutdownParams)
            return self.shutdown(parsed.timeout)
        if method == "getJob":
            assert isinstance(parsed, GetJobParams)
            found = self.reader.get(
                parsed.ids[0] if parsed.single else parsed.ids,
                get_log=parsed.get_log,
                get_failures=parsed.get_failures,
            )
            return self._scrubbed(found)
        if self.stopped and method in ("getWork", "jobProgress"):
            return [] if method == "getWork" else None
        result = self.run(_OPERATIONS[method], parsed, worker)
        return self._scrubbed(result) if method == "getWork" else result

    def run(self, operation: Operation, parsed: Any, worker: WorkerRef | None = None) -> Any:
        """Run one operation in a write transaction and pass its wake-up times on."""
        op: Op | None = None
        try:
            with self.storage.write(self.root) as tx:
                op = Op(tx, self.clock.now_ms(), self.new_id, worker=worker)
                result = operation(op, parsed)
        except BaseException:
            if op is not None and op.claimed and self.claims.unknown(op.claimed):
                self.scheduler.wake_at(self.clock.now_ms())  # the next sweep gives them back
            raise
        if op.claimed:
            self.claims.record(op.claimed)
        for ref in op.enrolled:
            ref.enrolled = True
        for when in op.wakeups:
            self.scheduler.wake_at(when)
        return result

    def save_many(self, docs: Sequence[object]) -> list[str | None]:
        """Save many new jobs in one transaction; all are validated before anything is written.

        Each document is checked as `jobSave` checks it (same errors, naming `doc.<field>`),
        without building the per-call params of `parse_params`. The usual new job (see
        `_control.new_ready_candidate`) is not even copied: its values go to storage as a row.
        """
        checked: list[JobDoc | UsualJob] = []
        for number, doc in enumerate(docs):
            values = _control.new_ready_candidate(doc)
            if values is not None:
                checked.append(values)
                continue
            try:
                valid = check_save_doc(doc)
            except ValidationError as error:
                raise in_batch(error, number) from error
            if valid.get("_id") is not None:
                raise ValidationError(f"jobs[{number}] is already saved ({valid['_id']})")
            checked.append(valid)
        new_id = self._ids_for(len(checked))
        with naming_unstorable(lambda: unstorable_param("jobSaveMany", [list(docs)])):
            return list(self.run(lambda op, jobs: _control.save_many(op, jobs, new_id), checked))

    def _ids_for(self, count: int) -> Callable[[], str]:
        """The id factory for a batch: the default one draws all `count` ids in one urandom
        read (a read costs as much as the rest of an id); an injected factory is kept."""
        if self.new_id is not random_id or count < 2:
            return self.new_id
        pool = random_ids(count)
        return lambda: pool.pop() if pool else random_id()

    def _scrubbed(self, found: Any) -> Any:
        if self.scrub is None or found is None:
            return found
        if isinstance(found, list):
            return [self.scrub(doc) for doc in found]
        return self.scrub(found)

    # -- job server --------------------------------------------------------------------------

    def start(self) -> bool:
        self.stopped = False
        self.scheduler.set_shutdown(None)
        self.scheduler.poke()
        return True

    def shutdown(self, timeout_ms: int) -> bool:
        self.stopped = True
        self.scheduler.set_shutdown(self.clock.now_ms() + timeout_ms)
        return True

    def finish_shutdown(self) -> None:
        """The shutdown deadline passed: fail what still runs, close the call log."""
        hosted = self.liveness.hosted

        def fail_running(op: Op, _: object) -> int:
            return _work.fail_all_running(op, self.claims.running_here(op, hosted))

        count = self.run(fail_running, None)
        if count:
            log.warning("%s: failed %d running jobs at job server shutdown", self.root, count)
        self.call_log.close()

    def promote(self, interval_ms: int = DEFAULT_PROMOTE_INTERVAL_MS) -> None:
        """Set the safety-net sweep interval and sweep once now."""
        if not isinstance(interval_ms, int) or isinstance(interval_ms, bool) or interval_ms <= 0:
            log.warning("promote(%r) ignored: the interval must be a positive integer", interval_ms)
            return
        self.scheduler.set_interval(interval_ms)

    def sweep(self) -> None:
        """Fail expired runs, then promote every due waiting job."""
        if self.stopped:
            return

        hosted = self.liveness.hosted

        def both(op: Op, _: object) -> set[str]:
            given, run_ids = self.claims.give_back_unknown(op)  # first: they never ran
            if given:
                log.warning("%s: %d jobs claimed by calls that failed given back", self.root, given)
            _work.fail_expired(op)
            fail_orphans(op)
            self.claims.prune(op, hosted)
            _control.ready(op, [])
            return run_ids

        self.claims.forget(self.run(both, None))

    def next_wakeup(self) -> int | None:
        with self.storage.read(self.root) as tx:
            return tx.next_wakeup()

    def set_log_stream(self, stream: LogStream) -> None:
        self.call_log.set(stream)

    # -- the worker registry ----------------------------------------------------------------

    def register_worker(
        self,
        record: WorkerRecord,
        *,
        moved_from: str | None = None,
        keep_only: frozenset[str] | None = None,
    ) -> None:
        """Store a worker that lives in this process and keep it alive until unregistered
        (the running jobs of worker `moved_from` become its own, and that worker goes; with
        `keep_only`, its running jobs but those are failed: see `Liveness.host`)."""
        self.liveness.host(record, store=True, moved_from=moved_from, keep_only=keep_only)

    def keep_alive(self, record: WorkerRecord) -> None:
        """Keep alive a worker whose record a call already stored (`WorkerRef.enroll`)."""
        self.liveness.host(record, store=False)

    def unregister_worker(self, worker_id: str, *, keep: bool = False) -> None:
        """Stop keeping a worker alive: its record goes (a graceful stop), or with `keep` it
        stays until it lapses (a remote worker that may reconnect for its running jobs)."""
        self.liveness.unhost(worker_id, keep=keep)

    def running_count(self, worker_ids: Sequence[str]) -> int:
        """How many jobs these workers are running now."""
        if not worker_ids:
            return 0
        with self.storage.read(self.root) as tx:
            return len(tx.running_of(worker_ids))

    def workers(self) -> list[WorkerRecord]:
        """The collection's workers (of every process), oldest first."""
        with self.storage.read(self.root) as tx:
            return tx.workers()

    # -- queries for the Python API -----------------------------------------------------------

    def find(
        self,
        selector: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[JobDoc]:
        """See `JobReader.find`."""
        return self.reader.find(selector, limit, newest_first=newest_first)

    def read_chunks(
        self, selector: dict[str, Any] | None = None, *, with_logs: bool = False
    ) -> Iterator[list[JobDoc]]:
        """See `JobReader.read_chunks`."""
        return self.reader.read_chunks(selector, with_logs=with_logs)

    def find_page(
        self,
        selector: dict[str, Any] | None = None,
        *,
        after: int | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> tuple[list[JobDoc], int | None]:
        """See `JobReader.find_page`."""
        return self.reader.find_page(selector, after=after, limit=limit, newest_first=newest_first)

    def count(self, selector: dict[str, Any] | None = None, at_most: int | None = None) -> int:
        """See `JobReader.count`."""
        return self.reader.count(selector, at_most)

    @property
    def users(self) -> UserStore:
        """The accounts kept in the collection's database."""
        return self.storage.users

    @property
    def url(self) -> str:
        """Where the jobs live (the storage's URL)."""
        return self.storage.url

    def watch_ready(self, types: Sequence[str], callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) whenever a job of `types` becomes ready; returns a
        function that stops watching."""
        return self.live.on_ready(types, callback)

    def observe(
        self, selector: dict[str, Any] | None, callback: Callable[[JobChange], None]
    ) -> Callable[[], None]:
        """A live query (`LiveQueries.observe`): ``callback`` gets `added` for every matching
        job now, then every change (from the live-query thread; changes by other processes
        too). Returns a stop function."""
        return self.live.observe(selector, callback)

    def stats(self) -> list[tuple[str, str, int]]:
        """See `JobReader.stats`."""
        return self.reader.stats()

    def begin_close(self) -> None:
        """Called before the collection's queues stop (nothing to prepare locally)."""

    def close(self) -> None:
        self.live.close()
        self.scheduler.stop()
