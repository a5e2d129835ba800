"""The read-only commands load only what they use: a `ls` beside a big queue is mostly Python
starting up and importing, so `ls`, `show` and `stats` on a database stay clear of the Python
API's asyncio machinery, the engine's operations, the server and the network client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobcollection import Job, JobCollection
from jobcollection.storage import sqlite_path

HEAVY = (
    "asyncio",
    "jobcollection.api.collection",
    "jobcollection.engine.manager",
    "jobcollection.server.app",
    "jobcollection.client.remote",
    "uvicorn",
    "websockets",
)

PROBE = """
import json, sys
from jobcollection.cli.main import main
code = main(sys.argv[1:])
heavy = json.loads({heavy!r})
print(json.dumps({{"code": code, "loaded": [m for m in heavy if m in sys.modules]}}))
"""


@pytest.fixture
def db(db: str) -> str:
    """The suite's `db`, with one job."""
    with JobCollection("queue", db=db) as jc:
        Job(jc, "mail", {"to": "ada"}).save()
    return db


def _loaded(*argv: str) -> dict[str, object]:
    heavy = HEAVY
    if not sqlite_path(argv[1]):  # psycopg imports asyncio itself (for its async API)
        heavy = tuple(name for name in HEAVY if name != "asyncio")
    probe = PROBE.format(heavy=json.dumps(heavy))
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("command", [["ls"], ["ls", "--status", "ready"], ["stats"]])
def test_read_commands_load_no_more_than_they_use(db: str, command: list[str]) -> None:
    assert _loaded("--db", db, *command) == {"code": 0, "loaded": []}


def test_show_loads_no_more_than_it_uses(db: str) -> None:
    with JobCollection("queue", db=db) as jc:
        [job] = jc.find()
    assert _loaded("--db", db, "show", str(job.id)) == {"code": 0, "loaded": []}


def test_a_command_that_works_on_jobs_loads_the_api(db: str) -> None:
    # The other side of the coin: the probe does see what a command loads.
    outcome = _loaded("--db", db, "cancel", "NoSuchJob23456789")
    assert "jobcollection.api.collection" in outcome["loaded"]  # type: ignore[operator]
