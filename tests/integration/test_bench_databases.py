"""`jobcollection bench --storage postgresql://...`: each figure in a schema of its own, dropped
after; the single-connection commit floor."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcollection import Job, JobCollection
from jobcollection.bench import databases
from pg_support import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[str]:
    with fresh_database():  # skips (or fails under CI) when PostgreSQL cannot be reached
        pass
    from pg_support import server_url

    databases.use(server_url())
    try:
        yield server_url()
    finally:
        databases.use(None)


def _schemas(server: str) -> set[str]:
    import psycopg

    with psycopg.connect(server) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'jcbench_%'")
        return {name for (name,) in rows}


def _schema_of(url: str) -> str:
    return url.split("search_path%3D", 1)[1].split("&", 1)[0]


def test_each_fresh_database_is_a_schema_of_its_own_dropped_after(server: str) -> None:
    before = _schemas(server)
    assert databases.kind() == "postgres"
    with databases.fresh() as first, databases.fresh() as second:
        assert first != second
        for url in (first, second):
            with JobCollection("bench", url) as jc:
                Job(jc, "noop", {}).save()
                assert len(jc.find({})) == 1  # each sees only its own jobs
        made = {_schema_of(first), _schema_of(second)}
        assert made <= _schemas(server) - before
    assert not (made & _schemas(server))


def test_the_commit_floor_is_measured_in_a_schema_dropped_after(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    fresh = databases.fresh

    @contextlib.contextmanager
    def noted() -> Iterator[str]:
        with fresh() as url:
            made.append(_schema_of(url))
            assert made[-1] in _schemas(server)
            yield url

    monkeypatch.setattr(databases, "fresh", noted)
    assert databases.commit_floor(50) > 0
    assert len(made) == 1
    assert made[0] not in _schemas(server)


def test_without_a_server_the_databases_are_sqlite_files() -> None:
    databases.use(None)
    assert databases.kind() == "sqlite"
    databases.use("some/file.db")
    assert databases.kind() == "sqlite"
    with databases.fresh() as path:
        assert path.endswith("bench.db")


def test_a_terminated_bench_drops_its_schema(server: str, tmp_path: Path) -> None:
    """SIGTERM (a CI timeout, `kill`) in the middle of a figure still drops its schema."""
    before = _schemas(server)
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "jobcollection.bench", "--storage", server, "--quick"]
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as stderr:
        bench = subprocess.Popen([*command, "--out", str(out)], stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not (_schemas(server) - before):
            assert bench.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, "the bench made no schema within 60 s"
            time.sleep(0.02)
        made = _schemas(server) - before
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert not (made & _schemas(server))
    assert not out.exists()
