"""Reads through a server: `find`, `count` and `stats` a page (one short server read) at a
time, never the whole collection pushed to the client; `getJob` with many ids over HTTP."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from ddp_harness import CallFailed, DdpClient

from jobcollection import Job, JobCollection, PermissionDenied, ValidationError, connect
from jobcollection.client import remote as remote_module
from jobcollection.server.read_methods import MAX_PAGE


@pytest.fixture
def local(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as jc:
        jc.save_jobs([Job(jc, "ab"[n % 2], {"n": n}) for n in range(130)])
        jc.pause_jobs([job.id for job in jc.find({"type": "b"}, limit=20) if job.id])
        jc.allow(admin=["ada"], worker=["wes"])
        yield jc


def _ids(jobs: list[Job]) -> list[str | None]:
    return [job.id for job in jobs]


def test_find_pages_through_the_collection_as_a_local_find_does(
    remote: JobCollection, local: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_module, "PAGE", 7)  # many pages
    calls: list[list[Any]] = []
    backend = remote.backend
    original = backend.call

    def counting(method: str, params: Any = (), **kw: Any) -> Any:
        calls.append([method, *params])
        return original(method, params, **kw)

    monkeypatch.setattr(backend, "call", counting)
    named = {"_id": {"$in": [job.id for job in local.find({"type": "b"})][::-2]}}  # 33 ids
    for selector in ({}, {"status": "paused"}, {"type": "a", "status": "ready"}, named):
        for newest_first in (False, True):
            for limit in (None, 1, 30):
                mine = local.find(selector, limit, newest_first=newest_first)
                theirs = remote.find(selector, limit, newest_first=newest_first)
                assert _ids(theirs) == _ids(mine), (selector, newest_first, limit)
    assert all(call[0] == "jobFind" and call[2]["limit"] <= 7 for call in calls)
    assert len([c for c in calls if c[2]["after"] is not None]) > 10  # paged by keyset
    job = remote.find({"status": "paused"}, 1)[0]
    assert isinstance(job.doc["updated"], int)  # times back as int ms
    assert "_private" not in job.doc
    assert "log" not in job.doc


def test_count_and_stats_are_counted_on_the_server(
    remote: JobCollection, local: JobCollection
) -> None:
    assert (
        remote.stats()
        == local.stats()
        == [("paused", "b", 20), ("ready", "a", 65), ("ready", "b", 45)]
    )
    assert remote.count() == 130
    assert remote.count({"status": "paused"}) == 20
    assert 10 <= remote.count(at_most=10) <= 130
    with pytest.raises(ValidationError, match="selector key 'color'"):
        remote.count({"color": "red"})


def test_reads_need_the_groups_that_may_subscribe_to_the_jobs(url: str) -> None:
    worker = connect(url, username="wes", password="s3cret")
    try:
        for read in (worker.find, worker.stats, worker.count):
            with pytest.raises(PermissionDenied):
                read()
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ([{}, {"limit": 0}], "limit must be an integer from 1 to"),
        ([{}, {"limit": MAX_PAGE + 1}], "limit must be an integer from 1 to"),
        ([{}, {"limit": True}], "limit must be an integer"),
        ([{}, {"after": "x"}], "after must be an integer"),
        ([{}, {"newestFirst": 1}], "newestFirst must be true or false"),
        ([{}, {"sort": {"created": -1}}], "unknown option 'sort'"),
        ([["status"]], "selector must be an object"),
        ([{"status": "bogus"}], "unknown status"),
        ([{}, {}, {}], "takes \\[selector, options\\]"),
    ],
)
def test_bad_find_params_are_refused_naming_the_problem(
    url: str, params: list[Any], problem: str
) -> None:
    with DdpClient(url) as ddp:
        ddp.call("login", {"user": {"username": "ada"}, "password": "s3cret"})
        with pytest.raises(CallFailed) as failed:
            ddp.call("queue_jobFind", *params)
    assert failed.value.error["error"] == 400
    assert re.search(problem, failed.value.error["details"])


def test_get_job_with_many_ids_over_http_answers_in_storage_order(
    url: str, local: JobCollection
) -> None:
    every = _ids(local.find())
    login = urllib.request.Request(
        f"{url}/api/login",
        data=json.dumps({"user": {"username": "ada"}, "password": "s3cret"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as reply:
        token = json.load(reply)["result"]["token"]
    asked = [*reversed(every), "missing"] * 5  # 655 ids, each named five times
    call = urllib.request.Request(
        f"{url}/api/queue/getJob",
        data=json.dumps([asked, {"getLog": True}]).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(call, timeout=10) as reply:
        docs = json.load(reply)["result"]
    assert [doc["_id"] for doc in docs] == every
    assert all(doc["log"] for doc in docs)


def test_a_read_without_a_login_is_told_which_groups_may_read(url: str) -> None:
    with DdpClient(url) as ddp:
        for method in ("queue_jobFind", "queue_jobCount", "queue_jobStats"):
            with pytest.raises(CallFailed) as refused:
                ddp.call(method)
            assert refused.value.error["error"] == 403
            assert refused.value.error["details"] == (
                f"no user is logged in, and {method} needs one allowed under admin or manager"
            )
