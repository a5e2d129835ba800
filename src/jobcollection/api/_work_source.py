"""What a queue needs from its collection, local or remote (`AsyncJobCollection` is one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..core.workers import WorkerRecord
from .backend import Backend
from .job import AsyncCollection, AsyncJob, Job, SyncCollection


class SyncWorkSource(SyncCollection, Protocol):
    """What a queue's worker threads need from the blocking twin of its collection."""

    def get_work(
        self,
        types: str | Sequence[str],
        max_jobs: int = 1,
        work_timeout: int | None = None,
        *,
        worker_id: str | None = None,
    ) -> list[Job]: ...

    def complete_and_claim(
        self,
        jobs: Sequence[Job],
        result: object,
        types: str | Sequence[str],
        max_jobs: int = 1,
        work_timeout: int | None = None,
        *,
        worker_id: str | None = None,
    ) -> list[Job]: ...


class WorkSource(AsyncCollection, Protocol):
    """What a queue needs from a collection (local or remote)."""

    @property
    def root(self) -> str: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def sync(self) -> SyncWorkSource: ...

    @property
    def lost_after(self) -> int: ...

    async def call(self, method: str, params: list[Any]) -> Any: ...

    async def get_work(
        self,
        types: str | Sequence[str],
        max_jobs: int = 1,
        work_timeout: int | None = None,
        *,
        worker_id: str | None = None,
    ) -> list[AsyncJob]: ...

    async def register_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None: ...

    async def unregister_worker(self, worker_id: str) -> None: ...

    def watch_ready(
        self, types: Sequence[str], callback: Callable[[], None]
    ) -> Callable[[], None]: ...
