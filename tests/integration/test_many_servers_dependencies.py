"""Dependencies when several processes share one database (`serve` scaled out on PostgreSQL):
a job saved with an antecedent that another process completes or cancels at the same moment
must not wait forever.

The save reads its antecedents (still running), then stores the job and its dependency; the
other process's completion looks for the antecedent's dependents. Unless one of the two waits
for the other, neither sees the other's work: the completion finds no dependent (not yet
committed) and the save saw no completion, so the dependent keeps `depends` = [antecedent]
for good. Found by benchmarks/scale_out.py (pairs stuck `waiting`). Two collection objects
are two processes as far as the database can tell: each opens its own storage."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from jobcollection import JobCollection
from jobcollection.engine import _control

HOLD_S = 1.0  # how long the other process's call is given while the save is held open


def _held_save(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[threading.Event, threading.Event]:
    """Hold the save running in thread `name` open right after it read its antecedents."""
    read, release = threading.Event(), threading.Event()
    original = _control.check_antecedents

    def held(op: Any, doc: Any) -> bool:
        ok = original(op, doc)
        if threading.current_thread().name == name:
            read.set()
            assert release.wait(30)
        return ok

    monkeypatch.setattr(_control, "check_antecedents", held)
    return read, release


def _race(
    monkeypatch: pytest.MonkeyPatch, save: Callable[[], object], other: Callable[[], object]
) -> None:
    """`save` (a dependent's) reads its antecedent, then `other` runs in another process
    before the save commits (given HOLD_S if it has to wait for it)."""
    read, release = _held_save(monkeypatch, "saver")
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> Callable[[], None]:
        def target() -> None:
            try:
                call()
            except BaseException as error:
                errors.append(error)

        return target

    saver = threading.Thread(target=run(save), name="saver")
    saver.start()
    try:
        assert read.wait(30), "the save did not read its antecedents"
        acting = threading.Thread(target=run(other), name="other")
        acting.start()
        acting.join(HOLD_S)
    finally:
        release.set()
        saver.join(30)
    acting.join(30)
    assert not saver.is_alive()
    assert not acting.is_alive()
    assert errors == []


def test_dependent_saved_while_another_process_completes_its_antecedent(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with JobCollection("queue", db=db) as here, JobCollection("queue", db=db) as there:
        here.start_job_server()
        antecedent = here.job("first", {"n": 1})
        antecedent.save()
        (running,) = here.get_work("first")
        dependent = there.job("second", {"n": 2}).depends([antecedent])
        _race(monkeypatch, dependent.save, running.done)
        assert here.get_job(str(antecedent.id)).doc["status"] == "completed"  # type: ignore[union-attr]
        doc = there.get_job(str(dependent.id)).doc  # type: ignore[union-attr]
        assert (doc["depends"], doc["resolved"]) == ([], [antecedent.id])
        assert doc["status"] == "ready"


def test_dependent_saved_while_another_process_cancels_its_antecedent(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with JobCollection("queue", db=db) as here, JobCollection("queue", db=db) as there:
        antecedent = here.job("first", {"n": 1}).delay(3_600_000)
        antecedent.save()
        dependent = there.job("second", {"n": 2}).depends([antecedent])
        _race(monkeypatch, dependent.save, antecedent.cancel)
        assert here.get_job(str(antecedent.id)).doc["status"] == "cancelled"  # type: ignore[union-attr]
        assert there.get_job(str(dependent.id)).doc["status"] == "cancelled"  # type: ignore[union-attr]
