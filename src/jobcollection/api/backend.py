"""The seam between a collection and where its jobs live: the `Backend` protocol.

`JobCollection`, `AsyncJobCollection`, `Job` and `JobQueue` reach their jobs through this
protocol alone. Two backends implement it:

- `LocalBackend` (`api/local_backend.py`): the engine over a database, in this process;
- `RemoteBackend` (`client/remote.py`): a `jobcollection serve` server, over DDP.

What only a collection on a database can do (allow/deny rules for remote callers, the call
log, events, the promote sweep, being served) is reached through `Backend.engine`, which a
remote backend declares as None: the type says where those things are, instead of a remote
attribute that raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..core.live import JobChange, JobDoc
from ..core.workers import WorkerRecord
from ._portal import Portal

if TYPE_CHECKING:
    from ..engine.manager import JobManager

Run = tuple[str, str, object]  # (job id, run id, result) of a completion


@dataclass(frozen=True)
class ChildSpec:
    """How a worker's pool process reaches its parent's collection (picklable).

    `opener` is a module-level function (pickled by name) that opens the backend in the child
    from this spec: the database at `url`, or the server at `url`, logged in with the
    parent's resume `token` (None: not logged in). The token is left out of equality, so a
    process keeps its connection when the parent's token is renewed."""

    url: str
    root: str
    opener: Callable[[ChildSpec], Backend]
    token: str | None = field(default=None, compare=False, repr=False)

    def open(self) -> Backend:
        return self.opener(self)


class Backend(Protocol):
    """What a collection needs from where its jobs live (see the module doc).

    Every blocking method may be called from any thread but the backend's own loop (see
    `portal`). The coroutine forms (`acall`, ...) run the operation on the caller's loop:
    natively on `portal`'s loop for a backend that has one (a remote client), else as the
    blocking call made right there (a local engine call takes microseconds).
    """

    @property
    def root(self) -> str:
        """The collection's name."""
        ...

    @property
    def url(self) -> str:
        """Where the jobs live: the database's URL, or the server's."""
        ...

    @property
    def lost_after(self) -> int:
        """The default heartbeat lapse (ms) of this collection's workers."""
        ...

    @property
    def engine(self) -> JobManager | None:
        """The engine in this process, for what only a collection on a database can do; None
        for a server's collection (its rules, call log, events and sweep are the server's)."""
        ...

    @property
    def portal(self) -> Portal | None:
        """The event loop this backend's coroutine forms belong on, which a blocking
        collection's queues then share; None: the backend has none (queues get their own)."""
        ...

    def now_ms(self) -> int:
        """The collection's clock."""
        ...

    # -- the job methods (the 16 DDP methods and the server's extras) ------------------------

    def call(
        self, method: str, params: Sequence[object] = (), *, worker_id: str | None = None
    ) -> Any:
        """Validate and run one method; `worker_id`: the registered local worker a `getWork`
        claims for (a server knows its connections' workers itself)."""
        ...

    async def acall(
        self, method: str, params: Sequence[object] = (), *, worker_id: str | None = None
    ) -> Any: ...

    # -- batches, each one transaction ------------------------------------------------------

    def save_many(self, docs: Sequence[object]) -> list[str | None]:
        """Save new jobs (validated first: a bad one saves nothing); their ids, in order."""
        ...

    def complete_many(self, runs: Sequence[Run]) -> list[bool | str]: ...

    async def acomplete_many(self, runs: Sequence[Run]) -> list[bool | str]: ...

    def complete_and_claim(
        self, runs: Sequence[Run], get_work: list[object] | None, *, worker_id: str | None = None
    ) -> tuple[list[bool | str], list[JobDoc]]:
        """Completions, then (with `getWork` params) the next claim."""
        ...

    async def acomplete_and_claim(
        self, runs: Sequence[Run], get_work: list[object] | None, *, worker_id: str | None = None
    ) -> tuple[list[bool | str], list[JobDoc]]: ...

    # -- reads ------------------------------------------------------------------------------

    def find(
        self,
        selector: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[JobDoc]: ...

    def count(self, selector: dict[str, Any] | None = None, at_most: int | None = None) -> int: ...

    def stats(self) -> list[tuple[str, str, int]]: ...

    # -- live -------------------------------------------------------------------------------

    def observe(
        self, selector: dict[str, Any] | None, callback: Callable[[JobChange], None]
    ) -> Callable[[], None]:
        """A live query: `added` for each matching job now, then every change (callbacks on a
        background thread). Returns a stop function."""
        ...

    def watch_ready(self, types: Sequence[str], callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) whenever a job of `types` becomes ready."""
        ...

    # -- the worker registry ----------------------------------------------------------------

    def register_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None:
        """A worker lives here until unregistered; `known_jobs` lists the running jobs it holds
        (a remote backend tells the server after a reconnect)."""
        ...

    async def aregister_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None: ...

    def unregister_worker(self, worker_id: str) -> None: ...

    async def aunregister_worker(self, worker_id: str) -> None: ...

    def workers(self) -> list[WorkerRecord]: ...

    # -- pool processes and life ------------------------------------------------------------

    def child_spec(self) -> ChildSpec:
        """How a worker's pool process reopens this collection (read per batch: a remote
        login's token may change)."""
        ...

    def begin_close(self) -> None:
        """The collection is closing (its queues stop next)."""
        ...

    def close(self) -> None: ...
