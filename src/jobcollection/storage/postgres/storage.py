"""The PostgreSQL adapter: psycopg 3 with a `psycopg_pool.ConnectionPool`.

Each `write()` or `read()` is one transaction on a pooled connection (autocommit off by our
own BEGIN/COMMIT). Writes of one `PgStorage` are serialized by a lock, as the SQLite adapter's
are, so the engine sees the same semantics in one process; writers of different processes run
concurrently (READ COMMITTED: every guarded update is a compare-and-set on the latest row
version, and claims take rows with FOR UPDATE SKIP LOCKED). Reads are REPEATABLE READ READ
ONLY snapshots. `synchronous_commit` is on: a write that returned is on disk.
Every driver error leaves as a jobcollection `StorageError` (`translate`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from ...errors import (
    ConflictError,
    JobCollectionError,
    StorageCorrupt,
    StorageError,
    StorageUnavailable,
    ValidationError,
)
from .. import migrations
from .._change_hub import ChangeHub
from ..port import Change, ChangeListener
from . import feed
from . import queries as q
from .connections import CONNECT_TIMEOUT_S, POOL_SIZE, Connections, first_line
from .notify import Notifier
from .tx import PgTransaction
from .users import PgUserStore

log = logging.getLogger(__name__)

DIALECT = "postgres"
SCHEMA_VERSION = 2  # = migrations.latest(DIALECT), without reading the files at import


def describe(conninfo: str) -> str:
    """`host:port/dbname` of a connection string, never its password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "(unparsable connection string)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or 5432
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or ''}"


def translate(error: Exception, name: str) -> JobCollectionError:
    """Name the problem with the database in words a user can act on."""
    text = first_line(error)
    if isinstance(error, psycopg.DataError) and "NUL" in text:  # refused before it was sent
        return ValidationError(
            "a text value holds a NUL character (\\u0000), which PostgreSQL cannot store"
        )
    if isinstance(
        error,
        pg_errors.SerializationFailure | pg_errors.DeadlockDetected | pg_errors.LockNotAvailable,
    ):
        return ConflictError(f"PostgreSQL database {name}: {text}")
    if isinstance(error, pg_errors.InsufficientPrivilege | pg_errors.ReadOnlySqlTransaction):
        return StorageUnavailable(f"PostgreSQL database {name} refuses this: {text}")
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return StorageUnavailable(
            f"PostgreSQL database {name} is unavailable: {text}", transient=True
        )
    if isinstance(error, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
        return StorageCorrupt(f"PostgreSQL database {name} lacks jobcollection's tables: {text}")
    return StorageError(f"PostgreSQL database {name}: {text}")


def _version(conn: psycopg.Connection[Any]) -> int:
    """The schema version recorded in the database (0: none yet), read without writing."""
    found = conn.execute(q.HAS_VERSION_TABLE).fetchone()
    if not (found and found[0]):
        return 0
    row = conn.execute(q.VERSION).fetchone()
    return int(row[0]) if row else 0


def schema_version(conninfo: str) -> int:
    """The schema version of a PostgreSQL database, read without changing it (0: no
    jobcollection schema in it yet)."""
    name = describe(conninfo)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            return _version(conn)
    except psycopg.Error as error:
        raise translate(error, name) from error


def migrate(conn: psycopg.Connection[Any], name: str) -> None:
    """Bring the schema up to `SCHEMA_VERSION` under an advisory lock (one process at a time
    migrates; the others then find it done); refuse a database newer than this code."""
    conn.execute(q.LOCK, (q.MIGRATION_LOCK,))
    try:
        version = _version(conn)
        if version >= SCHEMA_VERSION:  # (a user without CREATE can open an up-to-date one)
            migrations.pending(DIALECT, version, f"PostgreSQL {name}")  # newer: SchemaTooNew
            return
        conn.execute(q.VERSION_TABLE)
        for migration in migrations.pending(DIALECT, version, f"PostgreSQL {name}"):
            with conn.transaction():
                conn.execute(migration.script.encode())  # no parameters: several statements
                conn.execute(q.SET_VERSION, (migration.number,))
            log.info("migrated %s to schema version %d", name, migration.number)
    finally:
        conn.execute(q.UNLOCK, (q.MIGRATION_LOCK,))


def _rollback(conn: psycopg.Connection[Any]) -> None:
    """End a failed transaction; a broken connection is left for the pool to discard."""
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass


class _Opener:
    """A write transaction's connection, taken when its first statement goes out."""

    def __init__(self, storage: PgStorage) -> None:
        self._storage = storage
        self.conn: psycopg.Connection[Any] | None = None
        self.pool: ConnectionPool | None = None

    def begin(self) -> psycopg.Cursor[Any]:
        if self.conn is None:
            self.conn, self.pool = self._storage._begin("BEGIN")
        else:  # after a statement that was a transaction of its own (`alone_once`)
            self.conn.execute("BEGIN")
        return self.conn.cursor()

    def alone_once(self, sql: str, args: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        if self.conn is None:
            self.conn, self.pool = self._storage._connections.get()
        return self.conn.execute(sql, args).fetchall()

    def notification_due(self) -> bool:
        return self._storage._notifier.claim()

    def alone(self, sql: str, args: Sequence[Any]) -> tuple[Any, ...]:
        if self.conn is not None:  # after a statement that was a transaction of its own
            found = self.conn.execute(sql, args).fetchone()
            assert found is not None
            return tuple(found)
        connections = self._storage._connections
        conn, self.pool = connections.get()
        self.conn = conn
        try:
            row = conn.execute(sql, args).fetchone()
        except psycopg.OperationalError as error:
            if not conn.closed:
                raise
            # A connection the server dropped while it sat in the pool: the statement never
            # ran (what `_begin` retries). Once more on a fresh connection; should that find
            # the row already there, the first attempt did run: its error stands.
            self.conn = None
            connections.give_back(conn, self.pool)
            connections.broken()
            conn, self.pool = connections.get()
            self.conn = conn
            try:
                row = conn.execute(sql, args).fetchone()
            except psycopg.IntegrityError:
                raise error from None
        assert row is not None
        return tuple(row)


class PgStorage:
    """Implements `storage.port.Storage` on one PostgreSQL database."""

    def __init__(self, conninfo: str, url: str | None = None) -> None:
        self.url = url or conninfo
        self.name = describe(conninfo)
        self._conninfo = conninfo
        self._lock = threading.RLock()
        self._hub = ChangeHub()
        self._watcher: feed.FeedWatcher | None = None
        self._watch_lock = threading.Lock()
        self._local_seq = 0  # the last change this process committed
        try:
            with psycopg.connect(
                conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            ) as conn:
                migrate(conn, self.name)
        except psycopg.Error as error:
            raise translate(error, self.name) from error
        self._connections = Connections(conninfo, self.name)
        self._notifier = Notifier(self._notify)

    def _notify(self) -> None:
        conn, pool = self._connections.get()
        try:
            conn.execute(q.NOTIFY)
        finally:
            self._connections.give_back(conn, pool)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor inside one transaction on a pooled connection: committed when the block
        ends, rolled back when it raises; driver errors translated."""
        try:
            conn, pool = self._begin(begin)
            try:
                cur = conn.cursor()
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                if conn.closed:  # the server went away mid-transaction: do not wait for another
                    self._connections.broken()
                raise
            finally:
                self._connections.give_back(conn, pool)
        except psycopg.Error as error:
            raise translate(error, self.name) from error

    def _begin(self, begin: str) -> tuple[psycopg.Connection[Any], ConnectionPool | None]:
        """A connection in a new transaction, and the pool it goes back to (`Connections`).
        A connection the server dropped while it sat in the pool (a restart, an idle timeout)
        fails at BEGIN, before anything was done: it is discarded and another one tried, so
        only a server that is still down fails (at once, with `StorageUnavailable`, while the
        outage lasts: see `connections`)."""
        connections = self._connections
        for attempt in range(POOL_SIZE + 1):
            conn, pool = connections.get()
            try:
                conn.execute(begin)
                return conn, pool
            except psycopg.OperationalError:
                connections.give_back(conn, pool)  # broken: the pool discards it
                if attempt == POOL_SIZE or not conn.closed:
                    raise
                connections.broken()
            except BaseException:
                connections.give_back(conn, pool)
                raise
        raise AssertionError("unreachable")

    @contextmanager
    def write(self, collection: str) -> Iterator[PgTransaction]:
        # (Pipeline mode, BEGIN and the unread statements sent with the next read, measured no
        # faster here: psycopg's pipeline costs more Python time than the round trips it
        # saves on a local server. Fewer statements do help: see `PgTransaction`.)
        with self._lock:
            opener = _Opener(self)
            tx = PgTransaction(None, collection, opener)
            try:
                try:
                    yield tx
                    notify = not tx.changes or self._notifier.claim()
                    seq = tx.commit(notify)  # its feed rows are delivered by the watcher
                except BaseException:
                    if opener.conn is not None:
                        _rollback(opener.conn)
                        if opener.conn.closed:  # the server went away mid-transaction
                            self._connections.broken()
                    if tx.committed_seq:  # a step had committed before: it is news all the same
                        self._committed(tx.committed_seq, not tx.owes_notification)
                    raise
                finally:
                    if opener.conn is not None:
                        self._connections.give_back(opener.conn, opener.pool)
            except psycopg.Error as error:
                raise translate(error, self.name) from error
            if seq:  # committed
                self._committed(seq, notify and not tx.owes_notification)

    def _committed(self, seq: int, notified: bool) -> None:
        """Note this process's last committed change; unless a notification went with it,
        other processes learn of it within the notifier's gap, this one's subscribers at once."""
        self._local_seq = max(self._local_seq, seq)
        if not notified:
            self._notifier.owe()
            watcher = self._watcher
            if watcher is not None:
                watcher.poke()

    @contextmanager
    def read(self, collection: str) -> Iterator[PgTransaction]:
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as cur:
            yield PgTransaction(cur, collection)

    @contextmanager
    def _users_tx(self, write: bool) -> Iterator[psycopg.Cursor[Any]]:
        begin = "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        with self._transaction(begin) as cur:
            yield cur

    @property
    def users(self) -> PgUserStore:
        """The accounts kept in this database (`storage.port.UserStore`)."""
        return PgUserStore(self._users_tx)

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        with self._watch_lock:
            if self._watcher is None:
                self._hub.seen(self.last_seq())
                self._watcher = feed.FeedWatcher(
                    self._conninfo, self._hub, self.name, CONNECT_TIMEOUT_S
                )
        return self._hub.subscribe(listener)

    def settle(self, callback: Callable[[], None]) -> bool:
        # (A write that did not notify pokes the watcher: no need to hurry its notification.)
        watcher = self._watcher
        return watcher is not None and watcher.settle(self._local_seq, callback)

    def collections(self) -> list[str]:
        with self._transaction("BEGIN READ ONLY") as cur:
            return [name for (name,) in cur.execute(q.COLLECTIONS).fetchall()]

    def changes_since(self, seq: int, limit: int = 10000) -> list[Change]:
        with self._transaction("BEGIN READ ONLY") as cur:
            self._await_own_writes(cur)
            return feed.changes_since(cur, seq, limit)

    def last_seq(self) -> int:
        with self._transaction("BEGIN READ ONLY") as cur:
            self._await_own_writes(cur)
            return feed.last_seq(cur)

    def _await_own_writes(self, cur: psycopg.Cursor[Any]) -> None:
        """Read your own writes in the feed: a change this process committed becomes final
        (readable) once every older transaction on the server has ended, usually within a
        millisecond; wait for that, at most `feed.SETTLE_MAX_S` (a long transaction elsewhere
        holds the feed back: the reader then gets what is final)."""
        own = self._local_seq
        if not own:
            return
        pause, deadline = 0.0005, time.monotonic() + feed.SETTLE_MAX_S
        while True:
            row = cur.execute(q.HORIZON).fetchone()
            if row is None or row[0] > own or time.monotonic() >= deadline:
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def close(self) -> None:
        self._notifier.close()
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            try:
                with self._connections.pool.connection(timeout=1.0) as conn:
                    watcher.stop(conn)
            except psycopg.Error:
                watcher.stop()
        self._connections.close()
