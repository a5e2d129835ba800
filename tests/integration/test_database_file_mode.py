"""The database holds password and token hashes: a file we create is readable by its owner
only (0600), and so are its -wal and -shm files; a file someone else made keeps its mode."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import _workers
import pytest

from jobcollection import JobCollection
from jobcollection.server.accounts import Accounts
from jobcollection.storage.sqlite import SqliteStorage

pytestmark = pytest.mark.sqlite_only(reason="the SQLite file's mode (and its -wal and -shm files)")

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 0: whatever mode the files get is the one we asked for, not the umask's doing."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_a_new_database_is_private_with_its_wal_and_shm(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with JobCollection("q", db) as jc:
        jc.job("t", {}).save()
        Accounts(jc.manager.storage.users, bcrypt_rounds=4).add_user("ada", "s3cret")
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists()
        assert shm.exists()
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    assert mode(db) == 0o600


@pytest.mark.usefixtures("permissive_umask")
@pytest.mark.parametrize("chosen", [0o640, 0o644, 0o660])
def test_an_existing_file_keeps_the_mode_its_owner_chose(tmp_path: Path, chosen: int) -> None:
    db = tmp_path / "shared.db"
    db.touch(mode=chosen)  # e.g. shared with a group on purpose
    db.chmod(chosen)
    storage = SqliteStorage(str(db))
    try:
        with storage.write("q") as tx:
            tx.ready_types(["t"])  # any transaction: the WAL and SHM exist now
        assert mode(db) == chosen
        assert mode(Path(f"{db}-wal")) == chosen  # SQLite gives them the database's mode
    finally:
        storage.close()
    assert mode(db) == chosen


@pytest.mark.usefixtures("permissive_umask")
def test_reopening_a_database_does_not_change_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    JobCollection("q", db).close()
    db.chmod(0o640)
    with JobCollection("q", db) as jc:
        jc.job("t", {}).save()
    assert mode(db) == 0o640


@pytest.fixture
def read_only_dir() -> Iterator[Path]:
    """A folder an unprivileged user can enter but not write in."""
    folder = Path(tempfile.mkdtemp(prefix="jc-mode-"))
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_database_that_cannot_be_created_is_a_clear_error(read_only_dir: Path) -> None:
    db = read_only_dir / "jobs.db"
    if os.geteuid() == 0:  # root ignores permission bits: try as `nobody`
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            kind, message = pool.submit(_workers.open_unprivileged, str(db), NOBODY).result(60)
    else:
        kind, message = _workers.open_unprivileged(str(db), os.geteuid())
    assert kind == "StorageUnavailable", message
    assert str(db) in message
    assert not db.exists()
