"""End-to-end tests of what the CLI says when a newcomer gets something slightly wrong: a
database that is not there, a job in the wrong state, a failure's traceback, a wrong JSON type."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_run import cli_ok, run_cli

from jobcollection import Job, JobCollection
from storage_support import is_sqlite

NO_DB = "no such database file (submit, worker, serve and users add create one)"


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, env=env)


def ok(cwd: Path, *args: str) -> str:
    return cli_ok(cwd, *args)


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


@pytest.mark.sqlite_only(reason="database files that do not exist")
@pytest.mark.parametrize("argv", READERS, ids=" ".join)
@pytest.mark.parametrize("db", ["typo.db", "no/such/folder/jobs.db", "sqlite:///typo.db"])
def test_reading_a_database_that_does_not_exist_is_refused(
    tmp_path: Path, argv: list[str], db: str
) -> None:
    done = run(tmp_path, "--db", db, *argv)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"jobcollection: error: --db {db}: {NO_DB}\n"
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.sqlite_only(reason="the default database file, ./jobcollection.db, does not exist")
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


@pytest.mark.sqlite_only(reason="commands that create a SQLite file")
def test_commands_that_create_a_database_still_do(tmp_path: Path) -> None:
    job_id = ok(tmp_path, "--db", "jobs.db", "submit", "t").strip()
    assert (tmp_path / "jobs.db").exists()
    assert job_id in ok(tmp_path, "--db", "jobs.db", "ls")
    assert ok(tmp_path, "--db", "users.db", "users", "add", "ada", "--password", "pw").strip()
    assert "ada" in ok(tmp_path, "--db", "users.db", "users", "list")


# -- show: failures and log as text -----------------------------------------------------------


def _failed_job(db: str) -> str:
    """A job whose one run raised an exception with a two-line message."""
    with JobCollection("queue", db) as jc:
        jc.start_job_server()
        job = Job(jc, "t", {})
        job.save()
        (work,) = jc.get_work("t")
        try:
            raise ValueError("\n".join(["bad input", "second line"]))
        except ValueError as error:
            work.fail(error)
        job_id = work.id
        assert job_id is not None
        return job_id


def test_show_prints_failure_tracebacks_as_text(tmp_path: Path, db: str) -> None:
    job_id = _failed_job(db)
    shown = ok(tmp_path, "--db", db, "show", job_id)
    assert "\\n" not in shown.replace('"\\n".join', "")  # no JSON escapes
    failures = shown[shown.index("failures (1):") : shown.index("\nlog (")].splitlines()
    run_id = json.loads(ok(tmp_path, "--db", db, "show", job_id, "--json"))["failures"][0]
    assert failures[1] == f"  1. run {run_id['runId']}"
    assert failures[2:5] == [
        "     type: ValueError",
        "     value: bad input",
        "            second line",
    ]
    assert failures[5] == "     traceback:"
    assert failures[6] == "       Traceback (most recent call last):"
    assert failures[-2:] == ["       ValueError: bad input", "       second line"]
    assert not any(line.lstrip().startswith("message:") for line in failures)  # = value
    log = shown[shown.index("\nlog (") :].splitlines()
    failed = next(
        i for i, line in enumerate(log) if "Job Failed with Fatal Error: bad input" in line
    )
    assert log[failed + 1].strip() == "second line."
    assert log[failed + 1].index("second") == log[failed].index("Job Failed")


def test_show_prints_other_failures_field_by_field(tmp_path: Path, db: str) -> None:
    with JobCollection("queue", db) as jc:
        jc.start_job_server()
        Job(jc, "t", {}).save()
        (work,) = jc.get_work("t")
        work.fail({"value": "timeout", "attempt": 3, "hosts": ["a", "b"]})
        job_id = work.id
    shown = ok(tmp_path, "--db", db, "show", str(job_id))
    assert '     value: timeout\n     attempt: 3\n     hosts: ["a", "b"]\n' in shown


# -- control commands: why a job was left unchanged -------------------------------------------


def test_control_commands_say_why_a_job_is_unchanged(tmp_path: Path, db: str) -> None:
    def submit(*options: str) -> str:
        return ok(tmp_path, "--db", db, "submit", "t", *options).strip()

    ready = submit()
    first = submit()
    waiting = submit("--depends", first)
    assert ok(tmp_path, "--db", db, "remove", ready, "--db", db) == (
        f"{ready}: unchanged (it is ready; remove takes cancelled, completed or failed jobs)\n"
    )
    assert ok(tmp_path, "--db", db, "rerun", ready) == (
        f"{ready}: unchanged (it is ready; rerun takes completed jobs)\n"
    )
    assert ok(tmp_path, "--db", db, "resume", ready, waiting) == (
        f"{ready}: unchanged (it is ready; resume takes paused jobs)\n"
        f"{waiting}: unchanged (it is waiting; resume takes paused jobs)\n"
    )
    assert ok(tmp_path, "--db", db, "restart", ready) == (
        f"{ready}: unchanged (it is ready; restart takes cancelled or failed jobs)\n"
    )
    assert ok(tmp_path, "--db", db, "ready", waiting, ready) == (
        f"{waiting}: unchanged (it waits for 1 job it depends on)\n"
        f"{ready}: unchanged (it is ready; ready takes waiting jobs)\n"
    )
    assert ok(tmp_path, "--db", db, "cancel", ready) == f"{ready}: ok\n"
    assert ok(tmp_path, "--db", db, "pause", ready) == (
        f"{ready}: unchanged (it is cancelled; pause takes ready or waiting jobs)\n"
    )


# -- JSON types are named in JSON's words ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "named"),
    [("null", "null"), ("[1, 2]", "an array"), ("7", "a number"), ('"x"', "a string")],
)
def test_data_of_the_wrong_json_type_is_named_in_json_words(
    tmp_path: Path, db: str, data: str, named: str
) -> None:
    done = run(tmp_path, "--db", db, "submit", "t", "--data", data)
    assert done.returncode == 2
    assert done.stderr == (
        "jobcollection: error: --data: must be a JSON object like '{\"key\": 1}',"
        f" got {named}: {data!r}\n"
    )
    if is_sqlite(db):
        assert not Path(db).exists()  # nothing opened
