"""`getWork` takes at most `MAX_WORK_TYPES` job types per call: more is a 400 naming the
limit (it was a 500 past SQLite's 500-term compound SELECT, and a server freeze with tens of
thousands), with nothing written; up to the limit, claims follow the usual order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ddp_harness import CallFailed, DdpClient, serving

from jobcollection import Job, JobCollection
from jobcollection.core.params import MAX_WORK_TYPES
from jobcollection.errors import ValidationError
from jobcollection.server.app import Server


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("q", db)
    collection.start_job_server()
    collection.allow(admin="anyone")
    yield collection
    collection.close()


def many(n: int) -> list[str]:
    return [f"type-{i}" for i in range(n)]


def test_the_limit_is_generous() -> None:
    assert MAX_WORK_TYPES == 256


def test_more_types_than_the_limit_is_a_400_over_ddp_and_http(jc: JobCollection) -> None:
    job_id = Job(jc, "type-3", {}).save()
    with serving(Server(jc, accounts=False)) as base:
        with DdpClient(base) as client:
            for n in (MAX_WORK_TYPES + 1, 501, 60_000):
                with pytest.raises(CallFailed) as refused:
                    client.call("q_getWork", many(n))
                assert refused.value.code == 400
                assert refused.value.error["details"] == (
                    f"type: at most {MAX_WORK_TYPES} job types per call, got {n}"
                )
            assert client.call("q_getJob", job_id)["status"] == "ready"  # nothing claimed
        with httpx.Client(base_url=base) as http:
            response = http.post("/api/q/getWork", json=[many(1000)])
            assert response.status_code == 400
            assert f"at most {MAX_WORK_TYPES} job types" in response.json()["error"]["details"]


def test_a_batch_with_too_many_types_completes_nothing(jc: JobCollection) -> None:
    Job(jc, "t", {}).save()
    (running,) = jc.get_work("t")
    params: list[Any] = [[[running.id, running.doc["runId"], {}]], [many(MAX_WORK_TYPES + 1)]]
    with serving(Server(jc, accounts=False)) as base, DdpClient(base) as client:
        with pytest.raises(CallFailed) as refused:
            client.call("q_jobDoneAndGetWork", *params)
        assert refused.value.code == 400
        assert "at most 256 job types" in refused.value.error["details"]
    assert jc.get_job(running.id).status == "running"  # type: ignore[union-attr]


def test_the_python_api_and_queues_say_so_too(jc: JobCollection) -> None:
    with pytest.raises(ValidationError, match="at most 256 job types per call, got 300"):
        jc.get_work(many(300))
    with pytest.raises(ValidationError, match="at most 256 job types per call, got 257"):
        jc.process_jobs(many(257), lambda job: None)


def test_claims_over_many_types_take_the_best_jobs_in_order(jc: JobCollection) -> None:
    """Up to the limit, the claim is the same as over one merged queue: priority, then
    retryUntil, then after, then insertion order, whatever the number of types."""
    rng = random.Random(10)
    types = many(MAX_WORK_TYPES)
    expected: list[tuple[int, int, str]] = []
    jobs = []
    for n in range(600):
        job = Job(jc, rng.choice([*types[:40], "elsewhere"]), {"n": n})
        job.priority(rng.choice([-10, 0, 0, 10]))
        jobs.append(job)
    for job_id, job in zip(jc.save_jobs(jobs), jobs, strict=True):
        if job.type != "elsewhere":
            assert job_id is not None
            expected.append((job.doc["priority"], len(expected), job_id))
    expected.sort()
    claimed: list[str] = []
    for size in (1, 3, 50, 7, 200, 1, 10_000):
        rng.shuffle(types)
        claimed += [job.id for job in jc.get_work(types, max_jobs=size)]  # type: ignore[misc]
    assert claimed == [job_id for _, _, job_id in expected]
    assert jc.get_work(types) == []


def test_the_ready_types_doorbell_takes_as_many_types_as_getWork(jc: JobCollection) -> None:
    """Its subscribers' types are checked on every change: the same limit bounds that work."""
    Job(jc, "type-0", {}).save()
    with serving(Server(jc, accounts=False)) as base, DdpClient(base) as client:
        for sub_id, n in (("over", MAX_WORK_TYPES + 1), ("far-over", 60_000)):
            client.send({"msg": "sub", "id": sub_id, "name": "q.readyTypes", "params": [many(n)]})
            nosub = client.recv_until(lambda m: m.get("msg") == "nosub")[-1]
            assert nosub["id"] == sub_id
            assert nosub["error"]["error"] == 400
            assert nosub["error"]["details"] == (
                f"type: at most {MAX_WORK_TYPES} job types per call, got {n}"
            )
        client.send({"msg": "sub", "id": "ok", "name": "q.readyTypes", "params": [many(256)]})
        messages = client.recv_until(lambda m: m.get("msg") == "ready")
        assert [m["id"] for m in messages if m.get("msg") == "added"] == ["type-0"]
