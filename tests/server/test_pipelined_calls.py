"""Calls a client sends without waiting share one transaction, yet each gets its own answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ddp_harness import DdpClient, new_job_doc, serving

from jobcollection import Job, JobCollection
from jobcollection.engine.events import CallEvent
from jobcollection.errors import ValidationError
from jobcollection.server.app import Server
from storage_support import Databases


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        collection.start_job_server()
        yield collection


def test_call_many_matches_calls_one_by_one(jc: JobCollection) -> None:
    for n in range(3):
        Job(jc, "t", {"n": n}).save()
    work = jc.manager.call("getWork", ["t", {"maxJobs": 3}])
    events: list[CallEvent] = []
    jc.events("call", events.append)
    jc.events("error", events.append)
    calls: list[tuple[str, list[object]]] = [
        ("jobDone", [work[0]["_id"], work[0]["runId"], {"ok": 1}]),
        ("jobDone", [work[1]["_id"], "not-the-run", {}]),  # wrong run: False, no write
        ("jobDone", [work[2]["_id"], work[2]["runId"], "not an object"]),  # invalid: 400
        ("jobLog", [work[2]["_id"], None, "still here"]),
        ("jobFail", [work[2]["_id"], work[2]["runId"], {"reason": "x"}, {"fatal": True}]),
    ]
    outcomes = jc.manager.call_many(calls, user_id="u1")
    assert [ok for ok, _ in outcomes] == [True, True, False, True, True]
    assert [value for ok, value in outcomes if ok] == [True, False, True, True]
    assert isinstance(outcomes[2][1], ValidationError)
    statuses = {job.doc["_id"]: job.doc["status"] for job in jc.find({})}
    assert [statuses[w["_id"]] for w in work] == ["completed", "running", "failed"]
    assert [(e.method, e.user_id, e.error is None) for e in events] == [
        ("jobDone", "u1", True),
        ("jobDone", "u1", True),
        ("jobDone", "u1", False),
        ("jobLog", "u1", True),
        ("jobFail", "u1", True),
    ]


def test_a_claim_then_a_save_in_one_batch(jc: JobCollection) -> None:
    """A worker's getWork pipelined with a save (a README example does this): one transaction
    for both, whatever one-statement shortcuts the storage has for a lone claim."""
    Job(jc, "t", {"n": 1}).save()
    new = Job(jc, "t", {"n": 2}).doc
    outcomes = jc.manager.call_many([("getWork", ["t"]), ("jobSave", [new, {}])])
    assert [ok for ok, _ in outcomes] == [True, True]
    assert len(outcomes[0][1]) == 1
    assert sorted(job.doc["status"] for job in jc.find({})) == ["ready", "running"]


def test_a_batch_that_fails_as_a_whole_gives_each_call_its_own_fate(jc: JobCollection) -> None:
    """A value that cannot be stored fails the batch's transaction; each call is then served
    alone, and the completion before it still says True (nothing had committed)."""
    Job(jc, "t", {}).save()
    (work,) = jc.manager.call("getWork", ["t"])
    bad = {**Job(jc, "t", {}).doc, "data": {"x": object()}}
    outcomes = jc.manager.call_many(
        [("jobDone", [work["_id"], work["runId"], {"ok": 1}]), ("jobSave", [bad, {}])]
    )
    assert outcomes[0] == (True, True)
    assert outcomes[1][0] is False
    assert [job.doc["status"] for job in jc.find({})] == ["completed"]


def test_call_many_runs_state_dependent_calls_one_by_one(jc: JobCollection) -> None:
    jc.shutdown_job_server()
    job = Job(jc, "t", {})
    job.save()
    outcomes = jc.manager.call_many([("getWork", ["t"]), ("jobProgress", ["x", "r", 1, 2])])
    assert outcomes == [(True, []), (True, None)]  # stopped: no work, progress is null


def _pipeline(client: DdpClient, calls: list[tuple[str, list[Any]]]) -> dict[str, Any]:
    """Send every call before reading; returns the result message per call id."""
    for n, (method, params) in enumerate(calls):
        client.send({"msg": "method", "id": f"p{n}", "method": method, "params": params})
    results: dict[str, Any] = {}
    updated: set[str] = set()
    while len(updated) < len(calls):
        message = client.recv()
        if message["msg"] == "result":
            assert message["id"] not in updated  # result comes before its updated
            results[message["id"]] = message
        elif message["msg"] == "updated":
            updated.update(message["methods"])
    return results


def test_pipelined_calls_each_get_their_own_answer(jc: JobCollection) -> None:
    jc.allow(admin="anyone")
    jc.deny(jobLog="anyone")
    with serving(Server(jc)) as url, DdpClient(url) as client:
        saved = [client.call("queue_jobSave", new_job_doc("p", {"n": n})) for n in range(5)]
        work = client.call("queue_getWork", "p", {"maxJobs": 5})
        assert sorted(w["_id"] for w in work) == sorted(saved)
        calls: list[tuple[str, list[Any]]] = [
            ("queue_jobDone", [w["_id"], w["runId"], {}]) for w in work[:3]
        ]
        calls.insert(1, ("queue_jobDone", [work[3]["_id"], work[3]["runId"], 5, {"x": 1}]))
        calls.insert(2, ("queue_jobLog", [work[4]["_id"], None, "denied"]))
        calls.append(("queue_getJob", [saved[0]]))  # not batchable: runs on its own
        results = _pipeline(client, calls)
        assert [results[f"p{n}"].get("result") for n in (0, 3, 4)] == [True, True, True]
        assert results["p1"]["error"]["error"] == 400
        assert results["p2"]["error"]["error"] == 403
        assert results["p5"]["result"]["status"] == "completed"
    statuses = sorted(job.doc["status"] for job in jc.find({"type": "p"}))
    assert statuses == ["completed"] * 3 + ["running"] * 2


def test_a_result_that_cannot_be_encoded_becomes_a_500_and_the_connection_lives_on(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobcollection.server import dispatch

    jc.allow(admin="anyone")
    real_call = dispatch.Dispatcher.call

    def odd_result(self: Any, name: str, params: list[object], *args: Any) -> object:
        if name == "queue_getJob" and params == ["odd"]:
            return {"not json": {1, 2}}  # a set: no JSON form
        return real_call(self, name, params, *args)

    monkeypatch.setattr(dispatch.Dispatcher, "call", odd_result)
    with serving(Server(jc)) as url, DdpClient(url) as client:
        [result] = [m for m in client.call_raw("queue_getJob", ["odd"]) if m["msg"] == "result"]
        assert result["error"]["error"] == 500
        assert client.call("queue_getJob", "nope") is None


@pytest.mark.sqlite_only(reason="counts the SQL statements SQLite ran (its trace callback)")
def test_a_remote_payload_with_one_result_is_completed_by_one_statement(
    jc: JobCollection,
) -> None:
    """`jobDoneAndGetWork` runs arrive as separate objects; equal results (by their EJSON text,
    so 1 and true stay apart) are completed together, the others one by one."""
    from jobcollection.storage.sqlite import SqliteStorage

    jc.allow(worker="anyone")
    jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(8)])
    storage = jc.manager.storage
    assert isinstance(storage, SqliteStorage)
    with serving(Server(jc)) as url, DdpClient(url) as client:
        work = client.call("queue_getWork", "t", {"maxJobs": 8})
        results: list[dict[str, Any]] = [{"ok": 1}] * 6 + [{"ok": True}, {"ok": 1.5}]
        runs = [
            [doc["_id"], doc["runId"], result] for doc, result in zip(work, results, strict=True)
        ]
        statements: list[str] = []
        storage._conn.set_trace_callback(statements.append)
        outcomes, claimed = client.call("queue_jobDoneAndGetWork", runs, None)
        storage._conn.set_trace_callback(None)
    assert outcomes == [True] * 8
    assert claimed == []
    completing = [s for s in statements if s.startswith("UPDATE jobs SET status = 'completed'")]
    assert len(completing) == 3  # six alike, then two different
    stored = {job.id: job.doc["result"] for job in jc.find()}
    assert [stored[doc["_id"]] for doc in work] == results


def _pipelined_dones(db: str, together: bool) -> tuple[list[Any], list[Any]]:
    """A worker's payload of `jobDone`s (same run; mostly one result; a duplicate, a wrong run,
    a repeating job asked for its repeat's id) through call_many or one call at a time."""
    from jobcollection.engine.clock import ManualClock
    from jobcollection.engine.manager import JobManager
    from jobcollection.storage import open_storage

    storage = open_storage(db)
    numbers = iter(range(10**6))
    manager = JobManager(
        storage, "q", clock=ManualClock(1_700_000_000_000), id_factory=lambda: f"id{next(numbers)}"
    )
    try:
        manager.start()
        from jobcollection.api._job_core import new_document

        docs = [new_document("t", {"n": n}, 1_700_000_000_000) for n in range(6)]
        docs[5]["repeats"] = 2
        manager.save_many(docs)
        work = manager.call("getWork", ["t", {"maxJobs": 6}])
        run = work[0]["runId"]
        ids = [doc["_id"] for doc in work]
        calls: list[tuple[str, list[object]]] = [
            ("jobDone", [ids[0], run, {"ok": 1}]),
            ("jobDone", [ids[1], run, {"ok": 1}]),
            ("jobDone", [ids[1], run, {"ok": 1}]),  # again: False
            ("jobDone", [ids[2], run, {"ok": True}]),  # another result
            ("jobDone", [ids[3], "other-run", {"ok": True}]),  # wrong run: False
            ("jobDone", [ids[4], run, {"ok": True}]),
            ("jobDone", [ids[5], run, {"ok": True}, {"repeatId": True}]),
        ]
        if together:
            outcomes = manager.call_many(calls)
        else:
            outcomes = [(True, manager.call(m, p)) for m, p in calls]
        rows = [
            (doc["_id"], doc["status"], doc.get("result"), doc.get("runId"))
            for doc in manager.find()  # oldest first
        ]
        return outcomes, rows
    finally:
        manager.close()
        storage.close()


def test_pipelined_dones_of_one_run_end_as_one_by_one(dbs: Databases) -> None:
    together = _pipelined_dones(dbs("together"), together=True)
    alone = _pipelined_dones(dbs("alone"), together=False)
    assert together == alone
    outcomes, rows = together
    assert [value for _, value in outcomes][:6] == [True, True, False, True, False, True]
    assert isinstance(outcomes[6][1], str)  # the repeat's new id
    assert len(rows) == 7  # six jobs and the repeat


@pytest.mark.sqlite_only(reason="counts the SQL statements SQLite ran (its trace callback)")
def test_pipelined_dones_with_one_result_are_one_statement(jc: JobCollection) -> None:
    from jobcollection.storage.sqlite import SqliteStorage

    jc.save_jobs([Job(jc, "t", {"n": n}) for n in range(5)])
    work = jc.manager.call("getWork", ["t", {"maxJobs": 5}])
    storage = jc.manager.storage
    assert isinstance(storage, SqliteStorage)
    statements: list[str] = []
    storage._conn.set_trace_callback(statements.append)
    outcomes = jc.manager.call_many([("jobDone", [d["_id"], d["runId"], {}]) for d in work])
    storage._conn.set_trace_callback(None)
    assert outcomes == [(True, True)] * 5
    completing = [s for s in statements if s.startswith("UPDATE jobs SET status = 'completed'")]
    assert len(completing) == 1


def test_the_next_call_does_not_wait_for_the_previous_calls_updated(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's `updated` waits for the live queries to publish its changes; the connection's
    next call runs meanwhile (as in Meteor), and each `updated` still follows its data. (A
    worker's claim: its result goes out at once; a save's waits for its changes, on purpose.)"""
    import asyncio

    from jobcollection.server.publications import PublicationRegistry

    real_flush = PublicationRegistry.flush

    async def slow_flush(self: PublicationRegistry) -> None:
        await asyncio.sleep(0.3)  # live queries that take their time to catch up
        await real_flush(self)

    jc.allow(admin="anyone")
    job_id = Job(jc, "t", {"n": 1}).save()
    other = JobCollection("other", db=jc.manager.storage)
    other.allow(admin="anyone")
    other.start_job_server()
    with other, serving(Server(jc, other)) as url, DdpClient(url) as client:
        client.send({"msg": "sub", "id": "s", "name": "queue.jobs", "params": []})
        client.recv_until(lambda m: m.get("msg") == "ready")
        monkeypatch.setattr(PublicationRegistry, "flush", slow_flush)
        client.send({"msg": "method", "id": "c1", "method": "queue_getWork", "params": ["t"]})
        # a claim in another collection: not batched with c1, it runs after c1
        client.send({"msg": "method", "id": "c2", "method": "other_getWork", "params": ["t"]})
        seen = client.recv_until(
            lambda m: m.get("msg") == "updated" and "c2" in m.get("methods", ())
        )

    def index(predicate: Any) -> int:
        return next(i for i, m in enumerate(seen) if predicate(m))

    def updated(call_id: str) -> int:
        return index(lambda m: m.get("msg") == "updated" and call_id in m["methods"])

    answered = {m["id"]: (i, m["result"]) for i, m in enumerate(seen) if m.get("msg") == "result"}
    assert set(answered) == {"c1", "c2"}
    assert [doc["_id"] for doc in answered["c1"][1]] == [job_id]
    assert answered["c2"][0] < updated("c1"), seen  # c2 ran while c1's changes were pending
    changed = index(lambda m: m.get("msg") == "changed" and m["id"] == job_id)
    assert changed < updated("c1"), seen  # and `updated` follows the call's data
    assert updated("c1") <= updated("c2")


def test_queued_done_and_get_work_calls_are_served_together_each_in_its_turn(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote queue's threads each send `jobDoneAndGetWork`; those queued behind one another
    on the connection are served together (one transaction), each answered as if alone and in
    order: its runs' outcomes, then the next jobs, none handed out twice. A call with bad
    params fails alone."""
    jc.allow(admin="anyone")
    together: list[int] = []
    serve_many = jc.manager.complete_and_claim_many

    def counted(calls: Any, worker: Any = None) -> Any:
        together.append(len(calls))
        return serve_many(calls, worker)

    monkeypatch.setattr(jc.manager, "complete_and_claim_many", counted)
    with serving(Server(jc)) as url, DdpClient(url) as client:
        for n in range(9):
            client.call("queue_jobSave", new_job_doc("w", {"n": n}))
        work = client.call("queue_getWork", "w", {"maxJobs": 3})
        calls: list[tuple[str, list[Any]]] = [
            ("queue_jobDoneAndGetWork", [[[w["_id"], w["runId"], {"n": k}]], ["w", {"maxJobs": 2}]])
            for k, w in enumerate(work)
        ]
        calls.insert(1, ("queue_jobDoneAndGetWork", [[["x", "y", "not a result"]], ["w"]]))
        results = _pipeline(client, calls)
    assert max(together, default=0) > 1  # (served together, not one by one)
    assert results["p1"]["error"]["error"] == 400
    answers = [results[f"p{n}"]["result"] for n in (0, 2, 3)]
    assert [outcomes for outcomes, _ in answers] == [[True], [True], [True]]
    handed = [doc["_id"] for _, docs in answers for doc in docs]
    assert len(handed) == len(set(handed)) == 6
    assert [len(docs) for _, docs in answers] == [2, 2, 2]
    statuses = sorted(job.doc["status"] for job in jc.find({"type": "w"}))
    assert statuses == ["completed"] * 3 + ["running"] * 6
