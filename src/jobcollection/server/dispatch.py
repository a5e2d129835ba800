"""Remote calls of job methods: `<root>_<method>` names, permission checks, error mapping.

One dispatcher serves every transport (DDP sessions and the HTTP API), so both check the
same rules and report errors the same way. `call` and `call_many` block on storage; the
server awaits `call_async` and `call_many_async`, which run them on the database's lanes
(`storage_lanes.py`): writes and the worker registry on one thread, reads on another, so the
event loop never waits for a database lock.

While the server drains before a restart (`draining`), it hands out no work: `getWork`
answers ``[]`` (after its permission check) and `jobDoneAndGetWork` completes its runs but
claims nothing; every other call is served as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass

from ..core.constants import DDP_METHODS
from ..core.permissions import Caller
from ..core.wire import result_to_wire
from ..engine.manager import BATCHABLE_METHODS, JobManager
from .batch_methods import BATCH_METHODS, call_batch, done_and_get_work_many
from .connection_workers import REGISTRY_METHODS, ConnectionWorkers
from .meteor_error import MeteorError, as_meteor_error, not_authorized
from .read_methods import READ_METHODS  # for our own client; each checks its permissions
from .storage_lanes import Lane, Lanes

# Methods that only read: they run on the reads lane, so they go on while a write waits.
_READ_ONLY = frozenset({"getJob", "workers", *READ_METHODS})

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    manager: JobManager
    method: str  # the bare method name, e.g. "jobSave"


class Dispatcher:
    """The job methods of the served collections, by their DDP names."""

    def __init__(
        self, managers: Iterable[JobManager], workers: ConnectionWorkers | None = None
    ) -> None:
        self.managers: dict[str, JobManager] = {}
        self.routes: dict[str, Route] = {}
        self.workers = workers or ConnectionWorkers()  # the connections that work on jobs
        self.draining = False
        self.lanes = Lanes()
        for manager in managers:
            if manager.root in self.managers:
                raise ValueError(f"collection {manager.root!r} is served twice")
            self.managers[manager.root] = manager
            for method in (*DDP_METHODS, *BATCH_METHODS, *REGISTRY_METHODS, *READ_METHODS):
                self.routes[f"{manager.root}_{method}"] = Route(manager, method)

    def knows(self, name: str) -> bool:
        return name in self.routes

    def unknown(self, name: str) -> MeteorError:
        """404 for a method that is not served, saying which collections are."""
        served = ", ".join(self.managers) or "none"
        return MeteorError(
            404, f"Method '{name}' not found", f"this server serves collections: {served}"
        )

    def batch_key(self, name: str) -> str | None:
        """Consecutive calls with the same key may share one transaction (`call_many`): the
        job-writing methods of one collection. None: run this call on its own."""
        route = self.routes.get(name)
        if route is not None and route.method == "jobDoneAndGetWork":
            return f"{route.manager.root}\x00work"  # served together with its like only
        if route is None or route.method not in BATCHABLE_METHODS:
            return None
        return route.manager.root

    def call_many(
        self,
        calls: Sequence[tuple[str, list[object]]],
        caller: Caller,
        connection: object | None = None,
    ) -> list[tuple[bool, object]]:
        """Calls sharing one `batch_key`, as if made one by one, written in one transaction.

        Returns ``(True, wire result)`` or ``(False, MeteorError)`` per call.
        """
        first = self.routes.get(calls[0][0]) if calls else None
        if first is not None and first.method == "jobDoneAndGetWork":
            return self._work_many(
                first.manager, [params for _, params in calls], caller, connection
            )
        outcomes: list[tuple[bool, object]] = [(False, None)] * len(calls)
        allowed: list[tuple[int, str, list[object]]] = []
        managers = set()
        for index, (name, params) in enumerate(calls):
            route = self.routes.get(name)
            if route is None:
                outcomes[index] = (False, self.unknown(name))
            elif not route.manager.permissions.permits(caller, route.method, params):
                outcomes[index] = (False, not_authorized(caller, route.manager.root, route.method))
            elif self.draining and route.method == "getWork":
                outcomes[index] = (True, [])
            else:
                allowed.append((index, route.method, params))
                managers.add(route.manager)
        if not allowed:
            return outcomes
        if len(managers) != 1:
            raise ValueError("call_many: calls to several collections (see batch_key)")
        manager = managers.pop()
        refs = [self.workers.ref_for(connection, manager, m, p, caller) for _, m, p in allowed]
        worker = next((ref for ref in refs if ref is not None), None)
        try:
            results = manager.call_many(
                [(method, params) for _, method, params in allowed],
                user_id=caller.user_id,
                connection=connection,
                worker=worker,
            )
        except Exception as error:  # the calls that got this far share its failure
            failure = as_meteor_error(error)
            for index, _, _ in allowed:
                outcomes[index] = (False, failure)
            return outcomes
        finally:
            self.workers.settle(manager, worker, connection)
        for (index, method, _), (ok, value) in zip(allowed, results, strict=True):
            outcomes[index] = (
                (True, result_to_wire(method, value)) if ok else (False, as_meteor_error(value))
            )
        return outcomes

    def _work_many(
        self,
        manager: JobManager,
        calls: list[list[object]],
        caller: Caller,
        connection: object | None,
    ) -> list[tuple[bool, object]]:
        """A connection's queued `jobDoneAndGetWork`s (one `batch_key`), served together."""
        if self.draining:  # complete the runs, claim nothing
            calls = [[p[0], None, *p[2:]] if len(p) > 1 else p for p in calls]
        worker = self.workers.ref_for(connection, manager, "jobDoneAndGetWork", [], caller)
        try:
            answers = done_and_get_work_many(manager, calls, caller, worker)
        finally:
            self.workers.settle(manager, worker, connection)
        return [
            (False, as_meteor_error(value)) if isinstance(value, BaseException) else (ok, value)
            for ok, value in answers
        ]

    def call(
        self, name: str, params: list[object], caller: Caller, connection: object | None = None
    ) -> object:
        """Run a remote call; the result is wire-ready (times as EJSON dates) and every failure
        comes out as a :class:`MeteorError`.

        Permissions are checked before the params are looked at; a refusal writes nothing.
        """
        route = self.routes.get(name)
        if route is None:
            raise self.unknown(name)
        manager, method = route.manager, route.method
        read = READ_METHODS.get(method)
        if read is not None:
            try:
                return read(manager, params, caller)
            except Exception as error:
                raise as_meteor_error(error) from error
        if method in REGISTRY_METHODS:
            try:
                return self.workers.call(method, manager, params, caller, connection)
            except Exception as error:
                raise as_meteor_error(error) from error
        if self.draining and method == "jobDoneAndGetWork" and len(params) > 1:
            params = [params[0], None, *params[2:]]  # complete the runs, claim nothing
        worker = None
        try:
            if method in BATCH_METHODS:
                worker = self.workers.ref_for(connection, manager, method, params, caller)
                return call_batch(method, manager, params, caller, worker)
            if not manager.permissions.permits(caller, method, params):
                raise not_authorized(caller, manager.root, method)
            if self.draining and method == "getWork":
                return []
            worker = self.workers.ref_for(connection, manager, method, params, caller)
            result = manager.call(
                method, params, user_id=caller.user_id, connection=connection, worker=worker
            )
        except Exception as error:
            raise as_meteor_error(error) from error
        finally:
            self.workers.settle(manager, worker, connection)
        return result_to_wire(method, result)

    def connection_closed(self, connection: object) -> None:
        """A connection went away: the workers it hosted are left to reconnect or lapse (on
        the writes lane, after the calls it made; from the event loop, which does not wait)."""
        lanes = {id(m.storage): self.lanes.writes(m.storage) for m in self.managers.values()}
        for lane in lanes.values():
            _log_failure(lane.submit(self.workers.closed, connection))

    # -- off the event loop ------------------------------------------------------------------

    def lane_for(self, name: str) -> Lane:
        """Where a call runs: the reads or the writes lane of its collection's database."""
        route = self.routes[name]
        storage = route.manager.storage
        if route.method in _READ_ONLY:
            return self.lanes.reads(storage)
        return self.lanes.writes(storage)

    def call_async(
        self, name: str, params: list[object], caller: Caller, connection: object | None = None
    ) -> Awaitable[object]:
        """`call` on its lane (see the module doc)."""
        if name not in self.routes:
            raise self.unknown(name)
        return self.lane_for(name).run(self.call, name, params, caller, connection)

    def call_many_async(
        self,
        calls: Sequence[tuple[str, list[object]]],
        caller: Caller,
        connection: object | None = None,
    ) -> Awaitable[list[tuple[bool, object]]]:
        """`call_many` (calls sharing one `batch_key`: job writes) on the writes lane."""
        return self.lane_for(calls[0][0]).run(self.call_many, calls, caller, connection)

    async def running_on_connections(self) -> int:
        """How many jobs the workers of this server's open DDP connections are running (the
        worker registry knows which jobs each worker claimed; see `connection_workers.py`)."""
        total = 0
        for root, worker_ids in self.workers.hosted().items():
            manager = self.managers.get(root)
            if manager is not None:
                lane = self.lanes.reads(manager.storage)
                total += await lane.run(manager.running_count, worker_ids)
        return total

    def close(self) -> None:
        """End the lanes' threads (after what they were given)."""
        self.lanes.close()


def _log_failure(future: asyncio.Future[object]) -> None:
    def report(done: asyncio.Future[object]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("closing a connection's workers failed", exc_info=done.exception())

    future.add_done_callback(report)
