"""Flat combining: every caller gets its own result, none is left behind, batches form."""

from __future__ import annotations

import threading
import time

import pytest

from jobcollection.engine._combiner import Combiner, Request


def test_each_caller_gets_its_own_result_and_batches_form() -> None:
    batches: list[int] = []

    def run_all(requests: list[Request[int, int]]) -> None:
        batches.append(len(requests))
        time.sleep(0.001)  # hold the lock a moment so others pile up
        for request in requests:
            request.result = request.work * 10

    combiner: Combiner[int, int] = Combiner(run_all)
    results: dict[int, int] = {}

    def caller(base: int) -> None:
        for n in range(base, base + 50):
            results[n] = combiner.submit(n)

    threads = [threading.Thread(target=caller, args=(t * 1000,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 400
    assert all(value == key * 10 for key, value in results.items())
    assert sum(batches) == 400
    assert max(batches) > 1  # some transactions served several callers


def test_an_error_reaches_every_request_of_the_batch_and_the_next_call_works() -> None:
    fail = threading.Event()

    def run_all(requests: list[Request[int, int]]) -> None:
        if fail.is_set():
            raise RuntimeError("database went away")
        for request in requests:
            request.result = request.work

    combiner: Combiner[int, int] = Combiner(run_all)
    fail.set()
    with pytest.raises(RuntimeError, match="went away"):
        combiner.submit(1)
    fail.clear()
    assert combiner.submit(2) == 2


def test_several_works_of_one_caller_are_served_in_one_batch_in_order() -> None:
    seen: list[list[int]] = []

    def run_all(requests: list[Request[int, int]]) -> None:
        seen.append([request.work for request in requests])
        if any(request.work < 0 for request in requests):
            raise ValueError("a negative work")
        for request in requests:
            request.result = request.work + 1

    combiner: Combiner[int, int] = Combiner(run_all)
    served = combiner.submit_many([3, 1, 2])
    assert [request.result for request in served] == [4, 2, 3]
    assert seen == [[3, 1, 2]]
    failed = combiner.submit_many([5, -1])
    assert [str(request.error) for request in failed] == ["a negative work"] * 2
    assert combiner.submit_many([]) == []
    assert combiner.submit(7) == 8
