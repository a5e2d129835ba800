"""End-to-end tests of the `jobcollection` command line, run as `python -m jobcollection`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_run import poll

from jobcollection import FOREVER, Job, JobCollection
from storage_support import Databases, dump_tables, is_sqlite

WAIT_S = 20.0  # upper bound of every polling loop


@dataclass
class Cli:
    """Runs the CLI in `cwd` against `db` (given with --db unless told otherwise)."""

    cwd: Path
    db: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def argv(self, *args: str, db: bool = True) -> list[str]:
        prefix = ["--db", str(self.db)] if db else []
        return [sys.executable, "-m", "jobcollection", *prefix, *args]

    def run(self, *args: str, db: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, db=db),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def submit(self, job_type: str, *options: str) -> str:
        job_id = self.ok("submit", job_type, *options).strip()
        assert len(job_id) == 17, job_id
        return job_id

    def doc(self, job_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.ok("show", job_id, "--json"))
        return document

    def ls(self, *options: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.ok("ls", "--json", *options).splitlines()]

    def stats(self) -> dict[str, Any]:
        summary: dict[str, Any] = json.loads(self.ok("stats", "--json"))
        return summary


@pytest.fixture
def cli(tmp_path: Path, db: str) -> Cli:
    return Cli(tmp_path, db)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def jobs_in(db: str) -> dict[str, dict[str, Any]]:
    """Every job of the `queue` collection, read in-process (with log and failures)."""
    with JobCollection("queue", db) as jc:
        found = [jc.get_job(str(job.id), get_log=True, get_failures=True) for job in jc.find()]
        return {str(job.id): job.doc for job in found if job is not None}


# -- submit / show / ls / stats ---------------------------------------------------------------


def test_submit_with_every_option_is_reflected_by_show_ls_and_stats(cli: Cli) -> None:
    first = cli.submit("email", "--data", '{"to": "a@example.com"}')
    before = now_ms()
    second = cli.submit(
        "sms",
        *("--data", '{"n": 1, "when": {"$date": 1000}}'),
        *("--priority", "high", "--retries", "3", "--retry-wait", "1500"),
        *("--backoff", "exponential", "--delay", "60000"),
        *("--repeats", "2", "--repeat-wait", "5000", "--depends", first),
    )
    third = cli.submit(
        "report", "--priority", "-7", "--after", "2030-01-01T00:00:00Z", "--cron", "0 3 * * *"
    )
    fourth = cli.submit("report", "--after", "1893456000000", "--collection", "other")

    doc = cli.doc(second)
    assert doc["type"] == "sms"
    assert doc["status"] == "waiting"
    assert doc["data"] == {"n": 1, "when": {"$date": 1000}}
    assert doc["priority"] == -10
    assert (doc["retries"], doc["retryWait"], doc["retryBackoff"]) == (4, 1500, "exponential")
    assert (doc["repeats"], doc["repeatWait"]) == (2, 5000)
    assert doc["depends"] == [first]
    assert before + 60000 <= doc["after"] <= now_ms() + 60000
    assert [entry["message"] for entry in doc["log"]] == ["Constructed", "Job Submitted"]

    cron_doc = cli.doc(third)
    jan_1_2030_3am = int(datetime(2030, 1, 1, 3, tzinfo=UTC).timestamp() * 1000)
    assert cron_doc["after"] == jan_1_2030_3am
    assert cron_doc["priority"] == -7
    assert cron_doc["repeats"] == FOREVER
    assert cron_doc["repeatWait"]["schedules"] == [{"s": [0], "m": [0], "h": [3]}]

    text = cli.ok("show", second)
    for fragment in ("sms", "-10 (high)", "exponential", "1500 ms", first, "Job Submitted"):
        assert fragment in text

    listed = cli.ls()
    assert [d["_id"] for d in listed] == [third, second, first]  # newest first
    assert cli.ls("--limit", "1") == listed[:1]
    assert [d["_id"] for d in cli.ls("--type", "sms", "report", "--status", "waiting")] == [
        third,
        second,
    ]
    assert [d["_id"] for d in cli.ls("--status", "ready")] == [first]
    other = cli.run("ls", "--json", "--collection", "other")  # global option after the command
    assert [json.loads(line)["_id"] for line in other.stdout.splitlines()] == [fourth]

    table = cli.ok("ls").splitlines()
    header = table[0].replace("RUNS LEFT", "RUNS_LEFT").split()
    assert header == [
        "ID", "TYPE", "STATUS", "PRIORITY", "RUNS", "RUNS_LEFT", "UPDATED", "PROGRESS"
    ]  # fmt: skip
    assert [line.split()[0] for line in table[1:]] == [third, second, first]
    assert len({line.index(line.split()[2]) for line in table[1:]}) == 1  # STATUS aligned
    row = dict(zip(header, table[2].split(), strict=True))
    assert row | {"UPDATED": ""} == {
        "ID": second,
        "TYPE": "sms",
        "STATUS": "waiting",
        "PRIORITY": "high",
        "RUNS": "0",
        "RUNS_LEFT": "4",
        "UPDATED": "",
        "PROGRESS": "0%",
    }
    assert datetime.fromisoformat(row["UPDATED"]).tzinfo is not None

    summary = cli.stats()
    assert summary["total"] == 3
    assert summary["by_status"]["waiting"] == 2
    assert summary["by_status"]["ready"] == 1
    assert summary["by_type"]["report"]["waiting"] == 1
    assert summary["by_type"]["email"]["total"] == 1
    stats_table = cli.ok("stats").splitlines()
    assert stats_table[0].split()[0] == "TYPE"
    assert stats_table[0].split()[-1] == "TOTAL"
    assert [line.split()[0] for line in stats_table[1:]] == ["email", "report", "sms", "TOTAL"]
    assert stats_table[-1].split()[-1] == "3"
    assert len({len(line) for line in stats_table}) == 1  # right-aligned counts


def test_global_options_and_env_var(cli: Cli, dbs: Databases) -> None:
    env_db = dbs("env")
    done = subprocess.run(
        cli.argv("submit", "x", db=False),
        cwd=cli.cwd,
        env={**cli.env, "JOBCOLLECTION_DB": env_db},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert list(jobs_in(env_db)) == [done.stdout.strip()]
    job_id = cli.submit("x", "--db", cli.db)  # --db after the command
    assert list(jobs_in(cli.db)) == [job_id]
    assert cli.ok("--version").startswith("jobcollection ")
    assert "submit" in cli.ok("--help")


def test_control_commands_change_status(cli: Cli) -> None:
    job = cli.submit("t", "--priority", "critical")
    later = cli.submit("t", "--delay", "600000")

    def status(job_id: str) -> str:
        return str(cli.doc(job_id)["status"])

    assert cli.ok("pause", job, later) == f"{job}: ok\n{later}: ok\n"
    assert status(job) == status(later) == "paused"
    assert cli.ok("pause", job) == (
        f"{job}: unchanged (it is paused; pause takes ready or waiting jobs)\n"
    )
    assert cli.ok("resume", job, later) == f"{job}: ok\n{later}: ok\n"
    assert (status(job), status(later)) == ("ready", "waiting")
    assert cli.ok("ready", later) == f"{later}: ok\n"
    assert status(later) == "ready"
    assert cli.ok("cancel", job) == f"{job}: ok\n"
    assert status(job) == "cancelled"
    assert cli.ok("cancel", job) == (
        f"{job}: unchanged (it is cancelled; cancel takes running, ready, waiting or paused jobs)\n"
    )
    assert cli.ok("restart", job) == f"{job}: ok\n"
    assert status(job) == "ready"
    assert cli.ok("rerun", job) == f"{job}: unchanged (it is ready; rerun takes completed jobs)\n"

    with JobCollection("queue", cli.db) as jc:  # complete `job` as a worker would
        jc.start_job_server()
        (work,) = jc.get_work("t")
        assert work.id == job
        assert work.done({"answer": 42})
    assert cli.doc(job)["result"] == {"answer": 42}
    out = cli.ok("rerun", job)
    assert out.startswith(f"{job}: ok (new job ")
    rerun_id = out.split("new job ")[1].rstrip(")\n")
    assert status(rerun_id) == "ready"
    assert cli.ok("remove", job) == f"{job}: ok\n"
    assert cli.run("show", job).returncode == 1


def test_unknown_ids_exit_1_and_change_nothing(cli: Cli) -> None:
    job = cli.submit("t")
    done = cli.run("show", "NoSuchJob")
    assert done.returncode == 1
    assert "NoSuchJob" in done.stderr
    for command in ("cancel", "restart", "pause", "resume", "ready", "remove", "rerun"):
        done = cli.run(command, job, "NoSuchJob")
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.count("\n") == 1
        assert "NoSuchJob" in done.stderr
        assert done.stdout == ""
    assert cli.doc(job)["status"] == "ready"


@pytest.mark.sqlite_only(reason="a file that is not a SQLite database")
def test_storage_errors_exit_1_with_one_line(cli: Cli) -> None:
    Path(cli.db).write_bytes(b"this is not a database" * 100)
    done = cli.run("ls")
    assert done.returncode == 1
    assert done.stderr.startswith("jobcollection: error: database")
    assert done.stderr.count("\n") == 1
    assert "not a" in done.stderr


# -- bad arguments: exit 2, one line naming the problem, nothing written ----------------------

BAD_ARGUMENTS = [
    (["frobnicate"], "frobnicate"),
    ([], "command"),
    (["submit"], "TYPE"),
    (["submit", ""], "TYPE"),
    (["submit", "t", "--data", "{not json"], "--data"),
    (["submit", "t", "--data", "[1, 2]"], "--data"),
    (["submit", "t", "--data", '"text"'], "--data"),
    (["submit", "t", "--retries", "-1"], "--retries"),
    (["submit", "t", "--retry-wait", "-5"], "--retry-wait"),
    (["submit", "t", "--backoff", "linear"], "--backoff"),
    (["submit", "t", "--delay", "soon"], "--delay"),
    (["submit", "t", "--repeats", "-2"], "--repeats"),
    (["submit", "t", "--after", "next tuesday"], "--after"),
    (["submit", "t", "--after", "2030-13-45"], "--after"),
    (["submit", "t", "--priority", "urgent"], "--priority"),
    (["submit", "t", "--priority", "4294967296"], "--priority"),
    (["submit", "t", "--cron", "61 * * * *"], "--cron"),
    (["submit", "t", "--cron", "0 0 30 2 *"], "--cron"),
    (["submit", "t", "--cron", "* * *"], "--cron"),
    (["submit", "t", "--cron", "* * * * *", "--repeat-wait", "5"], "--cron"),
    (["submit", "t", "--delay", "5", "--after", "0"], "--after"),
    (["submit", "t", "--depends", "NoSuchJob"], "NoSuchJob"),
    (["submit", "t", "--collection", ""], "--collection"),
    (["ls", "--status", "sleeping"], "sleeping"),
    (["ls", "--limit", "-3"], "--limit"),
    (["worker", "nosuchmodule:work", "--type", "t"], "nosuchmodule"),
    (["worker", "tasks:nosuchfunction", "--type", "t"], "nosuchfunction"),
    (["worker", "tasks", "--type", "t"], "MODULE:FUNCTION"),
    (["worker", "broken:work", "--type", "t"], "broken"),
    (["worker", "tasks:work"], "--type"),
    (["worker", "tasks:work", "--type", "t", "--concurrency", "-1"], "--concurrency"),
    (["worker", "tasks:work", "--type", "t", "--poll-interval", "-1"], "--poll-interval"),
    (["worker", "tasks:work", "--type", "t", "--work-timeout", "0"], "--work-timeout"),
]


@pytest.fixture
def populated(cli: Cli) -> Cli:
    """A database holding one job, written and closed in-process (fast)."""
    with JobCollection("queue", cli.db) as jc:
        Job(jc, "t", {"n": 1}).save()
    (cli.cwd / "tasks.py").write_text("def work(job):\n    return None\n")
    (cli.cwd / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    return cli


def _digest(db: str) -> object:
    """What the database holds: on SQLite its file's bytes (the schema and settings too), on
    other storage every row of every table."""
    if is_sqlite(db):
        return hashlib.sha256(Path(db).read_bytes()).hexdigest()
    return dump_tables(db)


@pytest.mark.parametrize(
    ("argv", "named"), BAD_ARGUMENTS, ids=[" ".join(argv) or "(none)" for argv, _ in BAD_ARGUMENTS]
)
def test_bad_arguments_exit_2_and_write_nothing(
    populated: Cli, argv: list[str], named: str
) -> None:
    docs_before = jobs_in(populated.db)
    files_before = sorted(p.name for p in populated.cwd.iterdir())
    digest_before = _digest(populated.db)

    done = populated.run(*argv)

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("jobcollection: error: ")
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert named.lower() in done.stderr.lower()
    assert done.stdout == ""
    assert _digest(populated.db) == digest_before
    assert sorted(p.name for p in populated.cwd.iterdir()) == files_before
    assert jobs_in(populated.db) == docs_before


@pytest.mark.sqlite_only(reason="whether a SQLite file is created")
def test_bad_arguments_do_not_create_a_database(cli: Cli) -> None:
    done = cli.run("submit", "t", "--data", "[]")
    assert done.returncode == 2
    assert not Path(cli.db).exists()


# -- worker -----------------------------------------------------------------------------------

WORKER_MODULE = """
    import pathlib
    import time

    def work(job):
        if job.data.get("block"):
            pathlib.Path(f"started-{job.id}").write_text("")
            deadline = time.monotonic() + 60
            while not pathlib.Path(f"release-{job.id}").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return {"double": job.data.get("n", 0) * 2}
"""


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def still_running_after(self, seconds: float) -> bool:
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return True
        return False


@pytest.fixture
def start_worker(cli: Cli) -> Iterator[Callable[..., Worker]]:
    (cli.cwd / "tasks.py").write_text(textwrap.dedent(WORKER_MODULE))
    started: list[Worker] = []

    def start(*options: str, session: bool = False) -> Worker:
        out, err = cli.cwd / "worker.out", cli.cwd / "worker.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                cli.argv("worker", "tasks:work", *options),
                cwd=cli.cwd,
                env=cli.env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=session,
            )
        worker = Worker(proc, out, err)
        started.append(worker)
        poll(lambda: "serving" in out.read_text() or proc.poll() is not None, "the worker")
        assert proc.poll() is None, err.read_text()
        line = out.read_text()
        assert line.count("\n") == 1
        assert "tasks:work" in line
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def _status(cli: Cli, job_id: str) -> str:
    return str(jobs_in(cli.db)[job_id]["status"])


def test_worker_processes_jobs_and_soft_stops(
    cli: Cli, start_worker: Callable[..., Worker]
) -> None:
    early = cli.submit("calc", "--data", '{"n": 21}')
    worker = start_worker("--type", "calc", "other", "--concurrency", "2", "--poll-interval", "200")
    late = [cli.submit("calc", "--data", f'{{"n": {n}}}') for n in range(3)]
    poll(lambda: all(_status(cli, i) == "completed" for i in [early, *late]), "jobs to complete")
    assert cli.doc(early)["result"] == {"double": 42}
    assert [cli.doc(i)["result"]["double"] for i in late] == [0, 2, 4]

    blocking = cli.submit("calc", "--data", '{"block": true}')
    poll((cli.cwd / f"started-{blocking}").exists, "the blocking job to start")
    worker.signal(signal.SIGTERM)
    poll(lambda: "finishing" in worker.stderr(), "the soft-shutdown notice")
    assert worker.still_running_after(0.3)  # waits for the running job
    (cli.cwd / f"release-{blocking}").write_text("")
    assert worker.proc.wait(timeout=WAIT_S) == 0, worker.stderr()
    assert _status(cli, blocking) == "completed"
    assert "stopped" in worker.stderr()


def test_worker_second_signal_stops_at_once(cli: Cli, start_worker: Callable[..., Worker]) -> None:
    worker = start_worker("--type", "calc", "--poll-interval", "200", "--work-timeout", "60000")
    blocking = cli.submit("calc", "--data", '{"block": true}')
    poll((cli.cwd / f"started-{blocking}").exists, "the blocking job to start")
    assert _status(cli, blocking) == "running"

    worker.signal(signal.SIGTERM)
    poll(lambda: "finishing" in worker.stderr(), "the soft-shutdown notice")
    assert worker.still_running_after(0.2)
    worker.signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=WAIT_S) == 0, worker.stderr()

    doc = jobs_in(cli.db)[blocking]
    assert doc["status"] == "failed"
    assert [f["value"] for f in doc["failures"]] == ["Worker shutdown"]
    assert "stopped at once; unfinished jobs failed" in worker.stderr()


def test_worker_idle_stops_on_sigint(cli: Cli, start_worker: Callable[..., Worker]) -> None:
    worker = start_worker("--type", "calc")
    worker.signal(signal.SIGINT)
    assert worker.proc.wait(timeout=WAIT_S) == 0, worker.stderr()
    assert "Traceback" not in worker.stderr()


def test_worker_in_processes_survives_ctrl_c_to_its_process_group(
    cli: Cli, start_worker: Callable[..., Worker]
) -> None:
    """Ctrl-C reaches the pool processes too; they must keep working while we stop softly."""
    worker = start_worker(
        "--type", "calc", "--processes", "1", "--poll-interval", "200", session=True
    )
    blocking = cli.submit("calc", "--data", '{"block": true, "n": 4}')
    poll((cli.cwd / f"started-{blocking}").exists, "the blocking job to start")
    os.killpg(worker.proc.pid, signal.SIGINT)
    poll(lambda: "finishing" in worker.stderr(), "the soft-shutdown notice")
    (cli.cwd / f"release-{blocking}").write_text("")
    assert worker.proc.wait(timeout=WAIT_S) == 0, worker.stderr()
    doc = jobs_in(cli.db)[blocking]
    assert (doc["status"], doc["result"]) == ("completed", {"double": 8})
    assert "Traceback" not in worker.stderr()
