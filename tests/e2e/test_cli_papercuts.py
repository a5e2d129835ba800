"""End-to-end tests of what the CLI says when a newcomer gets something slightly wrong: a
database that is not there, a job in the wrong state, a failure's traceback, a wrong JSON type."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NO_DB = "no such database file (submit, worker, serve and users add create one)"


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
    return subprocess.run(
        [sys.executable, "-m", "jobcollection", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(cwd: Path, *args: str) -> str:
    done = run(cwd, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- read-only commands and a database that does not exist -----------------------------------

READERS = [
    ["ls"],
    ["ls", "--json"],
    ["stats"],
    ["stats", "--json"],
    ["show", "AAAAAAAAAAAAAAAAA"],
    ["cancel", "AAAAAAAAAAAAAAAAA"],
    ["remove", "AAAAAAAAAAAAAAAAA"],
    ["users", "list"],
]


@pytest.mark.parametrize("argv", READERS, ids=" ".join)
@pytest.mark.parametrize("db", ["typo.db", "no/such/folder/jobs.db", "sqlite:///typo.db"])
def test_reading_a_database_that_does_not_exist_is_refused(
    tmp_path: Path, argv: list[str], db: str
) -> None:
    done = run(tmp_path, "--db", db, *argv)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"jobcollection: error: --db {db}: {NO_DB}\n"
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_the_default_and_the_env_var_are_named_too(tmp_path: Path) -> None:
    default = run(tmp_path, "ls")
    assert default.returncode == 1
    assert default.stderr == (
        "jobcollection: error: ./jobcollection.db (the default; give --db PATH or set"
        f" $JOBCOLLECTION_DB): {NO_DB}\n"
    )
    from_env = run(tmp_path, "stats", env={"JOBCOLLECTION_DB": "env.db"})
    assert from_env.returncode == 1
    assert from_env.stderr == f"jobcollection: error: $JOBCOLLECTION_DB (env.db): {NO_DB}\n"
    assert list(tmp_path.iterdir()) == []


def test_commands_that_create_a_database_still_do(tmp_path: Path) -> None:
    job_id = ok(tmp_path, "--db", "jobs.db", "submit", "t").strip()
    assert (tmp_path / "jobs.db").exists()
    assert job_id in ok(tmp_path, "--db", "jobs.db", "ls")
    assert ok(tmp_path, "--db", "users.db", "users", "add", "ada", "--password", "pw").strip()
    assert "ada" in ok(tmp_path, "--db", "users.db", "users", "list")
