"""Claims: order, limit, types, what they write, and concurrent claimers."""

from __future__ import annotations

import threading

from contract_helpers import CLAIMED, RUNNING, OpenStorage, job

from jobcollection.storage.port import Storage


def claim(storage: Storage, types: list[str], limit: int, worker: str | None = None) -> list[str]:
    with storage.write("q") as tx:
        return [doc["_id"] for doc in tx.claim(types, limit, RUNNING, CLAIMED, worker)]


def test_claims_follow_priority_deadline_due_time_then_insertion(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert(
            [
                job("late", after=50),
                job("first-in", after=10),
                job("urgent", priority=-10, after=99),
                job("deadline", retry_until=1000, after=99),
                job("second-in", after=10),
                job("low", priority=10),
                job("other-type", "u", priority=-20),
                job("waiting", status="waiting", priority=-20),
            ]
        )
    assert claim(storage, ["t"], 3) == ["urgent", "deadline", "first-in"]
    assert claim(storage, ["t"], 10) == ["second-in", "late", "low"]
    assert claim(storage, ["t"], 10) == []


def test_claims_take_the_best_of_several_types_and_count_a_type_once(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([job(f"a{n}", "a", priority=n) for n in range(3)])
        tx.insert([job(f"b{n}", "b", priority=n) for n in range(3)])
    assert claim(storage, ["a", "b", "a", "none"], 4) == ["a0", "b0", "a1", "b1"]
    assert claim(storage, [], 4) == []
    assert claim(storage, ["a"], 0) == []


def test_a_claim_writes_the_fields_the_worker_and_a_log_entry(storage: Storage) -> None:
    with storage.write("q") as tx:
        tx.insert([job("j1")])
    with storage.write("q") as tx:
        (doc,) = tx.claim(["t"], 1, RUNNING, CLAIMED, "w1")
    assert doc["status"] == "running"
    assert doc["runId"] == "run1"
    assert (doc["retries"], doc["retried"]) == (2, 1)
    with storage.read("q") as tx:
        assert tx.get(["j1"]) == [doc]
        assert tx.log_of(["j1"])["j1"][-1] == CLAIMED
        assert [(w, d["_id"]) for w, d in tx.running_of(["w1"])] == [("w1", "j1")]


def test_claims_are_per_collection(storage: Storage) -> None:
    with storage.write("other") as tx:
        tx.insert([job("elsewhere")])
    assert claim(storage, ["t"], 5) == []


def test_concurrent_claimers_never_get_the_same_job(
    storage: Storage, open_storage_again: OpenStorage
) -> None:
    jobs = 300
    with storage.write("q") as tx:
        tx.insert([job(f"j{n:03d}", priority=n % 7) for n in range(jobs)])
    claimers = [storage, open_storage_again(), open_storage_again()]
    got: list[list[str]] = [[] for _ in claimers]
    start = threading.Barrier(len(claimers))

    def run(index: int) -> None:
        start.wait()
        while taken := claim(claimers[index], ["t"], 3):
            got[index].extend(taken)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(claimers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [job_id for taken in got for job_id in taken]
    assert len(every) == jobs
    assert len(set(every)) == jobs
