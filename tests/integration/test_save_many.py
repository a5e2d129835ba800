"""`save_jobs` (one transaction, a statement per run of ready jobs) stores exactly what saving the
same documents one at a time stores: every table, row for row."""

from __future__ import annotations

import copy
import itertools
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcollection import Job, JobCollection
from jobcollection.api._job_core import new_document
from jobcollection.core.constants import FOREVER, FOREVER_DATE
from jobcollection.core.ejson import Date
from jobcollection.core.ids import ALPHABET
from jobcollection.engine.clock import ManualClock
from jobcollection.engine.manager import JobManager
from jobcollection.errors import JobValidationError
from jobcollection.storage import open_storage
from storage_support import Databases, dump_tables, kind_named

NOW = 1_700_000_000_000


def documents() -> list[dict[str, Any]]:
    def doc(**changes: object) -> dict[str, Any]:
        return {**new_document("t", {"n": 1}, NOW - 5), **changes}

    without_repeat_retries = doc()
    del without_repeat_retries["repeatRetries"]
    return [
        doc(),
        doc(data={"when": Date(5), "b": b"xy", "inf": math.inf, "$x": 1, "n": {"$date": 3}}),
        doc(priority=-10, retries=3.0, repeatRetries=2, retryWait=timedelta(seconds=2)),
        doc(after=NOW + 10_000),  # waits
        doc(status="paused"),
        doc(progress={"total": 2, "completed": 0.5, "percent": 25.0}),
        doc(progress={"completed": 0, "total": 1, "percent": 0.0}),  # == the fresh one, a float
        doc(progress={"completed": 0.0, "total": 1.0, "percent": 0}),
        doc(log=[{"time": NOW, "runId": None, "message": "m", "level": "warning", "data": {}}]),
        doc(log=[]),
        doc(repeatWait={"schedules": [{"h": [10]}]}, repeats=5),
        doc(repeatWait={"schedules": [{"Y": [1999]}]}, repeats=5),  # no occurrence: None
        doc(runId="r1"),
        doc(retries=2**60, repeats=2**60),
        doc(after=datetime(2020, 1, 1, tzinfo=UTC)),
        doc(result={"ok": True}, failures=[{"value": "x"}], workTimeout=5, expiresAfter=NOW),
        doc(type="other", retryBackoff="exponential"),
        doc(depends=["id00000"]),  # a job saved earlier in the batch
        doc(depends=["missing", "id00001"]),  # cancelled at save: None
        doc(depends=["id00003"], status="paused"),
        doc(),
        without_repeat_retries,
        doc(_id=None),
        doc(after=NOW + 10_000, progress={"percent": 50, "total": 2, "completed": 1}),  # waits
    ]


def saved_tables(
    db: str, batched: bool, docs: list[dict[str, Any]] | None = None
) -> tuple[list[Any], dict[str, Any]]:
    storage = open_storage(db)
    counter = itertools.count()
    manager = JobManager(
        storage, "q", clock=ManualClock(NOW), id_factory=lambda: f"id{next(counter):05d}"
    )
    try:
        docs = documents() if docs is None else docs
        if batched:
            ids = manager.save_many(copy.deepcopy(docs))
        else:
            ids = [manager.call("jobSave", [doc]) for doc in copy.deepcopy(docs)]
        tables: dict[str, Any] = dump_tables(db, ["jobs", "job_log", "job_deps"])
        # A batch writes fewer feed rows (one per statement); the changes they stand for match.
        changes = storage.changes_since(0)
        tables["changes"] = sorted((c.job_id, c.op, c.type, c.status, c.fields) for c in changes)
        return ids, tables
    finally:
        manager.close()
        storage.close()


def test_a_batch_stores_what_single_saves_store(dbs: Databases) -> None:
    batch_ids, batch = saved_tables(dbs("batch"), batched=True)
    single_ids, single = saved_tables(dbs("single"), batched=False)
    assert batch_ids == single_ids
    assert batch_ids.count(None) == 2
    assert batch == single
    assert len(batch["jobs"]) == len(documents()) - 1


def test_default_ids_of_a_batch_are_random_ids(db: str) -> None:
    with JobCollection("q", db) as jc:
        ids = jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(3000)])
        assert len(set(ids)) == 3000
        pattern = re.compile(f"[{ALPHABET}]{{17}}")
        assert all(isinstance(i, str) and pattern.fullmatch(i) for i in ids)
        assert [job["data"]["n"] for job in jc.manager.find()] == list(range(3000))


def test_a_bad_document_in_a_batch_is_named_and_nothing_is_saved(db: str) -> None:
    with JobCollection("q", db) as jc:
        jobs = [Job(jc, "t", {"n": n}) for n in range(5)]
        jobs[3].doc["log"][0]["level"] = "debug"
        with pytest.raises(JobValidationError) as error:
            jc.save_jobs(jobs)
        assert error.value.field == "jobs[3].log[0].level"
        jobs[3].doc["log"][0]["level"] = "info"
        jobs[4].doc["status"] = "ready"
        with pytest.raises(JobValidationError) as error:
            jc.save_jobs(jobs)
        assert error.value.field == "jobs[4].status"
        assert jc.find() == []


# -- any document of the usual shape, batched or one by one ----------------------------------

_INT32 = st.integers(-(2**31), 2**31 - 1)
_TIMES = st.integers(NOW - 10**6, NOW + 10**6) | st.sampled_from([0, NOW, FOREVER_DATE])
_COUNTS = st.integers(0, 5) | st.sampled_from([FOREVER])
_NUMBER = st.integers(0, 10) | st.floats(0, 100, allow_nan=False)
_ENTRY = st.fixed_dictionaries(
    {
        "time": _TIMES,
        "runId": st.none() | st.text("ab", min_size=1, max_size=3),
        "level": st.sampled_from(["info", "success", "warning", "danger"]),
        "message": st.text(max_size=5),
    }
)


@st.composite
def _usual_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = new_document(draw(st.sampled_from(["t", "u"])), {"n": draw(st.integers())}, NOW - 5)
    keys = ["completed", "total", "percent"]
    progress_order = draw(st.permutations(keys))
    doc.update(
        status=draw(st.sampled_from(["waiting", "waiting", "paused"])),
        priority=draw(_INT32),
        after=draw(_TIMES),
        retryUntil=draw(_TIMES),
        repeatUntil=draw(_TIMES),
        retries=draw(_COUNTS),
        retryWait=draw(_COUNTS),
        repeats=draw(_COUNTS),
        repeatRetries=draw(_COUNTS),
        repeatWait=draw(_COUNTS),
        retryBackoff=draw(st.sampled_from(["constant", "exponential"])),
        progress={key: draw(_NUMBER) for key in progress_order},
        log=draw(st.lists(_ENTRY, max_size=3)),
    )
    return doc


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs=st.lists(_usual_docs(), min_size=1, max_size=6))
def test_any_usual_batch_stores_what_single_saves_store(
    db_kind: str, tmp_path_factory: pytest.TempPathFactory, docs: list[dict[str, Any]]
) -> None:
    dbs = Databases(kind_named(db_kind), tmp_path_factory.mktemp("usual"))  # fresh per example
    try:
        batch_ids, batch = saved_tables(dbs("batch"), batched=True, docs=docs)
        single_ids, single = saved_tables(dbs("single"), batched=False, docs=docs)
    finally:
        dbs.close()
    assert batch_ids == single_ids
    assert batch == single
