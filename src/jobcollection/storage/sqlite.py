"""The default storage adapter: SQLite from the standard library, in WAL mode.

One connection serves the process's writes behind a lock; writers take `BEGIN IMMEDIATE`, so
a claim is atomic across every process sharing the file. Reads have a connection (and a lock)
of their own: in WAL mode a reader never waits for a writer, so reads go on while a writer
waits for another process's lock (an in-memory database has one connection for both).
Commits use `synchronous=NORMAL`: a returned save survives a crash of the process (the WAL is
on disk); only a power loss may drop the last transactions. Other processes' writes are noticed
by polling `PRAGMA data_version` on a third connection, a check that costs microseconds and
reads no rows.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StorageCorrupt, StorageError, StorageUnavailable
from . import migrations
from ._change_hub import ChangeHub
from ._feed_rows import FeedRow, expand
from ._sqlite_tx import SqliteTransaction
from ._sqlite_users import SqliteUserStore
from .port import Change, ChangeListener

log = logging.getLogger(__name__)

DIALECT = "sqlite"
SCHEMA_VERSION = 6  # = migrations.latest(DIALECT), without reading the files at import
BUSY_TIMEOUT_MS = 5000
WATCH_INTERVAL_S = 0.001
CHECKPOINT_INTERVAL_S = 0.2
PRUNE_INTERVAL_S = 5.0
CHANGES_KEPT = 100_000  # change-feed entries kept for subscribers catching up
# Commits never checkpoint (that is where the fsyncs are) unless the WAL grows past this many
# pages; the watcher thread checkpoints in the background instead.
AUTOCHECKPOINT_PAGES = 20000
# A WAL starts over only when a writer finds it wholly checkpointed, which under steady writes
# (a commit landing during every background checkpoint) may never happen: past this many
# frames the watcher makes it happen (a RESTART checkpoint, this process's writers held for a
# moment).
WAL_RESTART_FRAMES = 4096
RESTART_WAIT_MS = 20  # how long that checkpoint may hold writers while it waits for readers
_CHANGE_INSERT = (
    "INSERT INTO changes (collection, job_id, op, type, status, fields) VALUES (?, ?, ?, ?, ?, ?)"
)


def translate(error: sqlite3.Error, path: str) -> StorageError:
    """Name the problem with the database in words a user can act on."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return StorageUnavailable(
            f"database {path} is locked by another connection "
            f"(gave up after {BUSY_TIMEOUT_MS} ms): {text}",
            transient=True,
        )
    if "readonly" in text or "read-only" in text:
        return StorageUnavailable(f"database {path} is read-only: {text}")
    if "unable to open" in text:
        return StorageUnavailable(f"cannot open database file {path}: {text}")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StorageCorrupt(f"database {path} is corrupt or not a SQLite database: {text}")
    return StorageError(f"database {path}: {text}")


def _create_private(path: str) -> None:
    """Create the database file readable and writable by its owner only (it holds password
    and token hashes; SQLite gives the -wal and -shm files the same mode). A file that exists
    is left alone: whoever made it chose its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise StorageUnavailable(
            f"cannot create database file {path}: {error.strerror or error}"
        ) from error
    os.close(fd)  # SQLite takes an empty file for a new database


def schema_version(path: str) -> int:
    """The schema version of the SQLite database at ``path``, read without changing it (0:
    no such file, or an empty one)."""
    if path in ("", ":memory:") or not os.path.exists(path):
        return 0
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise translate(error, path) from error
    return version


class SqliteStorage:
    """Implements `storage.port.Storage` on one SQLite file (or `:memory:`)."""

    def __init__(self, path: str, url: str | None = None) -> None:
        self.path = path
        self.url = url or f"sqlite:///{path}"
        self._lock = threading.RLock()
        self._hub = ChangeHub()
        self._watcher: _Watcher | None = None
        try:
            self._conn = self._connect()
            self._migrate()
            self._read_conn, self._read_lock = self._conn, self._lock
            if path not in ("", ":memory:"):
                self._read_conn, self._read_lock = self._connect(), threading.RLock()
            if path != ":memory:":  # the watcher also checkpoints, so it always runs
                self._hub.seen(self.last_seq())
                self._watcher = _Watcher(self)
        except sqlite3.Error as error:
            raise translate(error, path) from error

    def _connect(self) -> sqlite3.Connection:
        if self.path not in ("", ":memory:"):
            parent = Path(self.path).resolve().parent
            if not parent.is_dir():
                raise StorageUnavailable(f"cannot open database {self.path}: no folder {parent}")
            _create_private(self.path)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1e3
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                for migration in migrations.pending(DIALECT, version, self.path):
                    for statement in migration.statements():
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {migration.number}")
                    log.info("migrated %s to schema version %d", self.path, migration.number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def write(self, collection: str) -> Iterator[SqliteTransaction]:
        with self._lock:
            tx = SqliteTransaction(self._conn, collection)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise translate(error, self.path) from error
            try:
                yield tx
                recorded = self._record(tx)
                self._conn.execute("COMMIT")
            except sqlite3.Error as error:
                self._rollback()
                raise translate(error, self.path) from error
            except BaseException:
                self._rollback()
                raise
            if recorded is not None:
                last_seq, rows = recorded
                self._hub.publish_lazily(last_seq, lambda: expand(rows))

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _record(self, tx: SqliteTransaction) -> tuple[int, list[FeedRow]] | None:
        """Write the transaction's change-feed rows; the last sequence number and the rows
        with their numbers, or None when it changed nothing."""
        if not tx.changes:
            return None
        sql = _CHANGE_INSERT
        if len(tx.changes) == 1:
            last = int(self._conn.execute(sql, tx.changes[0]).lastrowid or 0)
        else:
            self._conn.executemany(sql, tx.changes)
            last = self._conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - len(tx.changes) + 1
        return last, [(first + n, *row) for n, row in enumerate(tx.changes)]

    @contextmanager
    def read(self, collection: str) -> Iterator[SqliteTransaction]:
        with self._read_lock:
            conn = self._read_conn
            try:
                conn.execute("BEGIN")
                try:
                    yield SqliteTransaction(conn, collection)
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except sqlite3.Error as error:
                raise translate(error, self.path) from error

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Hold the reads' lock; driver errors leave as jobcollection storage errors."""
        with self._read_lock:
            try:
                yield
            except sqlite3.Error as error:
                raise translate(error, self.path) from error

    def collections(self) -> list[str]:
        with self._translated():
            rows = self._read_conn.execute("SELECT DISTINCT collection FROM jobs ORDER BY 1")
            return [name for (name,) in rows]

    @property
    def users(self) -> SqliteUserStore:
        """The accounts kept in this database (`storage.port.UserStore`, schema version 3)."""
        return SqliteUserStore(
            (self._conn, self._lock),
            (self._read_conn, self._read_lock),
            lambda error: translate(error, self.path),
        )

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        return self._hub.subscribe(listener)

    def settle(self, callback: Callable[[], None]) -> bool:
        return False  # local changes reach the listeners inside the write

    def changes_since(self, seq: int, limit: int = 10000) -> list[Change]:
        with self._translated():
            return _changes_since(self._read_conn, seq, limit)

    def last_seq(self) -> int:
        with self._translated():
            row = self._read_conn.execute("SELECT max(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        with self._lock, self._read_lock:
            self._conn.close()
            self._read_conn.close()


def _changes_since(conn: sqlite3.Connection, seq: int, limit: int) -> list[Change]:
    rows = conn.execute(
        "SELECT seq, collection, job_id, op, type, status, fields FROM changes "
        "WHERE seq > ? ORDER BY seq LIMIT ?",
        (seq, limit),
    ).fetchall()
    return expand(rows)


def _prune(conn: sqlite3.Connection, keep: int) -> None:
    """Forget all but the newest `keep` change-feed entries (one short write)."""
    conn.execute("DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes) - ?", (keep,))


class _Watcher:
    """Polls `PRAGMA data_version` and publishes changes committed by other connections; every
    `CHECKPOINT_INTERVAL_S` after writes, until it succeeds, it checkpoints the WAL (PASSIVE:
    writers go on), so the fsyncs a checkpoint needs stay off the commit path of every writer;
    every `PRUNE_INTERVAL_S` after writes it trims the change feed to `CHANGES_KEPT` entries."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage
        self._stop = threading.Event()
        self._conn = sqlite3.connect(storage.path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._thread = threading.Thread(target=self._run, name="jobcollection-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        hub = self._storage._hub
        version = None
        dirty, last_checkpoint = False, time.monotonic()
        to_prune, last_prune = False, time.monotonic()
        while not self._stop.wait(WATCH_INTERVAL_S):
            try:
                if to_prune and time.monotonic() - last_prune >= PRUNE_INTERVAL_S:
                    _prune(self._conn, CHANGES_KEPT)
                    to_prune, last_prune = False, time.monotonic()
                if dirty and time.monotonic() - last_checkpoint >= CHECKPOINT_INTERVAL_S:
                    # Until the whole WAL is in the database (a reader's snapshot may hold
                    # part of it back), try again at the next interval.
                    dirty, last_checkpoint = not self._checkpoint(), time.monotonic()
                current = self._conn.execute("PRAGMA data_version").fetchone()[0]
                if current == version:
                    continue
                version, dirty, to_prune = current, True, True
                hub.publish(_changes_since(self._conn, hub.published_seq, 100000))
            except sqlite3.Error:
                log.exception("change watcher failed to read %s", self._storage.path)
        self._conn.close()

    def _checkpoint(self) -> bool:
        """Copy the WAL into the database (PASSIVE: writers go on); True when all of it is.
        A long WAL is also made to start over (see `WAL_RESTART_FRAMES`)."""
        busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames <= WAL_RESTART_FRAMES:
            return not busy and copied >= frames
        # This process's writers wait on the storage lock meanwhile (a few ms, once in that
        # many frames), so no commit of theirs lands in the middle; another process's reader
        # holding an old snapshot leaves the WAL as it is (no waiting for it).
        with self._storage._lock:
            busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy or copied < frames:
                return False
            self._conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
            try:
                busy, frames, copied = self._conn.execute(
                    "PRAGMA wal_checkpoint(RESTART)"
                ).fetchone()
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return not busy and copied >= frames

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
