"""A NUL character where a name or an id goes is refused with an error naming the field, on
every storage (PostgreSQL's text cannot hold one, so SQLite refuses it too: one contract);
inside a job's data, result or log it is an ordinary character, stored and read back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from jobcollection import Job, JobCollection
from jobcollection.errors import JobValidationError, ValidationError
from jobcollection.server.dispatch import Dispatcher
from jobcollection.server.http_api import HttpApi
from storage_support import dump_tables


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("q", db)
    collection.start_job_server()
    yield collection
    collection.close()


@pytest.fixture
async def http(jc: JobCollection) -> AsyncIterator[httpx.AsyncClient]:
    jc.allow(admin="anyone")
    app = HttpApi(
        Dispatcher([jc.manager]),
        login=None,
        authenticate=lambda token: None,
        logout=lambda token: None,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def test_a_type_with_a_nul_is_refused_and_nothing_is_stored(jc: JobCollection, db: str) -> None:
    Job(jc, "kept", {}).save()
    before = dump_tables(db, ["jobs"])
    with pytest.raises(JobValidationError, match=r"type.*NUL"):
        Job(jc, "mail\x00", {}).save()
    assert dump_tables(db, ["jobs"]) == before


def test_a_collection_name_with_a_nul_is_refused(db: str) -> None:
    with pytest.raises(ValidationError, match="collection name"):
        JobCollection("q\x00", db)


@pytest.mark.parametrize("method", ["jobRerun", "jobRemove", "jobCancel", "getJob"])
async def test_an_id_with_a_nul_is_a_400_naming_it(
    http: httpx.AsyncClient, jc: JobCollection, db: str, method: str
) -> None:
    Job(jc, "kept", {}).save()
    before = dump_tables(db, ["jobs"])
    response = await http.post(f"/api/q/{method}", json=["bad\x00id"])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["reason"] == "Match failed"
    assert "NUL" in error["details"]
    assert "id" in error["details"]
    assert dump_tables(db, ["jobs"]) == before


def test_a_nul_inside_data_result_and_log_is_kept(jc: JobCollection) -> None:
    job = Job(jc, "t", {"text": "a\x00b", "a\x00key": 1})
    job.log("line\x00two")
    job.save()
    [claimed] = jc.get_work("t")
    claimed.done({"out": "\x00"})
    stored = jc.get_job(job.id, get_log=True)
    assert stored is not None
    assert stored.data == {"text": "a\x00b", "a\x00key": 1}
    assert stored.doc["result"] == {"out": "\x00"}
    assert any(entry["message"] == "line\x00two" for entry in stored.doc["log"])
