"""`JobCollection` (blocking) and `AsyncJobCollection` (asyncio) on a local database.

Both stand on one `Backend` (api/backend.py): the engine over a database in this process
(`LocalBackend`), or a server over DDP (`jobcollection.connect`). Every operation goes through
`call(method, params)` exactly as a remote DDP call would (same validation, events and call
log), so `Job` works unchanged over the network transport too.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from queue import Empty, Queue
from typing import Any, Self, TypeVar

from ..core import constants
from ..core.live import JobChange, JobDoc
from ..core.workers import WorkerRecord
from ..engine.clock import Clock
from . import _collection_flows as flows
from ._collection_base import CollectionBase, completion_and_claim, completion_runs
from ._drive import adrive, drive
from ._portal import Portal
from ._queue_options import QueueOptions
from ._runners import WorkerFn
from .backend import Backend
from .job import AsyncJob, Job
from .local_backend import DB, open_local
from .queue import AsyncJobQueue, JobQueue

T = TypeVar("T")


class JobCollection(CollectionBase):
    """A job collection on a database, with blocking methods (thread-safe)."""

    def __init__(
        self,
        name: str = "queue",
        db: DB = None,
        *,
        clock: Clock | None = None,
        lost_after: int | timedelta | None = None,
        _backend: Backend | None = None,
    ) -> None:
        """`lost_after` (ms or timedelta, default 30 s): the heartbeat lapse of this
        collection's queues (see `process_jobs`) and of remote workers its server serves.
        (`_backend`: the collection stands on that one instead, see `jobcollection.connect`.)"""
        self.backend = open_local(name, db, clock, lost_after) if _backend is None else _backend
        self._portal: Portal | None = None
        self._owns_portal = True
        self._async: AsyncJobCollection | None = None
        self._queues: list[JobQueue] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: list[Any]) -> Any:
        return self.backend.call(method, params)

    def job(self, type_or_doc: str | JobDoc, data: object = None) -> Job:
        return Job(self, type_or_doc, data)

    def get_job(self, job_id: str, get_log: bool = False, get_failures: bool = False) -> Job | None:
        doc = drive(flows.get_job(job_id, get_log, get_failures), self.call)
        return None if doc is None else Job(self, doc)

    def get_jobs(
        self, ids: Sequence[str], get_log: bool = False, get_failures: bool = False
    ) -> list[Job]:
        return [Job(self, d) for d in drive(flows.get_jobs(ids, get_log, get_failures), self.call)]

    def get_work(
        self,
        types: str | Sequence[str],
        max_jobs: int = 1,
        work_timeout: int | None = None,
        *,
        worker_id: str | None = None,
    ) -> list[Job]:
        """Claim ready jobs. Without a registered `worker_id` (a queue's) only `work_timeout`
        brings the jobs back if this process dies while running them."""
        params = flows.get_work_params(types, max_jobs, work_timeout)
        return [Job(self, d) for d in self.backend.call("getWork", params, worker_id=worker_id)]

    def find(
        self,
        selector: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[Job]:
        """Jobs matching a selector on `_id`, `status`, `type` (a value or ``{"$in": [...]}``),
        in insertion order or newest first; read a chunk per short transaction."""
        docs = self.backend.find(selector, limit, newest_first=newest_first)
        return [Job(self, doc) for doc in docs]

    def find_one(self, selector: dict[str, Any] | None = None) -> Job | None:
        found = self.find(selector, limit=1)
        return found[0] if found else None

    def save_jobs(self, jobs: Sequence[Job]) -> list[str | None]:
        """Save many new jobs in one transaction; their ids, in order."""
        ids = self.backend.save_many([job.doc for job in jobs])
        for job, job_id in zip(jobs, ids, strict=True):
            if job_id:
                job.doc["_id"] = job_id
        return ids

    def complete_jobs(self, jobs: Sequence[Job], result: object = None) -> list[bool | str]:
        """Complete several running jobs with one result, in one transaction."""
        return self.backend.complete_many(completion_runs(jobs, result))

    def complete_and_claim(
        self,
        jobs: Sequence[Job],
        result: object,
        types: str | Sequence[str],
        max_jobs: int = 1,
        work_timeout: int | None = None,
        *,
        worker_id: str | None = None,
    ) -> list[Job]:
        """Complete `jobs` with `result` and claim new work, in one transaction."""
        runs, request = completion_and_claim(jobs, result, types, max_jobs, work_timeout)
        _, docs = self.backend.complete_and_claim(runs, request, worker_id=worker_id)
        return [Job(self, doc) for doc in docs]

    def register_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None:
        """Register a worker living in this process (a queue does at its start); it is kept
        alive until `unregister_worker`, and its claims (`get_work(worker_id=...)`) are
        rescued if the process dies. For `known_jobs`, see `AsyncJobCollection`."""
        self.backend.register_worker(record, known_jobs)

    def unregister_worker(self, worker_id: str) -> None:
        self.backend.unregister_worker(worker_id)

    def ready_jobs(
        self, ids: Sequence[str] | None = None, force: bool = False, time: Any = None
    ) -> bool:
        return drive(flows.bulk("jobReady", ids, flows.ready_options(time, force)), self.call)

    def pause_jobs(self, ids: Sequence[str]) -> bool:
        return drive(flows.bulk("jobPause", ids, {}), self.call)

    def resume_jobs(self, ids: Sequence[str]) -> bool:
        return drive(flows.bulk("jobResume", ids, {}), self.call)

    def cancel_jobs(
        self, ids: Sequence[str], antecedents: bool = True, dependents: bool = True
    ) -> bool:
        options = {"antecedents": antecedents, "dependents": dependents}
        return drive(flows.bulk("jobCancel", ids, options), self.call)

    def restart_jobs(
        self,
        ids: Sequence[str],
        retries: int = 1,
        until: Any = None,
        antecedents: bool = True,
        dependents: bool = True,
    ) -> bool:
        options = flows.restart_options(retries, until, antecedents, dependents)
        return drive(flows.bulk("jobRestart", ids, options), self.call)

    def remove_jobs(self, ids: Sequence[str]) -> bool:
        return drive(flows.bulk("jobRemove", ids, {}), self.call)

    def start_job_server(self) -> bool:
        return bool(drive(flows.simple("startJobServer", {}), self.call))

    def shutdown_job_server(
        self, timeout: int | timedelta = constants.DEFAULT_SHUTDOWN_TIMEOUT_MS
    ) -> bool:
        return bool(drive(flows.shutdown(timeout), self.call))

    def watch(
        self, selector: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Iterator[JobChange]:
        """``for change in jc.watch({"status": "failed"}):`` the live query of :meth:`observe`
        as a blocking iterator of `JobChange`; ends after ``timeout`` seconds without one."""
        changes: Queue[JobChange] = Queue()
        stop = self.backend.observe(selector, changes.put)
        try:
            while True:
                try:
                    yield changes.get(timeout=timeout)
                except Empty:
                    return
        finally:
            stop()

    def process_jobs(
        self, types: str | Sequence[str], worker: WorkerFn, **options: Any
    ) -> JobQueue:
        """Start a JobQueue running `worker` on jobs of `types` (see `QueueOptions`)."""
        settings = QueueOptions.build(types, worker, **options)
        if self._portal is None:
            # The portal loop serves only our queues, so engine calls may run on it directly:
            # a SQLite transaction takes well under a millisecond, a thread hop costs as much.
            # A remote collection's queues share its DDP client's loop, for the same reason.
            shared = self.backend.portal
            self._owns_portal = shared is None
            self._portal = shared or Portal(f"jobcollection-{self.root}")
            self._async = AsyncJobCollection(run_inline=True, _backend=self.backend, _sync=self)
        async_jc = self._async
        assert async_jc is not None

        async def start() -> AsyncJobQueue:
            return await AsyncJobQueue.start(async_jc, settings)

        queue = JobQueue(self._portal, self._portal.run(start()))
        self._queues.append(queue)
        return queue

    def close(self) -> None:
        """Stop queues (hard), then the backend: the scheduler and the database connection
        it opened, or the connection to the server."""
        self.backend.begin_close()
        for queue in self._queues:
            queue.shutdown("hard", quiet=True)
        if self._portal is not None and self._owns_portal:
            self._portal.close()
        if self._async is not None:
            self._async.executor.shutdown(wait=True)
        self.backend.close()


class AsyncJobCollection(CollectionBase):
    """The same collection with coroutine methods.

    Engine work runs on one helper thread, so the event loop never waits on the database;
    `run_inline=True` runs it on the loop instead (faster: no thread hop per call, at the cost
    of blocking the loop for each SQLite transaction, usually well under a millisecond).
    """

    def __init__(
        self,
        name: str = "queue",
        db: DB = None,
        *,
        clock: Clock | None = None,
        lost_after: int | timedelta | None = None,
        run_inline: bool = False,
        _backend: Backend | None = None,
        _sync: JobCollection | None = None,
    ) -> None:
        self.run_inline = run_inline
        self.backend = open_local(name, db, clock, lost_after) if _backend is None else _backend
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"jobcollection-{name}")
        self.sync = _sync or JobCollection(_backend=self.backend)
        self._queues: list[AsyncJobQueue] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # With `run_inline`, a backend operation runs on this loop through its coroutine form (a
    # remote backend's own: this is then its client's loop, see `JobCollection.process_jobs`;
    # a local one runs the engine call right here). Otherwise it runs on the helper thread.

    async def _off_loop(self, operation: Callable[[], T]) -> T:
        """A blocking backend operation, on the helper thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, operation)

    async def call(self, method: str, params: list[Any]) -> Any:
        if self.run_inline:
            return await self.backend.acall(method, params)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.backend.call, method, params)

    def job(self, type_or_doc: str | JobDoc, data: object = None) -> AsyncJob:
        return AsyncJob(self, type_or_doc, data)

    async def get_job(
        self, job_id: str, get_log: bool = False, get_failures: bool = False
    ) -> AsyncJob | None:
        doc = await adrive(flows.get_job(job_id, get_log, get_failures), self.call)
        return None if doc is None else AsyncJob(self, doc)

    async def get_jobs(
        self, ids: Sequence[str], get_log: bool = False, get_failures: bool = False
    ) -> list[AsyncJob]:
        docs = await adrive(flows.get_jobs(ids, get_log, get_failures), self.call)
        return [AsyncJob(self, d) for d in docs]

    async def get_work(
        self,
        types: str | Sequence[str],
        max_jobs: int = 1,
        work_timeout: int | None = None,
        *,
        worker_id: str | None = None,
    ) -> list[AsyncJob]:
        """Claim ready jobs (see `JobCollection.get_work`)."""
        params = flows.get_work_params(types, max_jobs, work_timeout)
        if self.run_inline:
            docs = await self.backend.acall("getWork", params, worker_id=worker_id)
        else:
            claim = functools.partial(self.backend.call, "getWork", params, worker_id=worker_id)
            docs = await self._off_loop(claim)
        return [AsyncJob(self, d) for d in docs]

    async def find(
        self,
        selector: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[AsyncJob]:
        find = functools.partial(self.backend.find, selector, limit, newest_first=newest_first)
        return [AsyncJob(self, doc) for doc in await self._off_loop(find)]

    async def find_one(self, selector: dict[str, Any] | None = None) -> AsyncJob | None:
        found = await self.find(selector, limit=1)
        return found[0] if found else None

    async def save_jobs(self, jobs: Sequence[AsyncJob]) -> list[str | None]:
        docs = [job.doc for job in jobs]
        ids = await self._off_loop(functools.partial(self.backend.save_many, docs))
        for job, job_id in zip(jobs, ids, strict=True):
            if job_id:
                job.doc["_id"] = job_id
        return ids

    async def complete_jobs(
        self, jobs: Sequence[AsyncJob], result: object = None
    ) -> list[bool | str]:
        """Complete several running jobs with one result, in one transaction."""
        runs = completion_runs(jobs, result)
        if self.run_inline:
            return await self.backend.acomplete_many(runs)
        return await self._off_loop(functools.partial(self.backend.complete_many, runs))

    async def complete_and_claim(
        self,
        jobs: Sequence[AsyncJob],
        result: object,
        types: str | Sequence[str],
        max_jobs: int = 1,
        work_timeout: int | None = None,
        *,
        worker_id: str | None = None,
    ) -> list[AsyncJob]:
        """Complete `jobs` with `result` and claim new work, in one transaction."""
        runs, request = completion_and_claim(jobs, result, types, max_jobs, work_timeout)
        backend = self.backend
        if self.run_inline:
            _, docs = await backend.acomplete_and_claim(runs, request, worker_id=worker_id)
        else:
            both = functools.partial(backend.complete_and_claim, runs, request, worker_id=worker_id)
            _, docs = await self._off_loop(both)
        return [AsyncJob(self, doc) for doc in docs]

    async def register_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None:
        """Register a worker living in this process (a queue does at its start); it is kept
        alive until `unregister_worker`. `known_jobs` tells a remote collection, after a
        reconnect, which running jobs the worker holds."""
        if self.run_inline:
            await self.backend.aregister_worker(record, known_jobs)
        else:
            await self._off_loop(
                functools.partial(self.backend.register_worker, record, known_jobs)
            )

    async def unregister_worker(self, worker_id: str) -> None:
        if self.run_inline:
            await self.backend.aunregister_worker(worker_id)
        else:
            await self._off_loop(functools.partial(self.backend.unregister_worker, worker_id))

    async def ready_jobs(
        self, ids: Sequence[str] | None = None, force: bool = False, time: Any = None
    ) -> bool:
        return await adrive(
            flows.bulk("jobReady", ids, flows.ready_options(time, force)), self.call
        )

    async def pause_jobs(self, ids: Sequence[str]) -> bool:
        return await adrive(flows.bulk("jobPause", ids, {}), self.call)

    async def resume_jobs(self, ids: Sequence[str]) -> bool:
        return await adrive(flows.bulk("jobResume", ids, {}), self.call)

    async def cancel_jobs(
        self, ids: Sequence[str], antecedents: bool = True, dependents: bool = True
    ) -> bool:
        options = {"antecedents": antecedents, "dependents": dependents}
        return await adrive(flows.bulk("jobCancel", ids, options), self.call)

    async def restart_jobs(
        self,
        ids: Sequence[str],
        retries: int = 1,
        until: Any = None,
        antecedents: bool = True,
        dependents: bool = True,
    ) -> bool:
        options = flows.restart_options(retries, until, antecedents, dependents)
        return await adrive(flows.bulk("jobRestart", ids, options), self.call)

    async def remove_jobs(self, ids: Sequence[str]) -> bool:
        return await adrive(flows.bulk("jobRemove", ids, {}), self.call)

    async def start_job_server(self) -> bool:
        return bool(await adrive(flows.simple("startJobServer", {}), self.call))

    async def shutdown_job_server(
        self, timeout: int | timedelta = constants.DEFAULT_SHUTDOWN_TIMEOUT_MS
    ) -> bool:
        return bool(await adrive(flows.shutdown(timeout), self.call))

    async def watch(
        self, selector: dict[str, Any] | None = None, timeout: float | None = None
    ) -> AsyncIterator[JobChange]:
        """``async for change in jc.watch({"status": "failed"})``: the live query of
        :meth:`observe` as an async iterator of `JobChange` (kind, id, doc, fields); ends
        after ``timeout`` seconds without one."""
        loop = asyncio.get_running_loop()
        changes: asyncio.Queue[JobChange] = asyncio.Queue()

        def deliver(change: JobChange) -> None:
            loop.call_soon_threadsafe(changes.put_nowait, change)

        stop = await self._off_loop(functools.partial(self.backend.observe, selector, deliver))
        try:
            while True:
                try:
                    yield await asyncio.wait_for(changes.get(), timeout)
                except TimeoutError:
                    return
        finally:
            stop()

    async def process_jobs(
        self, types: str | Sequence[str], worker: WorkerFn, **options: Any
    ) -> AsyncJobQueue:
        """Start a queue on the running loop (see `QueueOptions` for the options)."""
        queue = await AsyncJobQueue.start(self, QueueOptions.build(types, worker, **options))
        self._queues.append(queue)
        return queue

    async def close(self) -> None:
        self.backend.begin_close()
        for queue in self._queues:
            await queue.shutdown("hard", quiet=True)
        self.executor.shutdown(wait=True)
        self.backend.close()
