"""`Job` (blocking) and `AsyncJob` (coroutines): one-line forwarders over `JobCore` flows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from ._drive import adrive, drive
from ._job_core import CollectionLike, JobCore


class SyncCollection(CollectionLike, Protocol):
    def call(self, method: str, params: list[Any], /) -> Any: ...

    def complete_jobs(self, jobs: Sequence[Job], result: object = None) -> list[bool | str]: ...


class AsyncCollection(CollectionLike, Protocol):
    async def call(self, method: str, params: list[Any], /) -> Any: ...

    async def complete_jobs(
        self, jobs: Sequence[AsyncJob], result: object = None
    ) -> list[bool | str]: ...


class Job(JobCore):
    """A job of a blocking collection: `Job(jc, "type", {...}).retry(3).save()`."""

    _jc: SyncCollection

    @property
    def collection(self) -> SyncCollection:
        return self._jc

    def __init__(self, jc: SyncCollection, type_or_doc: str | dict[str, Any], data: object = None):
        super().__init__(jc, type_or_doc, data)

    def save(self, cancel_repeats: bool = False) -> str | None:
        return drive(self.save_flow(cancel_repeats), self._jc.call)

    def refresh(self, get_log: bool = False, get_failures: bool = False) -> bool:
        return drive(self.refresh_flow(get_log, get_failures), self._jc.call)

    def log(self, message: str, level: str = "info", data: dict[str, Any] | None = None) -> bool:
        return drive(self.log_flow(message, level, data), self._jc.call)

    def progress(self, completed: float, total: float = 100) -> bool:
        return drive(self.progress_flow(completed, total), self._jc.call)

    def done(
        self, result: object = None, repeat_id: bool = False, delay_deps: int | None = None
    ) -> bool | str:
        try:
            return drive(self.done_flow(result, repeat_id, delay_deps), self._jc.call)
        except Exception as failed:
            self._not_sent(failed, partial(self.done, result, repeat_id, delay_deps))
            raise

    def fail(self, error: object = None, fatal: bool = False) -> bool:
        try:
            return drive(self.fail_flow(error, fatal), self._jc.call)
        except Exception as failed:
            self._not_sent(failed, partial(self.fail, error, fatal))
            raise

    def pause(self) -> bool:
        return drive(self.pause_flow(), self._jc.call)

    def resume(self) -> bool:
        return drive(self.resume_flow(), self._jc.call)

    def ready(self, time: datetime | int | None = None, force: bool = False) -> bool:
        return drive(self.ready_flow(time, force), self._jc.call)

    def cancel(self, antecedents: bool = True, dependents: bool = True) -> bool:
        return drive(self.cancel_flow(antecedents, dependents), self._jc.call)

    def restart(
        self,
        retries: int = 1,
        until: datetime | int | None = None,
        antecedents: bool = True,
        dependents: bool = True,
    ) -> bool:
        return drive(self.restart_flow(retries, until, antecedents, dependents), self._jc.call)

    def rerun(
        self,
        repeats: int = 0,
        until: datetime | int | None = None,
        wait: timedelta | int | dict[str, Any] | None = None,
    ) -> str | bool | None:
        return drive(self.rerun_flow(repeats, until, wait), self._jc.call)

    def remove(self) -> bool:
        return drive(self.call_flow("jobRemove", {}), self._jc.call)


class AsyncJob(JobCore):
    """A job of an asyncio collection: the same methods as `Job`, as coroutines."""

    _jc: AsyncCollection

    @property
    def collection(self) -> AsyncCollection:
        return self._jc

    def __init__(self, jc: AsyncCollection, type_or_doc: str | dict[str, Any], data: object = None):
        super().__init__(jc, type_or_doc, data)

    async def save(self, cancel_repeats: bool = False) -> str | None:
        return await adrive(self.save_flow(cancel_repeats), self._jc.call)

    async def refresh(self, get_log: bool = False, get_failures: bool = False) -> bool:
        return await adrive(self.refresh_flow(get_log, get_failures), self._jc.call)

    async def log(
        self, message: str, level: str = "info", data: dict[str, Any] | None = None
    ) -> bool:
        return await adrive(self.log_flow(message, level, data), self._jc.call)

    async def progress(self, completed: float, total: float = 100) -> bool:
        return await adrive(self.progress_flow(completed, total), self._jc.call)

    async def done(
        self, result: object = None, repeat_id: bool = False, delay_deps: int | None = None
    ) -> bool | str:
        try:
            return await adrive(self.done_flow(result, repeat_id, delay_deps), self._jc.call)
        except Exception as failed:
            self._not_sent(failed, partial(self.done, result, repeat_id, delay_deps))
            raise

    async def fail(self, error: object = None, fatal: bool = False) -> bool:
        try:
            return await adrive(self.fail_flow(error, fatal), self._jc.call)
        except Exception as failed:
            self._not_sent(failed, partial(self.fail, error, fatal))
            raise

    async def pause(self) -> bool:
        return await adrive(self.pause_flow(), self._jc.call)

    async def resume(self) -> bool:
        return await adrive(self.resume_flow(), self._jc.call)

    async def ready(self, time: datetime | int | None = None, force: bool = False) -> bool:
        return await adrive(self.ready_flow(time, force), self._jc.call)

    async def cancel(self, antecedents: bool = True, dependents: bool = True) -> bool:
        return await adrive(self.cancel_flow(antecedents, dependents), self._jc.call)

    async def restart(
        self,
        retries: int = 1,
        until: datetime | int | None = None,
        antecedents: bool = True,
        dependents: bool = True,
    ) -> bool:
        return await adrive(
            self.restart_flow(retries, until, antecedents, dependents), self._jc.call
        )

    async def rerun(
        self,
        repeats: int = 0,
        until: datetime | int | None = None,
        wait: timedelta | int | dict[str, Any] | None = None,
    ) -> str | bool | None:
        return await adrive(self.rerun_flow(repeats, until, wait), self._jc.call)

    async def remove(self) -> bool:
        return await adrive(self.call_flow("jobRemove", {}), self._jc.call)
