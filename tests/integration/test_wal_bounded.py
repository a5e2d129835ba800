"""The WAL is checkpointed whole and starts over, so it stays bounded while writers keep on.

Whether the whole WAL has been copied into the database is read from the wal-index header in
the `-shm` file (SQLite's documented WAL format: `mxFrame` at byte 16, `nBackfill` at 96).
"""

from __future__ import annotations

import sqlite3
import struct
import threading
import time
from pathlib import Path

import pytest

from jobcollection import Job, JobCollection
from jobcollection.storage import sqlite as sqlite_storage

pytestmark = pytest.mark.sqlite_only(reason="SQLite's WAL and its checkpoints")


def _frames(db: Path) -> tuple[int, int]:
    """(frames in the WAL, frames of it already copied into the database)."""
    header = db.with_name(db.name + "-shm").read_bytes()[:136]
    return struct.unpack_from("=I", header, 16)[0], struct.unpack_from("=I", header, 96)[0]


def _wait_for(check: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def test_a_checkpoint_held_back_by_a_reader_is_finished_once_it_leaves(tmp_path: Path) -> None:
    db = tmp_path / "held.db"
    with JobCollection("q", str(db)) as jc:
        jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(10)])
        _wait_for(lambda: _frames(db)[1] == _frames(db)[0])
        reader = sqlite3.connect(db, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM jobs").fetchone()  # a snapshot of before
        jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(2000)])
        time.sleep(3 * sqlite_storage.CHECKPOINT_INTERVAL_S)  # a checkpoint tried, held back
        frames, copied = _frames(db)
        assert copied < frames
        reader.execute("ROLLBACK")
        reader.close()
        # Nothing is written any more: only the watcher's retries can finish the job.
        _wait_for(lambda: _frames(db)[1] == _frames(db)[0])


def test_the_wal_stays_bounded_under_steady_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that never pauses: a commit lands during every background checkpoint, so
    the WAL never finds itself wholly copied by chance; left alone it grows with every write
    (about one frame per two of these saves)."""
    monkeypatch.setattr(sqlite_storage, "CHECKPOINT_INTERVAL_S", 0.02, raising=False)
    monkeypatch.setattr(sqlite_storage, "WAL_RESTART_FRAMES", 100, raising=False)
    db = tmp_path / "steady.db"
    wal = db.with_name(db.name + "-wal")
    saves = 40_000
    largest = 0
    with JobCollection("q", str(db)) as jc:
        done = threading.Event()

        def write() -> None:
            for n in range(saves):
                Job(jc, "t", {"n": n}).save()
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while not done.wait(0.005):
                largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        finally:
            writer.join()
    frames = largest // (4096 + 24)
    # What a few checkpoint intervals bring in, however many writes there are in all.
    assert frames < 12_000, frames
