"""Guarded updates, completions, removals, dependencies, due and expired jobs, logs."""

from __future__ import annotations

from contract_helpers import CLAIMED, RUNNING, job

from jobcollection.storage.port import UNSET, Guard, Storage

ENTRY = {"time": 7, "runId": None, "level": "warning", "message": "noted"}


def statuses(storage: Storage, *ids: str) -> dict[str, str]:
    with storage.read("q") as tx:
        return {doc["_id"]: doc["status"] for doc in tx.get(list(ids))}


def test_insert_get_find_keep_documents_as_they_were(storage: Storage) -> None:
    rich = job("rich", data={"n": 1.5, "nested": [1, "two", None], "bytes": b"\x00\x01"})
    rich["workTimeout"] = 60000
    rich["expiresAfter"] = 99
    rich["_private"] = {"secret": True}
    with storage.write("q") as tx:
        tx.insert([job("a"), rich, job("b", "u", "waiting")])
    with storage.read("q") as tx:
        got = tx.get(["b", "missing", "rich", "a"])
        assert [doc["_id"] for doc in got] == ["a", "rich", "b"]  # insertion order
        stored = {key: value for key, value in rich.items() if key != "log"}
        assert got[1] == stored
        assert [d["_id"] for d in tx.find(statuses=["waiting"])] == ["b"]
        assert [d["_id"] for d in tx.find(types=["t"], limit=1)] == ["a"]
        assert [d["_id"] for d in tx.find(ids=["a", "b"], types=["u"])] == ["b"]
        assert tx.find(statuses=[]) == []
        assert tx.ready_types(["t", "u", "v"]) == {"t"}
    with storage.read("other") as tx:
        assert tx.find() == []
    assert storage.collections() == ["q"]
    with storage.write("another") as tx:
        tx.insert([job("x")])
    assert storage.collections() == ["another", "q"]


def test_update_sets_unsets_and_logs_only_where_the_guard_holds(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([job("r"), job("w", status="waiting", after=100), job("d", "t", "waiting")])
        tx.insert([job("dep", status="waiting", depends=["r"])])
    with storage.write("q") as tx:
        assert tx.update(["r", "w"], {"status": "paused"}, Guard(statuses=["ready"])) == ["r"]
        assert tx.update(["w", "d"], {"priority": 5}, Guard(due_by=50)) == ["d"]
        assert tx.update(["dep", "d"], {"priority": 6}, Guard(no_depends=True)) == ["d"]
        assert tx.update(["r"], {"priority": 1}, Guard(run_id="nope")) == []
        assert sorted(tx.update(["d", "w"], {"after": 3}, log=[ENTRY])) == ["d", "w"]
        assert tx.update([], {"after": 3}) == []
    with storage.write("q") as tx:
        claimed = tx.claim(["t"], 5, RUNNING, CLAIMED)
    assert [doc["_id"] for doc in claimed] == []  # nothing ready is left
    with storage.write("q") as tx:
        tx.update(["w"], {"status": "ready"})
        assert len(tx.claim(["t"], 5, {**RUNNING, "expiresAfter": 10}, CLAIMED)) == 1
        assert tx.update(["w"], {"expiresAfter": UNSET}, Guard(run_id="run1")) == ["w"]
    with storage.read("q") as tx:
        (w,) = tx.get(["w"])
        assert "expiresAfter" not in w
        assert w["after"] == 3
        assert tx.log_of(["w", "none"])["w"][1:] == [ENTRY, CLAIMED]
        assert tx.log_of(["w", "none"])["none"] == []
    assert statuses(storage, "r", "w", "d") == {"r": "paused", "w": "running", "d": "waiting"}


def test_a_rolled_back_write_leaves_nothing(storage: Storage) -> None:
    class Boom(Exception):
        pass

    try:
        with storage.write("q") as tx:
            tx.insert([job("gone")])
            raise Boom
    except Boom:
        pass
    assert statuses(storage, "gone") == {}
    assert storage.changes_since(0) == []


def test_complete_only_runs_of_the_run_id(storage: Storage) -> None:
    done_log = {"time": 9, "runId": "run1", "level": "success", "message": "Job completed"}
    with storage.write("q") as tx:
        tx.insert([job("a"), job("b"), job("c", "u")])
        progress = {"completed": 2, "total": 4, "percent": 50}
        tx.claim(["t", "u"], 3, RUNNING, CLAIMED)
        tx.update(["b"], {"progress": progress})
        tx.update(["c"], {"runId": "run2"})
    with storage.write("q") as tx:
        done = tx.complete(["a", "b", "c", "x"], "run1", {"ok": [1]}, 9, done_log)
    assert sorted(done) == [("a", 0), ("b", 0)]
    with storage.read("q") as tx:
        a, b, c = tx.get(["a", "b", "c"])
        assert a["status"] == "completed"
        assert a["result"] == {"ok": [1]}
        assert a["updated"] == 9
        assert a["runId"] == "run1"
        assert a["progress"] == {"completed": 1, "total": 1, "percent": 100}
        assert b["progress"] == {"completed": 4, "total": 4, "percent": 100}
        assert c["status"] == "running"
        assert tx.log_of(["a"])["a"][-1] == done_log


def test_remove_dependents_due_expired_and_next_wakeup(storage: Storage) -> None:
    with storage.write("q") as tx:
        assert tx.next_wakeup() is None
        tx.insert([job("a", status="waiting", after=30), job("b", status="waiting", after=20)])
        tx.insert([job("c", status="waiting", after=5, depends=["a", "b"])])
        tx.insert([job("d", status="waiting", after=1, depends=["a"]), job("e", "u")])
        assert [d["_id"] for d in tx.dependents({"a"})] == ["c", "d"]
        assert [d["_id"] for d in tx.dependents(["b", "zz"])] == ["c"]
        assert tx.due(25, None, False) == ["b"]
        assert tx.due(25, None, True) == ["b", "c", "d"]
        assert tx.due(25, ["c", "b"], True) == ["b", "c"]
        assert tx.next_wakeup() == 20
        tx.update(["e"], {"status": "running", "expiresAfter": 15})
        assert tx.next_wakeup() == 16
        assert tx.expired(15) == []
        assert [d["_id"] for d in tx.expired(16)] == ["e"]
        tx.update(["c"], {"depends": ["b"]})
        assert [d["_id"] for d in tx.dependents({"a"})] == ["d"]
        assert tx.remove(["a", "e", "x"], ["waiting"]) == ["a"]
        assert tx.log_of(["a"]) == {"a": []}
    assert statuses(storage, "a", "e") == {"e": "running"}


def test_insert_ready_stores_waiting_jobs_as_ready_now(storage: Storage) -> None:
    from jobcollection.core.constants import FOREVER_DATE
    from jobcollection.core.usual_job import usual_values

    entry = {"time": 50, "runId": None, "level": "info", "message": "Ready"}
    docs = []
    for n in range(3):
        doc = job(f"x{n}", "r" if n < 2 else "s", "waiting", priority=n, after=10)
        del doc["_id"]
        doc.update(retryUntil=20 if n == 0 else FOREVER_DATE, repeatUntil=FOREVER_DATE)
        docs.append(doc)
    values = [usual_values(doc) for doc in docs]
    assert all(values)
    with storage.write("q") as tx:
        tx.insert_ready([v for v in values if v], ["i0", "i1", "i2"], 50, [entry])
    with storage.read("q") as tx:
        stored = tx.get(["i0", "i1", "i2"])
        logs = tx.log_of(["i0"])
    assert [d["status"] for d in stored] == ["ready"] * 3
    assert [(d["after"], d["updated"], d["created"]) for d in stored] == [(50, 50, 50)] * 3
    assert [d["retryUntil"] for d in stored] == [50, FOREVER_DATE, FOREVER_DATE]
    assert stored[1]["data"] == {}
    assert stored[2]["priority"] == 2
    assert logs["i0"] == [*docs[0]["log"], entry]
    changes = storage.changes_since(0)
    assert sorted((c.job_id, c.type, c.status) for c in changes) == [
        ("i0", "r", "ready"),
        ("i1", "r", "ready"),
        ("i2", "s", "ready"),
    ]


def test_a_large_insert_stores_what_single_inserts_store(storage: Storage) -> None:
    """Adapters may insert a batch differently (PostgreSQL: COPY); the rows are the same."""
    docs = []
    for n in range(20):
        doc = job(f"b{n:02d}", data={"n": n, "text": "tab\\t, quote ' \" and\nnewline \\N"})
        if n >= 10:  # ten of the usual shape, then ten others: two runs of ten rows
            doc["workTimeout"] = 1000 + n
            doc["_private"] = {"k": [n, None]}
            doc["log"] = []
        docs.append(doc)
    with storage.write("q") as tx:
        tx.insert(docs)
        for doc in docs[:3]:
            tx.insert([{**doc, "_id": "one-" + doc["_id"]}])
    with storage.read("q") as tx:
        batch = {d["_id"]: d for d in tx.find(ids=[d["_id"] for d in docs])}
        single = {d["_id"]: d for d in tx.find(ids=["one-" + d["_id"] for d in docs[:3]])}
        logs = tx.log_of(["b00", "b10"])
    assert list(batch) == [d["_id"] for d in docs]
    for doc in docs:
        assert batch[doc["_id"]] == {k: v for k, v in doc.items() if k != "log"}
    for key, doc in single.items():
        assert doc == {**batch[key.removeprefix("one-")], "_id": key}
    assert logs == {"b00": docs[0]["log"], "b10": []}


def test_dependents_of_completed_jobs_count_those_added_in_the_same_transaction(
    storage: Storage,
) -> None:
    done_log = {"time": 9, "runId": "run1", "level": "success", "message": "Job completed"}
    with storage.write("q") as tx:
        tx.insert([job("a"), job("b"), job("c", status="waiting", depends=["b"])])
        tx.claim(["t"], 2, RUNNING, CLAIMED)
    with storage.write("q") as tx:
        assert sorted(tx.complete(["a", "b"], "run1", {}, 9, done_log)) == [("a", 0), ("b", 0)]
        assert tx.dependents(["a"]) == []
        assert [d["_id"] for d in tx.dependents(["a", "b"])] == ["c"]
        tx.insert([job("d", status="waiting", depends=["a"])])  # after the completion
        assert [d["_id"] for d in tx.dependents(["a"])] == ["d"]
        tx.update(["c"], {"depends": ["a"]})
        assert [d["_id"] for d in tx.dependents(["a"])] == ["c", "d"]
    with storage.read("q") as tx:
        assert tx.log_of(["a"])["a"][-1] == done_log


def test_a_write_of_one_job_alone_commits_it_with_its_change(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([job("a")])
    with storage.write("q") as tx:
        pass  # nothing written: nothing to commit
    assert statuses(storage, "a") == {"a": "ready"}
    assert [(c.job_id, c.op) for c in storage.changes_since(0)] == [("a", "insert")]
    with storage.write("q") as tx:
        tx.insert([job("b")])
        assert [d["_id"] for d in tx.get(["a", "b"])] == ["a", "b"]  # the insert went first
    with storage.write("q") as tx:
        tx.insert([job("c")])
        tx.insert([job("d", "u")])
    assert statuses(storage, "b", "c", "d") == {"b": "ready", "c": "ready", "d": "ready"}
    assert [c.job_id for c in storage.changes_since(0)] == ["a", "b", "c", "d"]
