"""`LocalBackend`: the `Backend` of a collection on a database, the engine in this process."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ..core.live import JobChange, JobDoc
from ..core.workers import WorkerRecord, check_lost_after
from ..engine.clock import Clock
from ..engine.manager import JobManager
from ..engine.workers import WorkerRef
from ..storage import open_storage
from ..storage.port import Storage
from ._portal import Portal
from .backend import ChildSpec, Run

DB = str | os.PathLike[str] | Storage | None


class LocalBackend:
    """A thin adapter of `JobManager` to `Backend`: the engine runs where it is called."""

    portal: Portal | None = None  # engine calls need no loop: a blocking collection's own

    def __init__(self, engine: JobManager, *, owns_storage: bool = False) -> None:
        self.engine = engine
        self._owns_storage = owns_storage

    @property
    def root(self) -> str:
        return self.engine.root

    @property
    def url(self) -> str:
        return self.engine.url

    @property
    def lost_after(self) -> int:
        return self.engine.lost_after

    def now_ms(self) -> int:
        return self.engine.clock.now_ms()

    def call(
        self, method: str, params: Sequence[object] = (), *, worker_id: str | None = None
    ) -> Any:
        if worker_id is None:
            return self.engine.call(method, params)
        return self.engine.call(method, params, worker=WorkerRef(worker_id))

    async def acall(
        self, method: str, params: Sequence[object] = (), *, worker_id: str | None = None
    ) -> Any:
        return self.call(method, params, worker_id=worker_id)

    def save_many(self, docs: Sequence[object]) -> list[str | None]:
        return self.engine.save_many(docs)

    def complete_many(self, runs: Sequence[Run]) -> list[bool | str]:
        return self.engine.complete_many(runs)

    async def acomplete_many(self, runs: Sequence[Run]) -> list[bool | str]:
        return self.engine.complete_many(runs)

    def complete_and_claim(
        self, runs: Sequence[Run], get_work: list[object] | None, *, worker_id: str | None = None
    ) -> tuple[list[bool | str], list[JobDoc]]:
        worker = None if worker_id is None else WorkerRef(worker_id)
        return self.engine.complete_and_claim(runs, get_work, worker)

    async def acomplete_and_claim(
        self, runs: Sequence[Run], get_work: list[object] | None, *, worker_id: str | None = None
    ) -> tuple[list[bool | str], list[JobDoc]]:
        return self.complete_and_claim(runs, get_work, worker_id=worker_id)

    def find(
        self,
        selector: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[JobDoc]:
        return self.engine.find(selector, limit, newest_first=newest_first)

    def count(self, selector: dict[str, Any] | None = None, at_most: int | None = None) -> int:
        return self.engine.count(selector, at_most)

    def stats(self) -> list[tuple[str, str, int]]:
        return self.engine.stats()

    def observe(
        self, selector: dict[str, Any] | None, callback: Callable[[JobChange], None]
    ) -> Callable[[], None]:
        return self.engine.observe(selector, callback)

    def watch_ready(self, types: Sequence[str], callback: Callable[[], None]) -> Callable[[], None]:
        return self.engine.watch_ready(types, callback)

    def register_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None:
        """`known_jobs` is for reconnects, which a local collection never has."""
        self.engine.register_worker(record)

    async def aregister_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None:
        self.engine.register_worker(record)

    def unregister_worker(self, worker_id: str) -> None:
        self.engine.unregister_worker(worker_id)

    async def aunregister_worker(self, worker_id: str) -> None:
        self.engine.unregister_worker(worker_id)

    def workers(self) -> list[WorkerRecord]:
        return self.engine.workers()

    def child_spec(self) -> ChildSpec:
        return ChildSpec(self.url, self.root, open_child)

    def begin_close(self) -> None:
        self.engine.begin_close()

    def close(self) -> None:
        """Stop the engine's scheduler, and close the database if this backend opened it."""
        self.engine.close()
        if self._owns_storage:
            self.engine.storage.close()


def open_local(
    name: str, db: DB, clock: Clock | None = None, lost_after: int | timedelta | None = None
) -> LocalBackend:
    """The backend of collection `name` on `db` (a path or URL, opened and then owned; an open
    `Storage`, shared; None: in memory)."""
    lapse = None if lost_after is None else check_lost_after(lost_after)  # before opening
    if isinstance(db, str | os.PathLike) or db is None:
        backend = LocalBackend(JobManager(open_storage(db), name, clock=clock), owns_storage=True)
    else:
        backend = LocalBackend(JobManager(db, name, clock=clock))
    if lapse is not None:
        backend.engine.lost_after = lapse
    return backend


def open_child(spec: ChildSpec) -> LocalBackend:
    """A pool process' backend: the parent's database, its job server started (so that the
    child's `job.progress()` is accepted)."""
    backend = open_local(spec.root, spec.url)
    backend.call("startJobServer", [{}])
    return backend
