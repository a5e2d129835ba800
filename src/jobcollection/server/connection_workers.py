"""Remote workers: the DDP connections that work on jobs, registered as workers of a collection.

A connection becomes a worker of a collection with its first claim there (`getWork`, our
`jobDoneAndGetWork`): the claim's transaction stores its record (kind remote, the peer's
address, the user, the types it asked for), and the server keeps it alive while the
connection is open. When the connection closes, the record is left to lapse, so a worker
that reconnects in time finds its jobs still running: it finishes them on the new
connection, and one that reports on them (`jobProgress`, `jobLog`) takes them over.

Our Python client also says who it is, once per connection (`<root>_registerWorker`, an
addition the original's clients never call): a worker id it keeps across reconnects, host,
pid, types, concurrency and heartbeat lapse. A reconnected client thus keeps its record and
its jobs; whatever the connection claimed before it said so moves to that record.
`<root>_workers` lists the registry (for the admin and manager groups).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

from ..core.ids import random_id
from ..core.permissions import Caller
from ..core.workers import WorkerHello, WorkerRecord, parse_hello
from ..engine.manager import JobManager
from ..engine.workers import WorkerRef
from ..errors import ValidationError
from .meteor_error import Refused, not_authorized, not_logged_in

log = logging.getLogger(__name__)

# Calls that make a connection a worker (claims) or let it take over a lost worker's job.
_CLAIMS: Final = frozenset({"getWork", "jobDoneAndGetWork"})
_REPORTS: Final = frozenset({"jobProgress", "jobLog"})
_CLAIMS_AND_REPORTS: Final = _CLAIMS | _REPORTS
REGISTRY_METHODS: Final = ("registerWorker", "workers")
LIST_GROUPS: Final = ("admin", "manager")  # who may list workers (those who may list jobs)
_MAX_NOTED: Final = 100  # types listed in the record of a connection that did not say them
_MAX_TYPE_LENGTH: Final = 200


class DdpConnection(Protocol):
    """What the registry needs of a DDP session (an HTTP request is none)."""

    id: str
    client_address: str


def _ddp(connection: object) -> DdpConnection | None:
    """`connection` if it is a DDP session. (Checked by its attributes: `isinstance` with a
    runtime-checkable protocol costs ~9 µs, and this runs for every call.)"""
    if isinstance(getattr(connection, "id", None), str) and isinstance(
        getattr(connection, "client_address", None), str
    ):
        return connection  # type: ignore[return-value]
    return None


@dataclass(slots=True)
class _Membership:
    """One connection as a worker of one collection."""

    manager: JobManager
    ref: WorkerRef
    record: WorkerRecord
    identified: bool = False  # the client named its worker id (registerWorker)
    hosted: bool = False  # stored, and kept alive by this server
    types: set[str] = field(default_factory=set)


P = ParamSpec("P")
R = TypeVar("R")


def _locked(
    method: Callable[Concatenate[ConnectionWorkers, P], R],
) -> Callable[Concatenate[ConnectionWorkers, P], R]:
    def locked(self: ConnectionWorkers, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    locked.__doc__ = method.__doc__
    return locked


class ConnectionWorkers:
    """The registry's server side (see the module doc); one per `Server`, used on the
    threads that run its calls (`storage_lanes.py`), one at a time."""

    def __init__(self, lost_after: int | None = None) -> None:
        self.lost_after = lost_after  # None: each collection's own default
        self._lock = threading.RLock()  # a lane per database: calls of two may overlap
        self._members: dict[str, dict[str, _Membership]] = {}  # connection id -> root ->
        self._owners: dict[tuple[str, str], str] = {}  # (root, worker id) -> connection id

    # -- calls of the 16 methods and the batch ones ------------------------------------------

    @_locked
    def ref_for(
        self,
        connection: object,
        manager: JobManager,
        method: str,
        params: list[object],
        caller: Caller,
    ) -> WorkerRef | None:
        """The worker a DDP call is made for: claims always have one (registered with the
        first claim that gets a job); reports have one too, which registers only if it takes
        over a lost worker's job. None for every other call."""
        if method not in _CLAIMS_AND_REPORTS:
            return None
        connection = _ddp(connection)
        if connection is None:
            return None
        member = self._member(connection.id, manager.root)
        if member is None:
            anonymous = WorkerHello(random_id(), None, None, (), None, None)
            member = self._join(connection, manager, caller, anonymous)
        if method == "getWork":
            self._note_types(member, params[0] if params else None)
        return member.ref

    @_locked
    def settle(self, manager: JobManager, ref: WorkerRef | None, connection: object) -> None:
        """After a call: a connection the call registered is kept alive from now on."""
        connection = None if ref is None or not ref.enrolled else _ddp(connection)
        if ref is None or connection is None:
            return
        member = self._member(connection.id, manager.root)
        if member is None or member.ref is not ref or member.hosted:
            return
        ref.enroll = None
        member.hosted = True
        self._owners[(manager.root, ref.id)] = connection.id
        manager.keep_alive(member.record)

    @_locked
    def closed(self, connection: object) -> None:
        """The connection is gone: its records stay until they lapse (see the module doc)."""
        connection = _ddp(connection)
        if connection is None:
            return
        for root, member in self._members.pop(connection.id, {}).items():
            self._release(connection.id, root, member, keep=True)

    def hosted(self) -> dict[str, list[str]]:
        """The workers this server keeps alive for its open connections, by collection (a
        graceful stop waits for their running jobs)."""
        by_root: dict[str, list[str]] = {}
        for root, worker_id in list(self._owners):  # (a copy made at once, without the lock)
            by_root.setdefault(root, []).append(worker_id)
        return by_root

    # -- registerWorker, workers -------------------------------------------------------------

    def call(
        self,
        method: str,
        manager: JobManager,
        params: list[object],
        caller: Caller,
        connection: object,
    ) -> object:
        """`<root>_workers()` or `<root>_registerWorker(worker | null)`."""
        if method == "workers":
            if not manager.permissions.permits_under(LIST_GROUPS, caller, method, params):
                raise _not_listable(caller, manager.root)
            return [record.to_wire() for record in manager.workers()]
        return self._register(manager, params, caller, connection)

    @_locked
    def _register(
        self, manager: JobManager, params: list[object], caller: Caller, connection: object
    ) -> bool:
        # Permissions first, as for every method: the rules see a getWork of the types named.
        given = params[0] if params else None
        types = given.get("types", []) if isinstance(given, dict) else []
        if not manager.permissions.permits(caller, "getWork", [types, {}]):
            raise not_authorized(caller, manager.root, "getWork")
        if not params:
            raise ValidationError("registerWorker: expected [worker], an object (or null)")
        hello = None if given is None else parse_hello(given)
        connection = _ddp(connection)
        if connection is None:
            raise ValidationError("registerWorker: only a DDP connection can be a worker")
        before = self._member(connection.id, manager.root)
        if hello is None:  # the connection's queues stopped: it is no worker any more
            if before is not None:
                del self._members[connection.id][manager.root]
                self._release(connection.id, manager.root, before, keep=False)
            return True
        stored = next((w for w in manager.workers() if w.id == hello.worker_id), None)
        if stored is not None and stored.user_id != caller.user_id:
            raise ValidationError(
                f"registerWorker: worker.workerId {hello.worker_id!r} is another user's worker"
            )
        started = stored.started if stored is not None else None
        member = self._join(connection, manager, caller, hello, started)
        member.identified = member.hosted = True
        member.ref.enroll = None
        self._owners[(manager.root, hello.worker_id)] = connection.id
        moved = None
        if before is not None and before.hosted and before.ref.id != hello.worker_id:
            moved = before.ref.id  # what the connection claimed before it said who it is
            self._owners.pop((manager.root, moved), None)
        # After a reconnect the client lists the jobs it runs: the rest of this worker's
        # running jobs were claimed by calls whose replies were lost with the old connection.
        keep_only = hello.jobs if stored is not None else None
        manager.register_worker(member.record, moved_from=moved, keep_only=keep_only)
        return True

    # -- bookkeeping -------------------------------------------------------------------------

    def _member(self, connection_id: str, root: str) -> _Membership | None:
        return self._members.get(connection_id, {}).get(root)

    def _join(
        self,
        connection: DdpConnection,
        manager: JobManager,
        caller: Caller,
        hello: WorkerHello,
        started: int | None = None,
    ) -> _Membership:
        now = manager.clock.now_ms()
        record = WorkerRecord(
            id=hello.worker_id,
            kind="remote",
            status="active",
            types=hello.types,
            started=now if started is None else started,
            last_seen=now,
            lost_after=hello.lost_after or self.lost_after or manager.lost_after,
            host=hello.host,
            pid=hello.pid,
            concurrency=hello.concurrency,
            address=connection.client_address or None,
            user_id=caller.user_id,
            username=caller.username,
        )
        member = _Membership(manager, WorkerRef(hello.worker_id), record, types=set(hello.types))
        member.ref.enroll = self._enroller(member)
        self._members.setdefault(connection.id, {})[manager.root] = member
        return member

    @staticmethod
    def _enroller(member: _Membership) -> Callable[[int], WorkerRecord]:
        def enroll(now: int) -> WorkerRecord:
            member.record = replace(member.record, started=now, last_seen=now)
            return member.record

        return enroll

    @staticmethod
    def _note_types(member: _Membership, types: Any) -> None:
        """The record of a connection that did not say who it is lists the types it claims
        (the first `_MAX_NOTED` of them; a bad param is the claim's to refuse)."""
        listed = [types] if isinstance(types, str) else types
        if member.identified or not isinstance(listed, list | tuple):
            return
        wanted = {t for t in listed if isinstance(t, str) and 0 < len(t) <= _MAX_TYPE_LENGTH}
        wanted = set(list(wanted - member.types)[: _MAX_NOTED - len(member.types)])
        if not wanted:
            return
        member.types |= wanted
        member.record = replace(member.record, types=tuple(sorted(member.types)))
        if member.hosted:
            member.manager.register_worker(member.record)

    def _release(self, connection_id: str, root: str, member: _Membership, *, keep: bool) -> None:
        """Stop keeping a forgotten membership's record alive (`keep`: leave it to lapse, else
        remove it), unless another connection took the worker over."""
        worker_id = member.ref.id
        if not member.hosted or self._owners.get((root, worker_id)) != connection_id:
            return
        del self._owners[(root, worker_id)]
        try:
            member.manager.unregister_worker(worker_id, keep=keep)
        except Exception:  # the record then lapses, as a dead connection's would
            log.exception("%s: could not release worker %s", root, worker_id)


def _not_listable(caller: Caller, root: str) -> Refused:
    """The refusal of `<root>_workers`, naming the groups that may list (to one not logged
    in)."""
    if caller.user_id is not None:
        return not_authorized()
    details = not_logged_in(f"{root}_workers", LIST_GROUPS)
    return Refused("Method not authorized", details, anonymous=True)
