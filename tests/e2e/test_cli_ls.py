"""`jobcollection ls`: newest first, the limit pushed into the query, a cut list said to be
cut, and columns that explain themselves (runs so far and left, priorities by name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jobcollection import Job, JobCollection
from storage_support import Databases


def _ls(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
    return subprocess.run(
        [sys.executable, "-m", "jobcollection", "--db", str(db), "ls", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _rows(done: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    names = header.replace("RUNS LEFT", "RUNS_LEFT").split()
    return [dict(zip(names, line.split(), strict=True)) for line in lines]


@pytest.fixture
def db(db: str) -> str:
    """The suite's `db`, with 12 jobs."""
    with JobCollection("queue", db) as jc:
        jc.save_jobs([Job(jc, "mail", {"n": n}) for n in range(12)])
    return db


def test_newest_first_and_a_cut_list_says_how_many_there_are(db: str) -> None:
    with JobCollection("queue", db) as jc:
        every = [job.id for job in jc.find()]
    done = _ls(db, "--limit", "5")
    assert [row["ID"] for row in _rows(done)] == every[::-1][:5]
    assert done.stderr == "showing the newest 5 of 12 jobs; --limit N for more\n"
    oldest = _ls(db, "--limit", "5", "--oldest-first")
    assert [row["ID"] for row in _rows(oldest)] == every[:5]
    assert oldest.stderr == "showing the oldest 5 of 12 jobs; --limit N for more\n"
    whole = _ls(db, "--limit", "12")
    assert [row["ID"] for row in _rows(whole)] == every[::-1]
    assert whole.stderr == ""  # nothing left out, nothing said
    as_json = _ls(db, "--limit", "3", "--json")
    assert [json.loads(line)["_id"] for line in as_json.stdout.splitlines()] == every[:-4:-1]
    assert "showing the newest 3 of 12" in as_json.stderr  # the JSON lines stay clean


def test_a_filtered_cut_list_counts_what_the_filter_selects(db: str) -> None:
    with JobCollection("queue", db) as jc:
        paused = [job.id for job in jc.find(limit=4)]
        jc.pause_jobs([job_id for job_id in paused if job_id])
    done = _ls(db, "--status", "paused", "--limit", "2")
    assert [row["ID"] for row in _rows(done)] == paused[::-1][:2]
    assert done.stderr == "showing the newest 2 of 4 jobs; --limit N for more\n"


def test_counting_a_huge_list_stops_early(dbs: Databases) -> None:
    path = dbs("many")
    with JobCollection("queue", str(path)) as jc:
        for _ in range(11):
            jc.save_jobs([Job(jc, "bulk", {}) for _ in range(1000)])
    done = _ls(path, "--limit", "2")
    assert len(_rows(done)) == 2
    assert done.stderr == "showing the newest 2 of 10,000 or more jobs; --limit N for more\n"


def test_runs_and_priorities_explain_themselves(db: str) -> None:
    with JobCollection("queue", db) as jc:
        jc.start_job_server()
        high = Job(jc, "urgent", {}).priority("high").retry(2, wait=0)
        high.save()
        odd = Job(jc, "odd", {}).priority(-7).retry(jc.forever)
        odd.save()
        (work,) = jc.get_work("urgent")
        assert work.fail("try again")  # one run done, two left
    by_type = {row["TYPE"]: row for row in _rows(_ls(db, "--limit", "3"))}
    assert (by_type["urgent"]["PRIORITY"], by_type["urgent"]["RUNS"]) == ("high", "1")
    assert by_type["urgent"]["RUNS_LEFT"] == "2"
    assert (by_type["odd"]["PRIORITY"], by_type["odd"]["RUNS"]) == ("-7", "0")
    assert by_type["odd"]["RUNS_LEFT"] == "forever"
    assert by_type["mail"]["PRIORITY"] == "normal"
    assert (by_type["mail"]["RUNS"], by_type["mail"]["RUNS_LEFT"]) == ("0", "1")
