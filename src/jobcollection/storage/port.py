"""The storage port: what the engine needs from a database, and nothing more.

The engine runs every operation inside one transaction (`Storage.write` / `Storage.read`) and
talks to it through the intention-revealing `Transaction` methods below. Documents cross the port
in their Meteor shape (camelCase keys, times as integer ms, user data as EJSON values); `log` is
never part of a stored row and travels through `log_of` / `append_log`.

The port is synchronous on purpose: a SQLite statement takes microseconds, and a thread hop per
call would cost more than the work. The async API runs the same engine on a dedicated thread.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from ..core.usual_job import UsualJob
    from ..core.workers import WorkerRecord

JobDoc = dict[str, Any]
LogEntry = dict[str, Any]


class _Unset:
    """Marks a field to remove from a document (Mongo's `$unset`)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

ChangeOp = Literal["insert", "update", "remove"]


class Change(NamedTuple):
    """One job written: the feed entry live queries and queues react to.

    Jobs inserted together share one feed row, so their changes share its `seq`. (A named
    tuple: a batch save makes one per job, at a third of a frozen dataclass's cost.)
    """

    seq: int
    collection: str
    job_id: str
    op: ChangeOp
    type: str
    status: str | None
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Guard:
    """Compare-and-set conditions for an update: a row is written only if all of them hold."""

    statuses: Collection[str] | None = None
    run_id: str | None = None
    due_by: int | None = None  # after <= due_by
    no_depends: bool = False


NO_GUARD: Final = Guard()
ChangeListener = Callable[[Sequence[Change]], None]


class RunEnd(NamedTuple):
    """A run to complete (`Transaction.complete_and_claim`): the job, its run, the result, and
    the run's "Job Completed" log entry."""

    job_id: str
    run_id: str
    result: Any
    log: LogEntry


class SharedClaim(NamedTuple):
    """One claim made for several callers at once (`Transaction.complete_and_claim`): the
    best `sum(limits)` ready jobs of `types`, caller i getting the next `limits[i]` of them in
    claim order, each under `run_ids[i]` with log entry `logs[i]`. `fields` are what `claim`
    sets, their runId replaced by each caller's."""

    types: Sequence[str]
    limits: Sequence[int]
    run_ids: Sequence[str]
    logs: Sequence[LogEntry]
    fields: Mapping[str, Any]
    worker: str | None


class Page(NamedTuple):
    """One chunk of a keyset read (`Transaction.page`): the documents in the order asked, the
    insertion number (`seq`) of each, and where the next chunk starts (None: nothing left)."""

    docs: list[JobDoc]
    seqs: list[int]
    next: int | None


TallyCursor = tuple[Any, ...]  # where a count stopped; only the adapter that made it reads it


class Tally(NamedTuple):
    """One slice of a count (`Transaction.tally`): (status, type, number) of the jobs counted
    in it, and where the next slice starts (None: done)."""

    counts: list[tuple[str, str, int]]
    next: TallyCursor | None


class Transaction(Protocol):
    """Operations inside one atomic transaction on one collection."""

    def get(self, ids: Sequence[str]) -> list[JobDoc]:
        """Documents with these ids, in insertion order (missing ids are skipped)."""
        ...

    def get_antecedents(self, ids: Sequence[str]) -> list[JobDoc]:
        """As `get`, for a job being saved with these antecedents: none of them may change in
        another process' transaction until this one ends, so that a completion, cancel or
        removal committed meanwhile elsewhere either comes before (and is seen here) or waits
        (and then sees the new dependent). An adapter whose write transactions never overlap
        has nothing more to do; PostgreSQL locks the rows (FOR SHARE)."""
        ...

    def find(
        self,
        *,
        ids: Sequence[str] | None = None,
        statuses: Collection[str] | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[JobDoc]:
        """Documents matching every given condition, in insertion order."""
        ...

    def ready_types(self, types: Collection[str]) -> set[str]:
        """Which of ``types`` have at least one ready job (one index probe each)."""
        ...

    def page(
        self,
        *,
        ids: Sequence[str] | None = None,
        statuses: Collection[str] | None = None,
        types: Collection[str] | None = None,
        after: int | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> Page:
        """Up to `limit` documents matching every given condition whose `seq` comes after
        `after` in the order asked (insertion order, or newest first), reading a bounded number
        of rows whatever the collection's size (a sparse filter may give fewer than `limit`
        with a `next` to go on from). With `ids` (at most a few hundred), only those."""
        ...

    def tally(
        self,
        *,
        ids: Sequence[str] | None = None,
        statuses: Collection[str] | None = None,
        types: Collection[str] | None = None,
        after: TallyCursor | None = None,
        at_most: int | None = None,
    ) -> Tally:
        """Count matching jobs by (status, type), going on from `after`; each call examines a
        bounded number of index entries (see `Tally`), and no more than about `at_most` when
        the caller will stop there anyway."""
        ...

    def log_of(self, ids: Sequence[str]) -> dict[str, list[LogEntry]]:
        """The log entries of each job, oldest first."""
        ...

    def insert(self, docs: Sequence[JobDoc]) -> None:
        """Insert new documents (each with `_id` and optionally `log`)."""
        ...

    def insert_ready(
        self,
        jobs: Sequence[UsualJob],
        ids: Sequence[str],
        now: int,
        entries: Sequence[LogEntry],
    ) -> None:
        """Insert new jobs that go straight to ready, given as `core.document.UsualJob` rows
        of waiting jobs without `runId` or dependencies, due by `now` (the batch save's fast
        path; `insert` stores the same jobs from documents).

        Each is stored with `ids[i]`, status ready, `after`, `updated` and `created` = `now`,
        `retryUntil`/`repeatUntil` raised to at least `now`, and its log followed by `entries`.
        """
        ...

    def update(
        self,
        ids: Sequence[str],
        fields: Mapping[str, Any],
        guard: Guard = NO_GUARD,
        log: Sequence[LogEntry] = (),
    ) -> list[str]:
        """Set `fields` (UNSET removes) where `guard` holds; append `log`; return ids written."""
        ...

    def complete(
        self, job_ids: Sequence[str], run_id: str, result: Any, now: int, log: LogEntry
    ) -> list[tuple[str, int]]:
        """Finish these runs (all under `run_id`): completed, `result`, progress = total (1 if
        unknown), `updated = now`, `log` appended — only jobs running under `run_id`, which keep
        it as their `runId`.
        Returns (id, repeats) of each job completed."""
        ...

    def claim(
        self,
        types: Sequence[str],
        limit: int,
        fields: Mapping[str, Any],
        log: LogEntry,
        worker: str | None = None,
    ) -> list[JobDoc]:
        """Atomically move up to `limit` ready jobs of `types` to running, best first,
        recording `worker` as their claimant (None: claimed without a worker)."""
        ...

    # Whether `complete_and_claim` saves anything over `complete` and `claim` (round trips to
    # a database server); where it does not, the engine calls those.
    completes_and_claims_at_once: bool

    def complete_and_claim(
        self, runs: Sequence[RunEnd], now: int, claim: SharedClaim | None
    ) -> tuple[list[str], list[list[JobDoc]]] | None:
        """A worker loop's step where a round trip is dear: complete the runs of jobs that
        need nothing more (running under that run id, no repeats left, no dependents), then
        make `claim`; return the ids completed (the other runs are left as they were, for
        `complete`) and each caller's claimed jobs. None (without `completes_and_claims_at_once`):
        not done."""
        ...

    def remove(self, ids: Sequence[str], statuses: Collection[str]) -> list[str]:
        """Delete those ids whose status is in `statuses`; ids deleted."""
        ...

    def dependents(self, ids: Collection[str]) -> list[JobDoc]:
        """Jobs whose `depends` lists any of `ids`."""
        ...

    def due(self, now: int, ids: Sequence[str] | None, force: bool) -> list[str]:
        """Waiting jobs with `after <= now` (and no open dependency unless `force`)."""
        ...

    def expired(self, now: int) -> list[JobDoc]:
        """Running jobs whose `expiresAfter` is before `now`."""
        ...

    def next_wakeup(self) -> int | None:
        """Earliest time at which a waiting job becomes due or a running job expires."""
        ...

    # -- the worker registry (`core.workers`) ------------------------------------------------

    def put_worker(self, record: WorkerRecord) -> None:
        """Store a worker's record (replacing the one with its id; `running` is not stored)."""
        ...

    def beat_workers(self, ids: Sequence[str], now: int) -> list[str]:
        """Renew these workers (`last_seen = now`, status active); the ids found."""
        ...

    def set_worker_status(self, worker_id: str, status: str) -> bool:
        """Change a worker's status (its times stay); False if there is no such worker."""
        ...

    def remove_worker(self, worker_id: str) -> bool:
        """Forget a worker; False if there was none."""
        ...

    def workers(self) -> list[WorkerRecord]:
        """Every worker, oldest first, each with the number of running jobs it claimed."""
        ...

    def lapsed_workers(self, now: int) -> list[WorkerRecord]:
        """Workers (lost ones too) whose `last_seen + lost_after` is before `now`."""
        ...

    def next_worker_deadline(self) -> int | None:
        """The earliest `last_seen + lost_after` of a worker not yet lost."""
        ...

    def running_of(self, worker_ids: Sequence[str]) -> list[tuple[str, JobDoc]]:
        """(worker id, document) of every running job these workers claimed."""
        ...

    def orphans(self) -> list[JobDoc]:
        """Running jobs claimed by a worker that has no record (any more)."""
        ...

    def move_running(self, from_id: str, to_id: str) -> int:
        """Make `to_id` the claimant of every running job `from_id` claimed; how many."""
        ...

    def adopt(self, job_id: str, worker_id: str) -> bool:
        """Make `worker_id` the claimant of a running job whose claimant is another worker
        that is not active (disconnected, lost or unknown); False if it was not."""
        ...


class Storage(Protocol):
    """A database holding any number of job collections."""

    url: str

    def write(self, collection: str) -> AbstractContextManager[Transaction]:
        """A read-write transaction, serialized with every other writer."""
        ...

    def read(self, collection: str) -> AbstractContextManager[Transaction]:
        """A read-only snapshot."""
        ...

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` with every change of any process; returns an unsubscribe function."""
        ...

    def settle(self, callback: Callable[[], None]) -> bool:
        """Whether changes this process committed are still on their way to the listeners; if
        so, `callback` is called (on any thread) once they were delivered, or once the feed
        gave up waiting for them. False: every local change was delivered already (an adapter
        that delivers local changes inside the write always answers False)."""
        ...

    def changes_since(self, seq: int, limit: int = 10000) -> list[Change]:
        """Changes with a sequence number above `seq`, oldest first."""
        ...

    def last_seq(self) -> int:
        """The newest change's sequence number (0 for none)."""
        ...

    def collections(self) -> list[str]:
        """The names of the collections that hold at least one job, sorted."""
        ...

    def close(self) -> None:
        """Release the connection and stop the change watcher."""
        ...

    @property
    def users(self) -> UserStore:
        """The accounts (users and login tokens) kept in this database."""
        ...


def iter_chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Split a long id list so no statement exceeds the driver's parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- accounts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserEmail:
    """One entry of a user's `emails`."""

    address: str
    verified: bool = False


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user: `bcrypt` is `services.password.bcrypt` (None: no password set)."""

    id: str
    username: str
    emails: tuple[UserEmail, ...] = ()
    bcrypt: str | None = None
    created: int = 0


class UserStore(Protocol):
    """The users and login tokens of one database.

    Lookups by name or address follow Meteor: the exact match if there is one, else
    the case-insensitive match if it is unique, else None. Tokens are stored hashed; the store
    never sees a token itself.
    """

    def insert_user(self, user: UserRecord) -> None:
        """Add a user. If its username or an address equals an existing one, ignoring case,
        raise `ConflictError` naming the clash and write nothing."""
        ...

    def user_by_id(self, user_id: str) -> UserRecord | None:
        """The user with this `_id` (exact)."""
        ...

    def user_by_username(self, username: str) -> UserRecord | None:
        """Exact match, else the only case-insensitive match, else None."""
        ...

    def user_by_email(self, address: str) -> UserRecord | None:
        """The user with this address: exact, else the only case-insensitive match."""
        ...

    def list_users(self) -> list[UserRecord]:
        """Every user, oldest first."""
        ...

    def remove_user(self, user_id: str) -> bool:
        """Delete the user with its addresses and tokens; False if there was none."""
        ...

    def set_password_hash(self, user_id: str, bcrypt: str | None, *, revoke_tokens: bool) -> bool:
        """Replace the bcrypt hash (and delete the user's tokens if `revoke_tokens`);
        False if there is no such user."""
        ...

    def add_token(
        self, user_id: str, hashed_token: str, when: int, *, keep: int | None = None
    ) -> bool:
        """Store a login token issued at `when` (ms); False (nothing written) if the user is
        gone. With `keep`, the user's other tokens beyond the `keep - 1` newest are deleted in
        the same transaction (the new one always stays)."""
        ...

    def find_token(self, hashed_token: str) -> tuple[UserRecord, int] | None:
        """The user a token belongs to and when it was issued."""
        ...

    def tokens(self) -> list[tuple[str, str, int]]:
        """Every login token as (user id, hashed token, when issued in ms), oldest first
        (for copying a database)."""
        ...

    def delete_token(self, hashed_token: str) -> bool:
        """Forget one token; False if it was not there."""
        ...

    def delete_tokens_issued_before(self, when: int) -> int:
        """Forget every token issued before `when` (ms); how many went."""
        ...
