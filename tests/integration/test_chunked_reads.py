"""Reads of large collections: pushed into SQL, chunk by chunk, a short transaction each.

The chunk, window and count sizes are shrunk here, so a few hundred jobs span many chunks and
every way of reading a page (rowid windows, the status indexes) is taken.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from jobcollection import Job, JobCollection
from jobcollection.core.permissions import ANONYMOUS
from jobcollection.engine import _reads
from jobcollection.engine.manager import JobManager
from jobcollection.server.publications import PublicationRegistry
from jobcollection.storage import _sqlite_reads
from jobcollection.storage.sqlite import SqliteStorage

# Chunked reads are the SQLite adapter's (and the reference answers are SQL over its file).
# This module's own `db` fixture, a filled SQLite file, takes the place of the suite's.
pytestmark = pytest.mark.sqlite_only(reason="the SQLite adapter's chunked reads")

STATUSES = ("waiting", "paused", "ready", "running", "failed", "cancelled", "completed")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_reads, "CHUNK", 7)
    monkeypatch.setattr(_sqlite_reads, "WINDOW", 40)
    monkeypatch.setattr(_sqlite_reads, "SPARSE", 12)
    monkeypatch.setattr(_sqlite_reads, "TALLY_BUDGET", 30)
    monkeypatch.setattr(_sqlite_reads, "TALLY_WINDOW", 25)


def _status_of(n: int) -> str:
    """Mostly completed; failed and paused sparse; every status present."""
    if n % 53 == 0:
        return "failed"
    if n % 71 == 5:
        return "paused"
    return STATUSES[n % 7] if n % 3 == 0 else "completed"


def _fill(path: Path, jobs: int = 420) -> None:
    """`jobs` jobs in collection q (types a, b, c), another collection's jobs between them,
    statuses set row by row, and gaps where jobs were removed."""
    with JobCollection("q", str(path)) as jc, JobCollection("other", str(path)) as other:
        for first in range(0, jobs, 60):
            jc.save_jobs([Job(jc, "abc"[n % 3], {"n": n}) for n in range(first, first + 60)])
            other.save_jobs([Job(other, "a", {}) for _ in range(13)])
    conn = sqlite3.connect(path, isolation_level=None)
    rows = conn.execute("SELECT seq FROM jobs WHERE collection = 'q' ORDER BY seq").fetchall()
    conn.execute("BEGIN")
    for n, (seq,) in enumerate(rows):
        conn.execute("UPDATE jobs SET status = ? WHERE seq = ?", (_status_of(n), seq))
    conn.execute("DELETE FROM jobs WHERE collection = 'q' AND seq % 29 = 0")  # gaps
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reads") / "template.db"
    _fill(path)
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "jobs.db"
    path.write_bytes(template.read_bytes())
    return path


def _expected(
    path: Path, statuses: list[str] | None, types: list[str] | None, newest_first: bool
) -> list[str]:
    """The reference: one plain query over the whole table."""
    where, args = ["collection = 'q'"], []
    for column, values in (("status", statuses), ("type", types)):
        if values is not None:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT id FROM jobs WHERE {' AND '.join(where)} ORDER BY seq {order}"
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute(sql, args)]


SELECTORS: list[tuple[list[str] | None, list[str] | None]] = [
    (None, None),
    (["completed"], None),  # dense: rowid windows
    (["failed"], None),  # sparse: the status indexes
    (["paused"], ["b"]),
    (["ready", "failed"], None),  # both index parts
    (["ready"], ["a", "c"]),
    (None, ["c"]),
    ([], None),
    (["completed"], ["nope"]),
]


@pytest.mark.parametrize(("statuses", "types"), SELECTORS)
@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("limit", [None, 1, 5, 23, 1000])
def test_find_returns_what_one_query_over_the_table_returns(
    db: Path,
    statuses: list[str] | None,
    types: list[str] | None,
    newest_first: bool,
    limit: int | None,
) -> None:
    selector: dict[str, Any] = {}
    if statuses is not None:
        selector["status"] = {"$in": statuses}
    if types is not None:
        selector["type"] = {"$in": types}
    with JobCollection("q", str(db)) as jc:
        found = [doc["_id"] for doc in jc.manager.find(selector, limit, newest_first=newest_first)]
    expected = _expected(db, statuses, types, newest_first)
    assert found == (expected if limit is None else expected[:limit])


def test_find_by_ids_keeps_storage_order_across_slices(db: Path) -> None:
    every = _expected(db, None, None, False)
    asked = list(reversed(every[:40])) + every[:3] + ["missing"]  # more ids than a slice
    with JobCollection("q", str(db)) as jc:
        found = [doc["_id"] for doc in jc.manager.find({"_id": {"$in": asked}})]
        newest = jc.manager.find({"_id": {"$in": asked}}, 5, newest_first=True)
        failed = jc.manager.find({"_id": {"$in": asked}, "status": "completed"})
    assert found == every[:40]
    assert [doc["_id"] for doc in newest] == list(reversed(every[:40]))[:5]
    assert [doc["_id"] for doc in failed] == [
        job_id for job_id in every[:40] if job_id in _expected(db, ["completed"], None, False)
    ]


# -- one short transaction per chunk --------------------------------------------------------


class Interleaved:
    """A storage that runs `between()` after every read transaction, from the outside."""

    def __init__(self, storage: SqliteStorage, between: Callable[[], None]) -> None:
        self._storage = storage
        self.between = between
        self.reads = 0

    @contextmanager
    def read(self, collection: str) -> Iterator[Any]:
        with self._storage.read(collection) as tx:
            yield tx
        self.reads += 1
        self.between()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


def _writer_and_checkpoint(
    conn: sqlite3.Connection, log: list[tuple[int, int, int]]
) -> Callable[[], None]:
    """Another connection: it writes a row, then checkpoints the whole WAL (TRUNCATE), which
    only succeeds when no reader holds a snapshot."""

    def between() -> None:
        conn.execute("UPDATE jobs SET updated = updated + 1 WHERE collection = 'other'")
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        log.append((busy, frames, done))

    return between


def test_a_large_read_lets_writers_and_checkpoints_through_between_chunks(db: Path) -> None:
    storage = SqliteStorage(str(db))
    checkpoints: list[tuple[int, int, int]] = []
    outside = sqlite3.connect(db, isolation_level=None, timeout=0.1)
    interleaved = Interleaved(storage, _writer_and_checkpoint(outside, checkpoints))
    manager = JobManager(interleaved, "q")  # type: ignore[arg-type]
    try:
        found = [doc["_id"] for doc in manager.find()]
        assert found == _expected(db, None, None, False)
        chunks = -(-len(found) // 7)
        assert interleaved.reads >= chunks  # one transaction per chunk, at least
        assert len(checkpoints) == interleaved.reads
        # Each checkpoint, taken while the read was still going on, emptied the whole WAL.
        assert all(busy == 0 and frames == done == 0 for busy, frames, done in checkpoints)
        before = interleaved.reads
        manager.stats()
        manager.count({"status": "completed"})
        assert interleaved.reads - before > 2  # counts go a slice per transaction too
        # (The storage's own threads may read at the moment of one checkpoint: at most one
        # may find a reader; a count holding its snapshot across slices would block them all.)
        assert sum(busy != 0 for busy, _, _ in checkpoints) <= 1
    finally:
        manager.close()
        storage.close()
        outside.close()


def test_jobs_written_between_chunks_are_neither_skipped_nor_repeated(db: Path) -> None:
    """Between every two chunks another process inserts jobs, changes some and removes some:
    every job that exists and matches throughout comes exactly once, in order."""
    storage = SqliteStorage(str(db))
    other = JobCollection("q", str(db))
    untouched = set(_expected(db, ["completed"], None, False))
    touched: set[str] = set()

    def between() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        victims = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM jobs WHERE collection = 'q' AND status = 'completed' "
                "ORDER BY random() LIMIT 2"
            )
        ]
        touched.update(victims)
        if victims:
            conn.execute("DELETE FROM jobs WHERE id = ?", (victims[0],))
            conn.execute("UPDATE jobs SET status = 'failed' WHERE id = ?", (victims[-1],))
        conn.close()
        other.save_jobs([Job(other, "a", {}) for _ in range(2)])  # new jobs, at the end

    interleaved = Interleaved(storage, between)
    manager = JobManager(interleaved, "q")  # type: ignore[arg-type]
    try:
        for newest_first in (False, True):
            found = manager.find({"status": "completed"}, newest_first=newest_first)
            ids = [doc["_id"] for doc in found]
            assert len(ids) == len(set(ids))  # nothing repeated
            assert all(doc["status"] == "completed" for doc in found)
            assert (untouched - touched) <= set(ids)  # nothing skipped
            conn = sqlite3.connect(db)
            order = dict(conn.execute("SELECT id, seq FROM jobs"))
            conn.close()
            seqs = [order[i] for i in ids if i in order]
            assert seqs == sorted(seqs, reverse=newest_first)
            assert interleaved.reads > 10
    finally:
        manager.close()
        other.close()
        storage.close()


# -- counts -----------------------------------------------------------------------------------


def _reference_counts(path: Path, where: str = "1") -> list[tuple[str, str, int]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT status, type, count(*) FROM jobs WHERE collection = 'q' AND "
            f"{where} GROUP BY status, type ORDER BY 1, 2"
        ).fetchall()
    return [tuple(row) for row in rows]


def test_stats_and_counts_match_one_query(db: Path) -> None:
    with JobCollection("q", str(db)) as jc:
        assert jc.stats() == _reference_counts(db)
        every = sum(n for _, _, n in _reference_counts(db))
        assert jc.manager.count() == every
        failed = sum(n for _, _, n in _reference_counts(db, "status = 'failed'"))
        assert jc.manager.count({"status": "failed"}) == failed
        by_type = sum(n for _, _, n in _reference_counts(db, "type IN ('a', 'b')"))
        assert jc.manager.count({"type": {"$in": ["a", "b"]}}) == by_type
        ready_c = sum(n for _, _, n in _reference_counts(db, "status = 'ready' AND type = 'c'"))
        assert jc.manager.count({"status": "ready", "type": "c"}) == ready_c
        some = jc.find(limit=30)
        ids = [job.id for job in some] + ["missing"]
        assert jc.manager.count({"_id": {"$in": ids}}) == 30
        assert jc.manager.count({"status": {"$in": []}}) == 0


def test_a_count_with_at_most_stops_early_but_never_below_the_truth(db: Path) -> None:
    with JobCollection("q", str(db)) as jc:
        every = jc.manager.count()
        capped = jc.manager.count(at_most=20)
        assert 20 <= capped < every
        assert jc.manager.count(at_most=every + 1) == every
        assert jc.manager.count({"status": "paused"}, at_most=1000) == sum(
            n for _, _, n in _reference_counts(db, "status = 'paused'")
        )


def test_ready_jobs_sharing_a_claim_key_are_each_counted_once(tmp_path: Path) -> None:
    """Ready jobs are counted in claim order (priority, retryUntil, after, seq); many jobs
    saved in one batch share the first three, and a slice may end among them."""
    with JobCollection("q", str(tmp_path / "ties.db")) as jc:
        jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(100)])
        jc.save_jobs([Job(jc, "t", {"n": n}).priority("high") for n in range(45)])
        assert jc.stats() == [("ready", "t", 145)]


# -- the other read paths: getJob, live queries, publications --------------------------------


def test_get_job_with_many_ids_reads_a_slice_at_a_time(db: Path) -> None:
    storage = SqliteStorage(str(db))
    interleaved = Interleaved(storage, lambda: None)
    manager = JobManager(interleaved, "q")  # type: ignore[arg-type]
    try:
        every = _expected(db, None, None, False)
        asked = [*reversed(every[:30]), every[0], "missing"]
        docs = manager.call("getJob", [asked, {"getLog": True}])
        assert [doc["_id"] for doc in docs] == every[:30]  # storage order, each once
        assert all(doc["log"][0]["message"] == "Constructed" for doc in docs)
        assert all("failures" not in doc and "_private" not in doc for doc in docs)
        assert interleaved.reads >= 30 // 7
        assert manager.call("getJob", [every[5]])["_id"] == every[5]
        assert manager.call("getJob", [["missing", "gone"]]) is None
    finally:
        manager.close()
        storage.close()


def test_a_live_query_sees_changes_made_between_its_first_chunks(db: Path) -> None:
    storage = SqliteStorage(str(db))
    flips: list[str] = []

    def between() -> None:  # another process moves jobs into and out of the selection
        conn = sqlite3.connect(db, isolation_level=None)
        rows = conn.execute(
            "SELECT id, status FROM jobs WHERE collection = 'q' AND status IN "
            "('completed', 'failed') ORDER BY random() LIMIT 2"
        ).fetchall()
        for job_id, status in rows:
            new = "failed" if status == "completed" else "completed"
            conn.execute("UPDATE jobs SET status = ? WHERE id = ?", (new, job_id))
            conn.execute(  # as the engine does: the change feed says so
                "INSERT INTO changes (collection, job_id, op, type, status, fields) "
                "VALUES ('q', ?, 'update', 'a', ?, 'status')",
                (job_id, new),
            )
            flips.append(job_id)
        conn.close()

    interleaved = Interleaved(storage, between)
    manager = JobManager(interleaved, "q")  # type: ignore[arg-type]
    seen: dict[str, str] = {}

    def on_change(change: Any) -> None:
        if change.kind == "removed":
            seen.pop(change.id, None)
        else:
            seen[change.id] = change.doc["status"]

    try:
        stop = manager.observe({"status": "completed"}, on_change)
        interleaved.between = lambda: None
        assert len(flips) > 10
        deadline = time.monotonic() + 10
        while set(seen) != set(_expected(db, ["completed"], None, False)):
            assert time.monotonic() < deadline, "the live query never caught up"
            time.sleep(0.01)
        assert set(seen.values()) == {"completed"}
        stop()
    finally:
        manager.close()
        storage.close()


async def test_a_subscription_reads_its_first_documents_a_chunk_at_a_time(db: Path) -> None:
    storage = SqliteStorage(str(db))
    interleaved = Interleaved(storage, lambda: None)
    manager = JobManager(interleaved, "q")  # type: ignore[arg-type]
    registry = PublicationRegistry([manager], asyncio.get_running_loop())
    manager.permissions.allow({"admin": "anyone"})
    sent: list[dict[str, Any]] = []
    try:
        view = registry.connection(sent.append)
        await view.subscribe("s", "q.jobs", [{"status": "failed"}], ANONYMOUS)
        added = [m for m in sent if m["msg"] == "added"]
        assert [m["id"] for m in added] == _expected(db, ["failed"], None, False)
        assert all(m["fields"]["log"] for m in added)  # with their logs
        assert interleaved.reads >= len(added) // 7
        view.close()
    finally:
        registry.close()
        manager.close()
        storage.close()
