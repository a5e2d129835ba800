"""`Transaction.complete_and_claim`: a worker loop's step in one statement, where the storage
says it saves round trips (PostgreSQL); elsewhere it does nothing and says so."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from contract_helpers import OpenStorage, job

from jobcollection.storage.port import RunEnd, SharedClaim, Storage

COMBINES = pytest.mark.postgres_only(reason="a step in one statement saves round trips there")
RUNNING = {"status": "running", "runId": "", "updated": 7}


def done_log(run_id: str) -> dict[str, Any]:
    return {"time": 7, "runId": run_id, "level": "success", "message": "Job Completed"}


def running_log(run_id: str) -> dict[str, Any]:
    return {"time": 7, "runId": run_id, "level": "info", "message": "Job Running"}


def end(job_id: str, run_id: str = "r0", result: Any = None) -> RunEnd:
    return RunEnd(job_id, run_id, {"n": job_id} if result is None else result, done_log(run_id))


def shared(
    limits: list[int], types: tuple[str, ...] = ("t",), worker: str | None = "w1"
) -> SharedClaim:
    run_ids = [f"r{n}" for n in range(1, len(limits) + 1)]
    return SharedClaim(
        types=types,
        limits=limits,
        run_ids=run_ids,
        logs=[running_log(run_id) for run_id in run_ids],
        fields=RUNNING,
        worker=worker,
    )


def running(job_id: str, **fields: Any) -> dict[str, Any]:
    return job(job_id, status="running", run_id="r0", **fields)


def test_it_does_the_step_or_says_it_does_not_and_changes_nothing(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([running("a"), job("b")])
    with storage.write("q") as tx:
        combines = tx.completes_and_claims_at_once
        step = tx.complete_and_claim([end("a")], 7, shared([1]))
    with storage.read("q") as tx:
        a, b = tx.get(["a", "b"])
    if combines:
        assert step == (["a"], [[b]])
        assert (a["status"], b["status"]) == ("completed", "running")
    else:
        assert step is None
        assert (a["status"], b["status"]) == ("running", "ready")


@COMBINES
def test_completes_plain_runs_and_shares_the_claim_in_claim_order(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([running("a"), running("b")])
        tx.insert([job(f"n{k}", priority=-k) for k in range(5)])
    with storage.write("q") as tx:
        done, callers = tx.complete_and_claim([end("b"), end("a")], 7, shared([2, 1]))
    assert sorted(done) == ["a", "b"]
    assert [[d["_id"] for d in jobs] for jobs in callers] == [["n4", "n3"], ["n2"]]
    assert [[d["runId"] for d in jobs] for jobs in callers] == [["r1", "r1"], ["r2"]]
    with storage.read("q") as tx:
        a, n2, n4 = tx.get(["a", "n4", "n2"])  # (in insertion order)
        assert (n2["runId"], n2["retries"]) == ("r2", 2)
        log = tx.log_of(["a", "n4", "n2"])
        mine = [w for w, _ in tx.running_of(["w1"])]
    assert (a["status"], a["result"], a["progress"]["percent"]) == ("completed", {"n": "a"}, 100)
    assert (n4["status"], n4["runId"], n4["retried"]) == ("running", "r1", 1)
    assert log["a"][-1] == done_log("r0")
    assert (log["n4"][-1], log["n2"][-1]) == (running_log("r1"), running_log("r2"))
    assert mine == ["w1"] * 3


@COMBINES
def test_leaves_repeats_dependents_and_stale_runs_as_they_were(storage: Storage) -> None:
    repeating = {**running("repeats"), "repeats": 2}
    with storage.write("q") as tx:
        tx.insert([repeating, running("antecedent"), running("stale"), job("waits")])
        tx.insert([job("dependent", status="waiting", depends=["antecedent"])])
    with storage.write("q") as tx:
        ends = [end("repeats"), end("antecedent"), end("stale", "another run"), end("plain")]
        done, callers = tx.complete_and_claim(ends, 7, None)
    assert (done, callers) == ([], [])
    with storage.read("q") as tx:
        statuses = [d["status"] for d in tx.get(["repeats", "antecedent", "stale"])]
    assert statuses == ["running"] * 3


@COMBINES
def test_its_changes_are_in_the_feed_completions_first_then_claims(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([running("b"), running("a"), job("x"), job("y", priority=-1)])
    start = storage.last_seq()
    with storage.write("q") as tx:
        tx.complete_and_claim([end("a"), end("b")], 7, shared([2]))
    changes = storage.changes_since(start)
    assert [(c.job_id, c.status) for c in changes] == [
        ("b", "completed"),
        ("a", "completed"),
        ("y", "running"),
        ("x", "running"),
    ]
    assert {"runId", "retried"} <= set(changes[-1].fields)


@COMBINES
def test_inside_a_transaction_it_is_part_of_it(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([running("a"), job("x")])
    start = storage.last_seq()

    def roll_back() -> None:
        with storage.write("q") as tx:
            tx.update(["a"], {"updated": 8})
            step = tx.complete_and_claim([end("a")], 7, shared([1]))
            assert step == (["a"], [[tx.get(["x"])[0]]])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        roll_back()
    with storage.read("q") as tx:
        assert [d["status"] for d in tx.get(["a", "x"])] == ["running", "ready"]
    assert storage.changes_since(start) == []
    with storage.write("q") as tx:
        tx.update(["a"], {"updated": 8})
        tx.complete_and_claim([end("a")], 7, shared([1]))
    assert [(c.job_id, c.status) for c in storage.changes_since(start)] == [
        ("a", "running"),
        ("a", "completed"),
        ("x", "running"),
    ]


@COMBINES
def test_an_unstorable_result_changes_nothing(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([running("a"), job("x")])
    with pytest.raises((TypeError, ValueError)), storage.write("q") as tx:
        tx.complete_and_claim([end("a", result={"f": object()})], 7, shared([1]))
    with storage.read("q") as tx:
        assert [d["status"] for d in tx.get(["a", "x"])] == ["running", "ready"]


@COMBINES
def test_a_dependent_saved_meanwhile_leaves_its_antecedent_to_the_full_completion(
    storage: Storage, open_storage_again: OpenStorage
) -> None:
    """A dependent saved by another process while the step waits for its antecedent's row: the
    step must not complete the antecedent (its statement cannot see the new dependency), so
    the full completion resolves the dependent."""
    with storage.write("q") as tx:
        tx.insert([running("antecedent")])
    saver = open_storage_again()
    saving = threading.Event()
    release = threading.Event()

    def save_dependent() -> None:
        with saver.write("q") as tx:
            tx.get_antecedents(["antecedent"])  # locks it, as a dependent's save does
            tx.insert([job("dependent", status="waiting", depends=["antecedent"])])
            saving.set()
            release.wait(10)

    thread = threading.Thread(target=save_dependent)
    thread.start()
    assert saving.wait(10)
    outcome: list[Any] = []
    step = threading.Thread(target=lambda: outcome.append(_step(storage, [end("antecedent")])))
    step.start()
    step.join(0.3)
    assert step.is_alive()  # waits for the saver's lock
    release.set()
    thread.join(10)
    step.join(10)
    assert outcome == [([], [])]
    with storage.read("q") as tx:
        assert tx.get(["antecedent"])[0]["status"] == "running"
        assert [d["_id"] for d in tx.dependents(["antecedent"])] == ["dependent"]


def _step(storage: Storage, ends: list[RunEnd]) -> Any:
    with storage.write("q") as tx:
        return tx.complete_and_claim(ends, 7, None)


@COMBINES
def test_shares_follow_the_limits_however_large(storage: Storage) -> None:
    """A caller that wants nothing gets nothing; a limit far beyond the jobs there are (a
    worker may ask for any number) costs nothing for its size."""
    with storage.write("q") as tx:
        tx.insert([job(f"n{k}") for k in range(3)])
    with storage.write("q") as tx:
        _, callers = tx.complete_and_claim([], 7, shared([0, 2**40, 5]))
    assert [[d["_id"] for d in jobs] for jobs in callers] == [[], ["n0", "n1", "n2"], []]
    assert {d["runId"] for d in callers[1]} == {"r2"}


@COMBINES
def test_a_step_that_committed_is_news_though_the_write_then_failed(
    storage: Storage, open_storage_again: OpenStorage
) -> None:
    """The step is a transaction of its own: when the rest of the write fails, what the step
    did stays done, and it reaches subscribers like any committed change."""
    with storage.write("q") as tx:
        tx.insert([running("a")])
    seen: list[str] = []
    arrived = threading.Event()

    def listener(changes: Any) -> None:
        seen.extend(c.job_id for c in changes if c.status == "completed")
        if seen:
            arrived.set()

    other = open_storage_again()
    other.subscribe(listener)

    def step_then_fail() -> None:
        with storage.write("q") as tx:
            tx.complete_and_claim([end("a")], 7, None)
            raise RuntimeError("the rest failed")

    with pytest.raises(RuntimeError, match="the rest failed"):
        step_then_fail()
    assert arrived.wait(10)
    assert seen == ["a"]
    with storage.read("q") as tx:
        assert tx.get(["a"])[0]["status"] == "completed"
