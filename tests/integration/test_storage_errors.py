"""Clear errors for unusable SQLite databases (SQLite-only), and durability of a returned
save() (every kind of storage)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import _workers
import pytest

import jobcollection.storage.sqlite as sqlite_storage
from jobcollection.api.collection import JobCollection
from jobcollection.errors import (
    SchemaTooNew,
    StorageCorrupt,
    StorageError,
    StorageUnavailable,
)

NOBODY = 65534


def make_db(path: Path, jobs: int = 1) -> list[str]:
    with JobCollection("q", path) as jc:
        ids = [jc.job("t", {"n": n}).save() for n in range(jobs)]
    assert all(ids)
    return [i for i in ids if i]


def open_and_read(db: Path | str) -> None:
    """Open a collection and touch every table a worker would."""
    jc = JobCollection("q", db)
    try:
        jc.find()
        jc.job("t", {}).save()
    finally:
        jc.close()


# -- missing folder -------------------------------------------------------------------------------


@pytest.mark.sqlite_only(reason="a SQLite file in a folder that does not exist")
@pytest.mark.parametrize("as_url", [False, True], ids=["path", "sqlite-url"])
def test_folder_that_does_not_exist(tmp_path: Path, as_url: bool) -> None:
    db = tmp_path / "no" / "such" / "folder" / "jobs.db"
    with pytest.raises(StorageUnavailable) as info:
        JobCollection("q", f"sqlite:///{db}" if as_url else db)
    assert str(db) in str(info.value)
    assert not (tmp_path / "no").exists()  # nothing was created on the way


@pytest.mark.sqlite_only(reason="a SQLite path that is a directory")
def test_path_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "actually-a-folder.db"
    folder.mkdir()
    with pytest.raises(StorageUnavailable) as info:
        JobCollection("q", folder)
    assert str(folder) in str(info.value)


# -- read-only database ---------------------------------------------------------------------------


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A folder under the system temp dir that an unprivileged user can traverse."""
    folder = Path(tempfile.mkdtemp(prefix="jc-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.sqlite_only(reason="a read-only SQLite file")
def test_read_only_database_file(world_readable_dir: Path) -> None:
    db = world_readable_dir / "jobs.db"
    make_db(db)
    db.chmod(0o444)
    world_readable_dir.chmod(0o555)
    if os.geteuid() == 0:
        # root ignores permission bits: open from a child process running as `nobody`.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            kind, message = pool.submit(_workers.open_unprivileged, str(db), NOBODY).result(60)
    else:
        try:
            open_and_read(db)
        except StorageError as error:
            kind, message = type(error).__name__, str(error)
        else:
            kind, message = "nothing", "opened and saved"
    assert kind == "StorageUnavailable", message
    assert str(db) in message
    assert "read-only" in message
    world_readable_dir.chmod(0o755)
    db.chmod(0o644)
    with JobCollection("q", db) as jc:  # the file is unharmed
        assert len(jc.find()) == 1


# -- corrupt files --------------------------------------------------------------------------------


@pytest.mark.sqlite_only(reason="a file that is not a SQLite database")
def test_random_bytes_are_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    db.write_bytes(random.Random(7).randbytes(16384))
    with pytest.raises(StorageCorrupt) as info:
        JobCollection("q", db)
    assert str(db) in str(info.value)


@pytest.mark.sqlite_only(reason="a file that is not a SQLite database")
def test_text_file_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("these are my notes, not jobs\n" * 200)
    with pytest.raises(StorageCorrupt) as info:
        JobCollection("q", db)
    assert str(db) in str(info.value)
    assert db.read_text().startswith("these are my notes")  # left as it was


@pytest.mark.sqlite_only(reason="a damaged SQLite file")
def test_damaged_first_page(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    make_db(db, jobs=50)
    with db.open("r+b") as f:  # keep the 100-byte header, garble the schema page
        f.seek(100)
        f.write(random.Random(3).randbytes(4096 - 100))
    with pytest.raises(StorageCorrupt) as info:
        open_and_read(db)
    assert str(db) in str(info.value)


@pytest.mark.sqlite_only(reason="a damaged SQLite file")
def test_damaged_data_pages(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    make_db(db, jobs=200)
    size = db.stat().st_size
    rng = random.Random(2)
    with db.open("r+b") as f:  # page 1 (header and schema) intact, every other page garbled
        for offset in range(4096, size, 4096):
            f.seek(offset)
            f.write(rng.randbytes(4096))
    with pytest.raises(StorageCorrupt) as info:
        open_and_read(db)
    assert str(db) in str(info.value)


# -- schema from the future -----------------------------------------------------------------------


@pytest.mark.sqlite_only(reason="SQLite's PRAGMA user_version")
def test_foreign_database_with_higher_user_version(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(SchemaTooNew) as info:
        JobCollection("q", db)
    assert str(db) in str(info.value)
    assert "99" in str(info.value)
    conn = sqlite3.connect(db)
    try:  # nothing was migrated into it
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    finally:
        conn.close()


@pytest.mark.sqlite_only(reason="a schema version set with SQLite's PRAGMA user_version")
def test_jobcollection_database_from_a_newer_version(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    make_db(db)
    newer = sqlite_storage.SCHEMA_VERSION + 1
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()
    with pytest.raises(SchemaTooNew) as info:
        JobCollection("q", db)
    message = str(info.value)
    assert str(db) in message
    assert str(newer) in message


# -- locked by another connection -----------------------------------------------------------------


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    db = tmp_path / "jobs.db"
    make_db(db)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield db, other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


@pytest.mark.sqlite_only(reason="another connection holds SQLite's exclusive lock")
def test_open_while_another_connection_holds_an_exclusive_lock(
    locked_db: tuple[Path, sqlite3.Connection],
) -> None:
    """Uses the real busy timeout, so this one test waits about 5 s."""
    db, other = locked_db
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as info:
        JobCollection("q", db)
    waited = time.monotonic() - started
    assert str(db) in str(info.value)
    assert "locked" in str(info.value)
    assert waited < sqlite_storage.BUSY_TIMEOUT_MS / 1000 + 5  # gave up, did not hang
    other.execute("ROLLBACK")
    with JobCollection("q", db) as jc:  # usable once the lock is gone
        assert len(jc.find()) == 1


@pytest.mark.sqlite_only(reason="another connection holds SQLite's exclusive lock")
def test_write_while_another_connection_holds_an_exclusive_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_storage, "BUSY_TIMEOUT_MS", 300)  # keep the test short
    db = tmp_path / "jobs.db"
    make_db(db)
    with JobCollection("q", db) as jc:
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StorageUnavailable) as info:
                jc.job("t", {"blocked": True}).save()
            assert str(db) in str(info.value)
            assert "locked" in str(info.value)
            assert len(jc.find()) == 1  # reads still work (WAL)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert jc.job("t", {"after": True}).save()  # and the collection recovers
        assert len(jc.find()) == 2


# -- durability -----------------------------------------------------------------------------------

_SAVE_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from jobcollection.api.collection import JobCollection

    jc = JobCollection("q", sys.argv[1])
    for n in range(int(sys.argv[2])):
        job_id = jc.job("durable", {"n": n}).save()
        print(job_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # right after the last save() returned
    """
)


def test_saved_job_survives_sigkill_of_the_saving_process(db: str) -> None:
    count = 25
    done = subprocess.run(
        [sys.executable, "-c", _SAVE_THEN_DIE, db, str(count)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    ids = done.stdout.split()
    assert len(ids) == count
    with JobCollection("q", db) as jc:
        found = {job.id: job for job in jc.get_jobs(ids)}
        assert set(found) == set(ids)
        for n, job_id in enumerate(ids):
            assert found[job_id].data == {"n": n}
            assert found[job_id].status == "ready"
