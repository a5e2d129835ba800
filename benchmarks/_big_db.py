"""A large job database, built fast: rows written straight into the schema by `executemany`.

The schema comes from jobcollection itself (opening the file migrates it); the rows are what
the engine stores for jobs in each status, with the usual log entries in the row. A tenth of
the jobs wait for another job (a waiting one, due in a day) to complete. No change-feed rows
and no `job_log` rows are written: the reads measured here read neither. Building 1,000,000
jobs takes about half a minute.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

from jobcollection.core.constants import FOREVER, FOREVER_DATE
from jobcollection.core.ids import random_id
from jobcollection.storage.sqlite import SqliteStorage

# The share of each status, roughly a queue that has run for a while: most jobs done.
MIX = (
    ("completed", 0.75),
    ("dependent", 0.10),  # waiting for another job
    ("ready", 0.05),
    ("waiting", 0.04),
    ("failed", 0.02),
    ("cancelled", 0.02),
    ("running", 0.01),
    ("paused", 0.01),
)
TYPES = ("email", "resize", "report", "sync", "cleanup")
PRIORITIES = (0, 0, 0, 0, -10, 10, -5)
_COLUMNS = (
    "collection", "id", "type", "status", "run_id", "priority", "retry_until", "after",
    "updated", "created", "expires_after", "work_timeout", "retries", "retried",
    "repeat_retries", "retry_wait", "retry_backoff", "repeats", "repeated", "repeat_until",
    "repeat_wait", "progress", "depends", "resolved", "data", "result", "log",
)  # fmt: skip
_INSERT = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_BATCH = 20_000


def _log(created: int) -> str:
    entries = [("Constructed", created - 1), ("Job Submitted", created)]
    return json.dumps(
        [{"time": t, "runId": None, "level": "info", "message": m} for m, t in entries],
        separators=(",", ":"),
    )


def _row(
    collection: str, n: int, status: str, start: int, rng: random.Random, antecedent: str
) -> tuple[object, ...]:
    created = start + n  # one job a millisecond, in insertion order
    depends = f'["{antecedent}"]' if status == "dependent" else "[]"
    status = "waiting" if status == "dependent" else status
    done = status in ("completed", "failed", "cancelled")
    updated = created + rng.randrange(1, 60_000) if done or status == "running" else created
    after = created + 86_400_000 if status == "waiting" and depends == "[]" else created
    running = status == "running"
    progress = (
        '{"completed":1,"total":1,"percent":100}'
        if status == "completed"
        else '{"completed":0,"total":1,"percent":0}'
    )
    return (
        collection,
        random_id(),
        rng.choice(TYPES),
        status,
        random_id() if running else None,
        rng.choice(PRIORITIES),
        FOREVER_DATE,
        after,
        updated,
        created,
        None,  # no workTimeout: an idle server has nothing to expire
        None,
        0 if done else 1,
        1 if done or running else 0,
        FOREVER,
        300_000,
        "constant",
        0,
        0,
        FOREVER_DATE,
        "300000",
        progress,
        depends,
        "[]",
        json.dumps({"n": n, "to": f"user{n}@example.com"}),
        '{"ok":true}' if status == "completed" else None,
        _log(created),
    )


def build(
    path: Path,
    jobs: int,
    collection: str = "queue",
    seed: int = 1,
    dependents: float = dict(MIX)["dependent"],
) -> float:
    """Create `path` holding `jobs` jobs in `collection`, the share `dependents` of them
    waiting for another job (taken from the completed ones); returns the seconds it took."""
    began = time.perf_counter()
    SqliteStorage(str(path)).close()  # the schema, at this version of jobcollection
    rng = random.Random(seed)
    mix = dict(MIX)
    mix["completed"] -= dependents - mix["dependent"]
    mix["dependent"] = dependents
    statuses = rng.choices(list(mix), weights=list(mix.values()), k=jobs)
    start = int(time.time() * 1000) - jobs - 120_000
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a fixture: a crash while building is a rebuild
    antecedent = random_id()  # the first job, waiting; a tenth of the others wait for it
    statuses[0] = "waiting"
    for first in range(0, jobs, _BATCH):
        rows = [
            _row(collection, n, statuses[n], start, rng, antecedent)
            for n in range(first, min(first + _BATCH, jobs))
        ]
        if first == 0:
            rows[0] = (rows[0][0], antecedent, *rows[0][2:])
        deps = [(antecedent, row[1]) for row in rows if row[22] != "[]"]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, rows)
        conn.executemany("INSERT INTO job_deps (antecedent, job_id) VALUES (?, ?)", deps)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - began
