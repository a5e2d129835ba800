"""The worker registry's record: who works on a collection's jobs, from where, and since when.

Every worker (a local queue, a remote DDP connection) has a record while it lives. The process
hosting it renews `last_seen` every third of `lost_after`; a record that is not renewed for
`lost_after` ms marks a lost worker, whose running jobs are failed and retried. Times are
integer ms since the epoch, as in job documents. Pure: standard library, `errors` and `core`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any, Final, Literal

from ..errors import JobValidationError
from .constants import MAX_LOST_AFTER_MS, MIN_LOST_AFTER_MS
from .document import check_id, check_integer, check_string, show, to_duration_ms

WorkerKind = Literal["local", "remote"]
WorkerStatus = Literal["active", "disconnected", "lost"]

LOST_KEPT_MS: Final = 3600 * 1000  # a lost worker's record is kept this long, then forgotten
WORKER_LOST: Final = "Worker lost"  # the failure value of a lost worker's jobs


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One worker of one collection (see the module doc).

    `kind` is `local` (a queue in a process sharing the database) or `remote` (a DDP
    connection to a server). `status` is `active` while its host renews it, `disconnected`
    when a remote worker's connection closed (its jobs are kept until `lost_after` passes,
    so that it may reconnect and finish them) and `lost` once its jobs were failed. `running`
    is the number of running jobs it claimed (filled in by queries, never stored).
    """

    id: str
    kind: WorkerKind
    status: WorkerStatus
    types: tuple[str, ...]
    started: int
    last_seen: int
    lost_after: int
    host: str | None = None
    pid: int | None = None
    concurrency: int | None = None
    address: str | None = None
    user_id: str | None = None
    username: str | None = None
    running: int = field(default=0, compare=False)

    @property
    def expires(self) -> int:
        """When the worker counts as lost unless it is seen again."""
        return self.last_seen + self.lost_after

    def seen(self, now: int) -> WorkerRecord:
        return replace(self, last_seen=now, status="active")

    def to_wire(self) -> dict[str, Any]:
        """The record as sent to remote clients and printed as JSON (camelCase keys)."""
        return {_WIRE_KEYS.get(key, key): value for key, value in asdict(self).items()}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> WorkerRecord:
        values: dict[str, Any] = {key: wire.get(_WIRE_KEYS.get(key, key)) for key in _FIELDS}
        values["types"] = tuple(values["types"] or ())
        values["running"] = values["running"] or 0
        return cls(**values)


_WIRE_KEYS: Final = {
    "last_seen": "lastSeen",
    "lost_after": "lostAfter",
    "user_id": "userId",
}
_FIELDS: Final = WorkerRecord.__dataclass_fields__.keys()


def check_lost_after(value: object, field: str = "lost_after") -> int:
    """A heartbeat lapse: int ms or a `timedelta`, between `MIN_LOST_AFTER_MS` and a day."""
    if isinstance(value, timedelta):
        value = to_duration_ms(value, field)
    return check_integer(value, field, MIN_LOST_AFTER_MS, MAX_LOST_AFTER_MS)


@dataclass(frozen=True, slots=True)
class WorkerHello:
    """What a remote worker says about itself (`<root>_registerWorker`): a worker id it keeps
    across reconnects, its host, pid, types and concurrency, and its heartbeat lapse."""

    worker_id: str
    host: str | None
    pid: int | None
    types: tuple[str, ...]
    concurrency: int | None
    lost_after: int | None
    jobs: frozenset[str] | None = None  # after a reconnect: the running jobs it knows of


_HELLO_KEYS: Final = ("workerId", "host", "pid", "types", "concurrency", "lostAfter", "jobs")
_MAX_JOBS: Final = 100_000
_MAX_TEXT: Final = 200
_MAX_TYPES: Final = 1000


def _short_text(value: object, field: str) -> str:
    text = check_string(value, field)
    if not text or len(text) > _MAX_TEXT:
        raise JobValidationError(field, f"must be 1 to {_MAX_TEXT} characters, got {show(value)}")
    return text


def parse_hello(value: object) -> WorkerHello:
    """Check a `registerWorker` argument: `{workerId, host?, pid?, types?, concurrency?,
    lostAfter?, jobs?}` (a closed object; every error names the field)."""
    if not isinstance(value, dict):
        raise JobValidationError("worker", f"must be a plain object, got {show(value)}")
    for key in value:
        if key not in _HELLO_KEYS:
            known = ", ".join(_HELLO_KEYS)
            raise JobValidationError(f"worker.{key}", f"is not a known field ({known})")
    types = value.get("types", [])
    if not isinstance(types, list) or len(types) > _MAX_TYPES:
        raise JobValidationError(
            "worker.types", f"must be a list of at most {_MAX_TYPES} types, got {show(types)}"
        )

    jobs = value.get("jobs")
    if jobs is not None and (not isinstance(jobs, list) or len(jobs) > _MAX_JOBS):
        raise JobValidationError(
            "worker.jobs", f"must be a list of at most {_MAX_JOBS} job ids, got {show(jobs)}"
        )

    def optional(key: str, check: Any) -> Any:
        return None if value.get(key) is None else check(value[key], f"worker.{key}")

    return WorkerHello(
        worker_id=_short_text(value.get("workerId"), "worker.workerId"),
        host=optional("host", _short_text),
        pid=optional("pid", lambda v, f: check_integer(v, f, 0, 2**31)),
        types=tuple(_short_text(t, f"worker.types[{i}]") for i, t in enumerate(types)),
        concurrency=optional("concurrency", lambda v, f: check_integer(v, f, 0, 2**31)),
        lost_after=optional("lostAfter", check_lost_after),
        jobs=None
        if jobs is None
        else frozenset(check_id(job, f"worker.jobs[{i}]") for i, job in enumerate(jobs)),
    )
