"""JobQueue: fetches work and runs a worker with bounded concurrency (docs/jobs.md, "Workers").

`AsyncJobQueue` is the implementation, on an asyncio loop; `JobQueue` is its blocking facade,
driving it on a private loop thread. Besides polling, a queue is woken the moment a job of its
types becomes ready (the storage change feed), so an idle queue starts work within a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import BrokenExecutor, Executor, ThreadPoolExecutor
from typing import Any, Literal

from ..core.ids import random_id
from ..core.workers import WorkerRecord
from ..errors import ValidationError
from ._portal import Portal, running_on
from ._queue_options import QueueOptions
from ._runners import (
    call_worker,
    describe,
    ignore_interrupts,
    run_async,
    run_in_child,
    settle,
)
from ._work_source import WorkSource
from .job import AsyncJob, Job

log = logging.getLogger(__name__)
ShutdownLevel = Literal["soft", "normal", "hard"]
_SHUTDOWN_ERROR = "Worker shutdown"


class AsyncJobQueue:
    """Runs a worker on jobs of some types; create with `await AsyncJobQueue.start(...)`.

    A queue is a registered worker (`jc.workers()`): its jobs are claimed under its id, and
    its process keeps it alive; if the process dies, another one fails its running jobs once
    `lost_after` has passed without a heartbeat, and they are retried.
    """

    def __init__(self, source: WorkSource, options: QueueOptions, worker_id: str = "") -> None:
        self.options = options
        self.worker_id = worker_id or random_id()
        self._source = source
        self._loop = asyncio.get_running_loop()
        self._queue: deque[AsyncJob] = deque()
        # Jobs handed to the worker and not yet returned, by id (worker threads add to it).
        self._active: dict[str, dict[str, Any]] = {}
        self._active_lock = threading.Lock()
        self._running = 0
        self._paused = True
        self._stopping = False
        self._fetch_task: asyncio.Task[None] | None = None
        self._refetch = False
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._drained = asyncio.Event()
        self._hard = False
        self._wake_pending = False
        self._executor = self._make_executor()
        self._batch = options.payload > 1
        self._is_coroutine = inspect.iscoroutinefunction(options.worker)
        self._unwatch = source.watch_ready(options.types, self._wake_threadsafe)
        self._keeper: asyncio.Task[None] | None = None
        if options.work_timeout:
            self._keeper = self._loop.create_task(self._keep_alive(options.work_timeout))

    def _make_executor(self) -> Executor | None:
        if self.options.processes:
            # Imported here: the process-pool machinery costs memory every other queue spares.
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            return ProcessPoolExecutor(
                self.options.processes, mp_context=context, initializer=ignore_interrupts
            )
        if inspect.iscoroutinefunction(self.options.worker):
            return None
        return ThreadPoolExecutor(
            max(self.options.concurrency, 1), thread_name_prefix="jobcollection-worker"
        )

    @classmethod
    async def start(cls, source: WorkSource, options: QueueOptions) -> AsyncJobQueue:
        queue = cls(source, options)
        try:
            record = _record(queue.worker_id, source, options)
            await source.register_worker(record, queue.known_jobs)
        except BaseException:
            queue._release()
            raise
        queue.resume()
        return queue

    def known_jobs(self) -> list[str]:
        """The jobs this queue holds (claimed: queued or running; from any thread)."""
        with self._active_lock:
            held = list(self._active)
        return held + [str(job.id) for job in list(self._queue)]

    def _release(self) -> None:
        """Undo what the constructor started (a queue that could not register)."""
        self._unwatch()
        if self._keeper is not None:
            self._keeper.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- state -------------------------------------------------------------------------------

    def length(self) -> int:
        return len(self._queue)

    def running(self) -> int:
        return self._running

    def idle(self) -> bool:
        return not self._queue and not self._running

    def full(self) -> bool:
        return self._running == self.options.concurrency

    @property
    def paused(self) -> bool:
        return self._paused

    # -- control -----------------------------------------------------------------------------

    def pause(self) -> AsyncJobQueue:
        if not self._paused:
            self._paused = True
            self._stop_polling()
        return self

    def resume(self) -> AsyncJobQueue:
        if self._paused and not self._stopping:
            self._paused = False
            self._fetch()
            if self.options.poll_interval:
                self._poller = self._loop.create_task(self._poll())
            self._dispatch()
        return self

    def trigger(self) -> AsyncJobQueue:
        if not self._paused:
            self._fetch()
        return self

    def _wake_threadsafe(self) -> None:
        """Called when a job of our types became ready: from the storage's thread, or (a
        remote collection's doorbell) from our own loop, where waking costs no round trip
        through the loop's wake-up pipe."""
        if running_on(self._loop):
            self._wake()
        elif not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        if not self._stopping:
            self.trigger()

    def _stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        interval = (self.options.poll_interval or 0) / 1000
        while True:
            await asyncio.sleep(interval)
            self.trigger()

    # -- fetching and dispatching ------------------------------------------------------------

    def _fetch(self) -> None:
        if self._paused:
            return
        if self._fetch_task is not None:
            self._refetch = True  # something became ready while a getWork was out
            return
        o = self.options
        wanted = o.prefetch + o.payload * (o.concurrency - self._running) - len(self._queue)
        if wanted > 0 and not self._stopping:
            self._fetch_task = self._loop.create_task(self._get_work(wanted))

    async def _get_work(self, wanted: int) -> None:
        try:
            jobs = await self._source.get_work(
                self.options.types, wanted, self.options.work_timeout, worker_id=self.worker_id
            )
        except Exception as error:
            self.options.error_callback(f"Received error from getWork(): {error}")
            jobs = []
        finally:
            self._fetch_task = None
        if len(jobs) > wanted:
            self.options.error_callback(f"getWork() returned {len(jobs)} jobs, asked for {wanted}")
        self._queue.extend(jobs)
        if not self._stopping:
            self._dispatch()
        if self._refetch or len(jobs) == wanted:
            self._refetch = False
            self._fetch()

    def _dispatch(self) -> None:
        o = self.options
        while not self._paused and self._running < o.concurrency and self._queue:
            count = o.payload if self._batch else 1
            batch = [self._queue.popleft() for _ in range(min(count, len(self._queue)))]
            self._running += 1
            self._track(job.doc for job in batch)
            task = self._loop.create_task(self._invoke(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _invoke(self, batch: list[AsyncJob]) -> None:
        try:
            await self._run_worker(batch)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # never out of the task: it would stop the loop
            ids = ", ".join(str(job.id) for job in batch)
            self.options.error_callback(f"job {ids}: {describe(error)}")
        finally:
            self._running -= 1
            self._untrack(job.doc for job in batch)
            self._after_invocation()

    async def _run_worker(self, batch: list[AsyncJob]) -> None:
        fn, batch_mode = self.options.worker, self._batch
        if self._is_coroutine:
            for job in batch:
                job.strict = self.options.callback_strict
            self._report(await run_async(fn, batch, batch_mode))
        elif self.options.processes:
            await self._run_in_pool(batch)
        else:
            docs = [job.doc for job in batch]
            await self._loop.run_in_executor(self._executor, self._thread_slot, docs)

    async def _run_in_pool(self, batch: list[AsyncJob]) -> None:
        """Run a batch in a pool process, which settles it. A pool whose process died (killed,
        `os._exit`, out of memory) is broken for every batch it holds: those batches fail,
        and the next ones go to a new pool."""
        docs = [job.doc for job in batch]
        spec = self._source.backend.child_spec()  # per batch: a remote login's token may change
        pool = self._executor
        try:
            why, problems = await self._loop.run_in_executor(
                pool, run_in_child, self.options.worker, spec, docs, self._batch
            )
        except BrokenExecutor as error:  # BrokenProcessPool (imported only with a pool)
            if pool is not None and pool is self._executor and not self._stopping:
                pool.shutdown(wait=False, cancel_futures=True)
                self._executor = self._make_executor()
            why, problems = f"its pool process died ({error})", []
        self._report(problems)
        if why is not None:
            await self._fail(batch, why)

    def _report(self, problems: Iterable[str]) -> None:
        for problem in problems:
            self.options.error_callback(problem)

    def _report_threadsafe(self, problems: list[str]) -> None:
        if problems:
            self._loop.call_soon_threadsafe(self._report, problems)

    def _thread_slot(self, docs: list[dict[str, Any]]) -> None:
        """One concurrency slot, in a worker thread: run this batch, then, while the queue has
        nothing queued for it, claim and run the next batch right here — two thread hops per
        batch saved, and a local collection completes the batch and claims the next one in a
        single transaction. (With `prefetch`, batches come from the local queue as usual.)"""
        o, sync_jc = self.options, self._source.sync
        wanted, me = (o.payload if self._batch else 1), self.worker_id
        while docs:
            jobs = [Job(sync_jc, doc) for doc in docs]
            for job in jobs:
                job.strict = o.callback_strict
            try:
                ok, outcome = call_worker(o.worker, jobs, self._batch)
                pending = [job for job in jobs if not job.finished] if ok else []
                if any(job.unsent for job in jobs):  # settle() sends those again first
                    pending = []
                go_on = not (self._paused or self._stopping or self._queue or o.prefetch)
                claimed = None
                if go_on and pending:
                    try:
                        claimed = sync_jc.complete_and_claim(
                            pending, outcome, o.types, wanted, o.work_timeout, worker_id=me
                        )
                    except Exception as error:  # settle() below tries the completion again
                        for job in pending:
                            job.finished = False
                        if not isinstance(error, ValidationError):  # (one that cannot be stored)
                            ids = ", ".join(str(job.id) for job in pending)
                            self._report_threadsafe([f"job {ids}: {error}; sent again"])
                if claimed is None:
                    self._report_threadsafe(settle(jobs, ok, outcome))
                    claimed = (
                        sync_jc.get_work(o.types, wanted, o.work_timeout, worker_id=me)
                        if go_on
                        else []
                    )
            finally:
                self._untrack(docs)
            docs = [job.doc for job in claimed]
            self._track(docs)

    async def _keep_alive(self, work_timeout_ms: int) -> None:
        """With a work timeout, running jobs report their progress again every third of it,
        which renews their `expiresAfter`: only a dead worker's jobs time out."""
        while True:
            await asyncio.sleep(max(work_timeout_ms / 3000, 0.05))
            with self._active_lock:
                running = list(self._active.values())
            for doc in running:
                progress = doc.get("progress") or {}
                params = [
                    doc["_id"],
                    doc.get("runId"),
                    progress.get("completed", 0),
                    progress.get("total", 1),
                ]
                try:
                    await self._source.call("jobProgress", params)
                except Exception as error:  # e.g. a connection being re-established
                    log.debug("keep-alive of job %s failed: %s", doc["_id"], error)

    def _track(self, docs: Iterable[dict[str, Any]]) -> None:
        with self._active_lock:
            self._active.update((doc["_id"], doc) for doc in docs)

    def _untrack(self, docs: Iterable[dict[str, Any]]) -> None:
        with self._active_lock:
            for doc in docs:
                self._active.pop(doc["_id"], None)

    def _after_invocation(self) -> None:
        if self._stopping:
            if self._running == 0 and (self._paused or not self._queue):
                self._drained.set()
            elif not self._paused:
                self._dispatch()
            return
        self._dispatch()
        self._fetch()

    # -- shutdown ----------------------------------------------------------------------------

    async def shutdown(self, level: ShutdownLevel = "normal", quiet: bool = False) -> None:
        """Stop taking work; `soft` finishes queued work, `normal` fails it, `hard` also fails
        running jobs at once (their worker code is not interrupted). A `hard` call made while
        a gentler shutdown is still waiting escalates it."""
        if self._stopping:
            if level == "hard":
                await self._fail_now()
            await self._drained.wait()
            return
        self._stopping = True
        self._stop_polling()
        self._unwatch()
        if self._keeper is not None:
            self._keeper.cancel()
        if self._fetch_task is not None:
            with contextlib.suppress(Exception):
                await self._fetch_task
        if not quiet:
            log.info("%s queue shutting down (%s)", self.options.types, level)
        if level == "hard":
            await self._fail_now()
        elif level == "soft":
            self._dispatch()  # keeps going (unless paused)
            if self._running:  # nothing running when the wait begins: done at once
                await self._drained.wait()
        else:
            self._paused = True
            taken = self._take_queued()
            if self._running:
                await self._drained.wait()
            await self._fail(taken)
        self._drained.set()
        if self._executor is not None:
            self._executor.shutdown(wait=not self._hard, cancel_futures=True)
        try:
            await self._source.unregister_worker(self.worker_id)
        except Exception as error:  # its record then lapses (it has no running job left)
            self.options.error_callback(f"could not unregister worker {self.worker_id}: {error}")

    def _take_queued(self) -> list[AsyncJob]:
        taken = list(self._queue)
        self._queue.clear()
        return taken

    async def _fail_now(self) -> None:
        """Hard stop: fail queued and running jobs now; running worker code is left alone."""
        self._hard = True
        self._paused = True
        with self._active_lock:
            running = [AsyncJob(self._source, doc) for doc in self._active.values()]
        await self._fail(self._take_queued() + running)
        self._drained.set()

    async def _fail(self, jobs: list[AsyncJob], why: str = _SHUTDOWN_ERROR) -> None:
        for job in jobs:
            try:
                await job.fail(why)
            except Exception as error:
                self.options.error_callback(f"could not fail job {job.id} ({why}): {error}")


def _record(worker_id: str, source: WorkSource, options: QueueOptions) -> WorkerRecord:
    """The registry record of a queue starting now in this process."""
    now = source.now_ms()
    return WorkerRecord(
        id=worker_id,
        kind="local",
        status="active",
        types=tuple(options.types),
        started=now,
        last_seen=now,
        lost_after=options.lost_after or source.lost_after,
        host=socket.gethostname(),
        pid=os.getpid(),
        concurrency=options.concurrency,
    )


class JobQueue:
    """The blocking face of an `AsyncJobQueue` running on a private loop thread."""

    def __init__(self, portal: Portal, queue: AsyncJobQueue) -> None:
        self._portal = portal
        self._queue = queue

    def length(self) -> int:
        return self._queue.length()

    def running(self) -> int:
        return self._queue.running()

    def idle(self) -> bool:
        return self._queue.idle()

    def full(self) -> bool:
        return self._queue.full()

    def pause(self) -> JobQueue:
        self._portal.call(self._queue.pause)
        return self

    def resume(self) -> JobQueue:
        self._portal.call(self._queue.resume)
        return self

    def trigger(self) -> JobQueue:
        self._portal.call(self._queue.trigger)
        return self

    def shutdown(self, level: ShutdownLevel = "normal", quiet: bool = False) -> None:
        self._portal.run(self._queue.shutdown(level, quiet))

    @property
    def worker_id(self) -> str:
        """This queue's id in the worker registry (`jc.workers()`)."""
        return self._queue.worker_id
