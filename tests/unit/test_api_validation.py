"""Bad input at the Python API raises a named error naming the field and stores nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jobcollection import Job, JobCollection, JobValidationError, ValidationError


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("api", db)
    collection.start_job_server()
    yield collection
    collection.close()


def _snapshot(jc: JobCollection) -> list[dict[str, object]]:
    return [job.doc for job in jc.get_jobs([str(j.id) for j in jc.find()], get_log=True)]


BUILDER_CASES: list[tuple[str, Callable[[Job], object], str]] = [
    ("priority name", lambda j: j.priority("urgent"), "priority"),
    ("priority too big", lambda j: j.priority(2**31), "priority"),
    ("retries negative", lambda j: j.retry(-1), "retries"),
    ("retries bool", lambda j: j.retry(True), "retries"),
    ("backoff", lambda j: j.retry(2, backoff="linear"), "backoff"),
    ("retry wait negative", lambda j: j.retry(2, wait=-5), "wait"),
    ("repeat count float", lambda j: j.repeat(1.5), "repeats"),
    ("repeat cron", lambda j: j.repeat(cron="61 * * * *"), "cron"),
    ("repeat schedule key", lambda j: j.repeat(schedule={"schedules": [{"zz": [1]}]}), "zz"),
    ("after naive datetime", lambda j: j.after(datetime(2030, 1, 1)), "after"),
    ("after string", lambda j: j.after("tomorrow"), "after"),  # type: ignore[arg-type]
    ("delay negative", lambda j: j.delay(timedelta(seconds=-1)), "delay"),
    ("log level", lambda j: j.log("x", level="loud"), "level"),
]


@pytest.mark.parametrize(
    ("case", "build", "field"), BUILDER_CASES, ids=[c[0] for c in BUILDER_CASES]
)
def test_builder_rejects_bad_values_naming_the_field(
    jc: JobCollection, case: str, build: Callable[[Job], object], field: str
) -> None:
    job = Job(jc, "t", {"a": 1})
    with pytest.raises(JobValidationError) as error:
        build(job)
    assert field in str(error.value)
    assert jc.find() == []


@pytest.mark.parametrize(
    ("job_type", "data", "field"),
    [("", {}, "type"), (5, {}, "type"), ("t", [1, 2], "data"), ("t", "x", "data")],
)
def test_new_job_rejects_bad_type_or_data(
    jc: JobCollection, job_type: object, data: object, field: str
) -> None:
    with pytest.raises(JobValidationError) as error:
        Job(jc, job_type, data)  # type: ignore[arg-type]
    assert error.value.field == field


def test_a_tampered_document_is_rejected_at_save_and_nothing_is_stored(jc: JobCollection) -> None:
    Job(jc, "t", {}).save()
    before = _snapshot(jc)
    job = Job(jc, "t", {})
    job.doc["priority"] = "high"
    with pytest.raises(JobValidationError) as error:
        job.save()
    assert error.value.field == "doc.priority"
    job.doc["priority"] = 0
    job.doc["surprise"] = 1
    with pytest.raises(JobValidationError) as error:
        job.save()
    assert error.value.field == "doc.surprise"
    assert _snapshot(jc) == before


def test_save_jobs_validates_every_job_before_writing_any(jc: JobCollection) -> None:
    good = [Job(jc, "t", {"n": n}) for n in range(3)]
    bad = Job(jc, "t", {})
    bad.doc["retries"] = -3
    with pytest.raises(JobValidationError):
        jc.save_jobs([*good, bad])
    assert jc.find() == []
    assert all(job.id is None for job in good)


@pytest.mark.parametrize(
    "call",
    [
        lambda jc: jc.get_work("t", max_jobs=0),
        lambda jc: jc.get_work([]),
        lambda jc: jc.get_job(5),
        lambda jc: jc.find({"colour": "red"}),
        lambda jc: jc.find({"status": "sleeping"}),
        lambda jc: jc.find({"type": {"$gt": "a"}}),
        lambda jc: jc.cancel_jobs([1, 2]),
        lambda jc: jc.restart_jobs(["x"], retries=-1),
        lambda jc: jc.ready_jobs(["x"], time=datetime(2030, 1, 1)),
        lambda jc: jc.shutdown_job_server(timeout=0),
        lambda jc: jc.process_jobs("t", "not callable"),
        lambda jc: jc.process_jobs("t", print, concurrency=-1),
        lambda jc: jc.process_jobs("t", print, payload=0),
    ],
)
def test_collection_calls_reject_bad_arguments(
    jc: JobCollection, call: Callable[[JobCollection], object]
) -> None:
    Job(jc, "t", {}).delay(60_000).save()
    before = _snapshot(jc)
    with pytest.raises(ValidationError):
        call(jc)
    assert _snapshot(jc) == before


def test_times_accept_aware_datetimes_and_ms(jc: JobCollection) -> None:
    when = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    job = Job(jc, "t", {}).after(when)
    assert job.doc["after"] == int(when.timestamp() * 1000)
    job.retry(1, wait=timedelta(seconds=2), until=when)
    assert (job.doc["retryWait"], job.doc["retryUntil"]) == (2000, job.doc["after"])
    assert job.save() is not None
