"""Harness for the engine conformance tests (SPEC 1-6, 11).

`Engine` wraps one `JobManager` on a SQLite file with a `ManualClock`, so waits, backoff and
schedules run in milliseconds: advance the clock, then sweep or poll (bounded) for the
scheduler thread. Every call goes through `JobManager.call(method, params)`, i.e. the same
validation and execution a DDP call gets.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobcollection.api._job_core import new_document
from jobcollection.engine.clock import ManualClock
from jobcollection.engine.manager import JobManager
from jobcollection.storage import open_storage, sqlite_path
from storage_support import dump_tables

Doc = dict[str, Any]
Snapshot = tuple[Any, dict[str, list[tuple[Any, ...]]]]

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z
ID_ALPHABET = frozenset("23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz")
NO_RUN = "NoSuchRunId234567"  # a well-formed runId no job ever had
TABLES = ("jobs", "job_log", "job_deps", "changes")
SERVER_LOG_KEYS = {"time", "runId", "level", "message"}


def make_template(path: Path) -> Path:
    """Create an empty SQLite database with the current schema, to copy for each test."""
    open_storage(str(path)).close()
    return path


def is_meteor_id(value: object) -> bool:
    """17 characters of Meteor's `Random.id()` alphabet."""
    return isinstance(value, str) and len(value) == 17 and set(value) <= ID_ALPHABET


class Engine:
    """One collection's engine on a fresh database, driven through `call`."""

    def __init__(
        self,
        db: str,
        start_ms: int = T0,
        template: Path | None = None,
        scrub: Callable[[Doc], Doc] | None = None,
    ) -> None:
        self.db = db
        if template is not None:  # an empty, migrated SQLite file: much faster than migrating
            path = sqlite_path(db)
            assert path is not None, f"a template is for a SQLite database, not {db!r}"
            shutil.copyfile(template, path)
        self.clock = ManualClock(start_ms)
        self.storage = open_storage(db)
        self.m = JobManager(self.storage, clock=self.clock, scrub=scrub)

    def close(self) -> None:
        self.m.close()
        # Test speed only: the checkpoint at close need not reach the disk.
        conn = getattr(self.storage, "_conn", None)
        if isinstance(conn, sqlite3.Connection):
            conn.execute("PRAGMA synchronous = OFF")
        self.storage.close()

    # -- time --------------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def advance(self, ms: int) -> int:
        return self.clock.advance(ms)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll until `predicate()` holds (the scheduler thread acts after a clock jump)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached within the time limit")
            time.sleep(0.002)

    def settle(self) -> None:
        """Give the scheduler thread a moment (for checks that something did NOT happen)."""
        time.sleep(0.03)

    # -- calls -------------------------------------------------------------------------------

    def call(self, method: str, *params: object) -> Any:
        return self.m.call(method, list(params))

    def doc(self, job_type: str = "t", data: Doc | None = None, **changes: Any) -> Doc:
        """The document meteor-job builds for `new Job(root, type, data)`, with changes."""
        doc = new_document(job_type, {"n": 1} if data is None else data, self.now)
        doc.update(changes)
        return doc

    def save(self, job_type: str = "t", data: Doc | None = None, **changes: Any) -> str:
        job_id = self.call("jobSave", self.doc(job_type, data, **changes))
        assert isinstance(job_id, str), job_id
        return job_id

    def get(self, job_id: str) -> Doc:
        """The whole stored document, with log and failures."""
        doc = self.call("getJob", job_id, {"getLog": True, "getFailures": True})
        assert isinstance(doc, dict), f"job {job_id} not found"
        return doc

    def exists(self, job_id: str) -> bool:
        return self.call("getJob", job_id) is not None

    def status(self, job_id: str) -> str:
        return str(self.get(job_id)["status"])

    def log(self, job_id: str) -> list[Doc]:
        entries: list[Doc] = self.get(job_id)["log"]
        return entries

    def messages(self, job_id: str) -> list[str]:
        return [entry["message"] for entry in self.log(job_id)]

    def work(self, job_type: str | list[str] = "t", **options: Any) -> list[Doc]:
        docs = self.call("getWork", job_type, options)
        assert isinstance(docs, list)
        return docs

    def claim(self, job_id: str, **options: Any) -> str:
        """getWork for the job's type; the job must be the one handed out. Returns the runId."""
        docs = self.work(self.get(job_id)["type"], **options)
        assert [d["_id"] for d in docs] == [job_id]
        run_id = docs[0]["runId"]
        assert isinstance(run_id, str)
        return run_id

    def running(self, job_type: str = "t", **changes: Any) -> tuple[str, str]:
        job_id = self.save(job_type, **changes)
        return job_id, self.claim(job_id)

    def completed(self, job_type: str = "t", **changes: Any) -> tuple[str, str]:
        job_id, run_id = self.running(job_type, **changes)
        assert self.call("jobDone", job_id, run_id, {"ok": True}) is True
        return job_id, run_id

    def failed(self, job_type: str = "t", **changes: Any) -> tuple[str, str]:
        job_id, run_id = self.running(job_type, **changes)
        assert self.call("jobFail", job_id, run_id, {"value": "x"}, {"fatal": True}) is True
        return job_id, run_id

    def cancelled(self, job_type: str = "t", **changes: Any) -> str:
        job_id = self.save(job_type, **changes)
        assert self.call("jobCancel", job_id) is True
        return job_id

    def in_status(self, status: str, job_type: str = "t") -> tuple[str, str | None]:
        """A job of `job_type` in `status`, and the runId of its (last) run if it had one."""
        if status == "waiting":
            return self.save(job_type, after=self.now + 3_600_000), None
        if status == "paused":
            return self.save(job_type, status="paused"), None
        if status == "ready":
            return self.save(job_type), None
        if status == "running":
            return self.running(job_type)
        if status == "completed":
            return self.completed(job_type)
        if status == "failed":
            return self.failed(job_type)
        if status == "cancelled":
            return self.cancelled(job_type), None
        raise AssertionError(status)

    # -- server-side access (no method call) ----------------------------------------------------

    def set_fields(self, job_id: str, **fields: Any) -> None:
        """What server-side code may do directly, e.g. store `_private` (SPEC 1)."""
        with self.m.storage.write(self.m.root) as tx:
            assert tx.update([job_id], fields) == [job_id]

    def stored(self, job_id: str) -> Doc:
        """The stored document as server-side code sees it (with `_private`, without log)."""
        with self.m.storage.read(self.m.root) as tx:
            [doc] = tx.get([job_id])
        return doc

    # -- snapshots ---------------------------------------------------------------------------

    def raw_tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, read through a separate connection."""
        return dump_tables(self.db, TABLES)

    def snapshot(self) -> Snapshot:
        """All jobs via getJob (with log and failures) plus the raw database rows."""
        ids = [doc["_id"] for doc in self.m.find()]
        docs = self.call("getJob", ids, {"getLog": True, "getFailures": True}) if ids else None
        return docs, self.raw_tables()

    def job_count(self) -> int:
        return len(self.m.find())
