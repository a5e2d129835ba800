"""The engine's live queries (`engine.live.LiveQueries`): initial results, added/changed/removed
from the change feed, projections, shapes, and one read per batch however many consumers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobcollection import JobCollection
from jobcollection.engine.live import STORED, LiveBatch, LiveQueries, Shape

TIMEOUT_S = 10.0


class Consumer:
    """Collects the batches it gets (on the engine's thread)."""

    def __init__(self) -> None:
        self.batches: list[LiveBatch] = []
        self._cond = threading.Condition()

    def __call__(self, batch: LiveBatch) -> None:
        with self._cond:
            self.batches.append(batch)
            self._cond.notify_all()

    def wait(self, count: int) -> list[LiveBatch]:
        """The first ``count`` batches (fails after a while without them)."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.batches) >= count, TIMEOUT_S), self.batches
            return list(self.batches[:count])

    def events(self) -> list[tuple[str, str]]:
        with self._cond:
            return [(c.kind, c.id) for b in self.batches for c in b.changes]


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("lq", db=db) as collection:
        collection.start_job_server()
        yield collection


@pytest.fixture
def live(jc: JobCollection) -> LiveQueries:
    return jc.manager.live


def settle(live: LiveQueries) -> None:
    """Return once every change noted so far reached the consumers."""
    done = threading.Event()
    if live.settle(done.set):
        assert done.wait(TIMEOUT_S)


def save(jc: JobCollection, job_type: str, **data: Any) -> str:
    job_id = jc.job(job_type, data).save()
    assert job_id is not None
    return job_id


def count_reads(live: LiveQueries, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many ids each re-read of changed jobs asks for."""
    reads: list[int] = []
    original = live._read_changed

    def counting(ids: list[str], with_logs: bool) -> Any:
        reads.append(len(ids))
        return original(ids, with_logs)

    monkeypatch.setattr(live, "_read_changed", counting)
    return reads


def test_initial_result_then_added_changed_removed(jc: JobCollection, live: LiveQueries) -> None:
    before = save(jc, "mail")
    save(jc, "sms")  # another type: never reported
    consumer = Consumer()
    handle = live.watch({"type": "mail", "status": {"$in": ["ready", "paused"]}}, consumer)
    (initial,) = consumer.wait(1)
    assert initial.initial
    assert initial.error is None
    assert [(c.kind, c.id, c.doc["status"]) for c in initial.changes if c.doc] == [
        ("added", before, "ready")
    ]
    assert "log" not in initial.changes[0].doc  # type: ignore[operator]  # stored shape

    later = save(jc, "mail")
    settle(live)
    jc.pause_jobs([before])
    settle(live)
    jc.cancel_jobs([later])  # leaves the selection
    settle(live)
    assert consumer.events()[1:] == [("added", later), ("changed", before), ("removed", later)]
    changed = consumer.batches[2].changes[0]
    assert "status" in changed.fields
    assert changed.doc is not None
    assert changed.doc["status"] == "paused"
    handle.stop()


def test_a_projection_reports_only_its_fields(jc: JobCollection, live: LiveQueries) -> None:
    job_id = save(jc, "p", n=1)
    consumer = Consumer()
    live.watch({"type": "p"}, consumer, fields=frozenset({"status", "type"}))
    (initial,) = consumer.wait(1)
    assert initial.changes[0].doc == {"status": "ready", "type": "p"}
    jc.pause_jobs([job_id])
    jc.resume_jobs([job_id])  # back as it was: the projected fields did not change
    jc.pause_jobs([job_id])
    settle(live)
    changed = [c for b in consumer.batches[1:] for c in b.changes]
    assert changed
    assert {c.kind for c in changed} == {"changed"}
    assert all(set(c.doc or {}) == {"status", "type"} for c in changed)
    assert changed[-1].doc == {"status": "paused", "type": "p"}


def test_consumers_of_one_query_share_it_and_its_reads(
    jc: JobCollection, live: LiveQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = save(jc, "s")
    consumers = [Consumer() for _ in range(100)]
    handles = [live.watch({"type": "s"}, consumer) for consumer in consumers]
    for consumer in consumers:
        assert [(c.kind, c.id) for c in consumer.wait(1)[0].changes] == [("added", job_id)]
    assert len(live._queries) == 1  # one shared query

    reads = count_reads(live, monkeypatch)
    for _ in range(3):
        jc.pause_jobs([job_id])
        settle(live)
        jc.resume_jobs([job_id])
        settle(live)
    # One read per batch, not per consumer (100): six batches, and on PostgreSQL, where the
    # feed comes back through the watcher, a change may now and then arrive in a batch of its
    # own (one read more, never one per consumer).
    assert set(reads) == {1}
    assert 6 <= len(reads) <= 8
    for consumer in consumers:
        batches = consumer.wait(7)
        assert [c.kind for b in batches[1:] for c in b.changes] == ["changed"] * 6
        assert batches[1] is consumers[0].batches[1]  # the very same batch object
    for handle in handles:
        handle.stop()


def test_another_selector_shares_the_batch_read(
    jc: JobCollection, live: LiveQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every query of a collection is fed from one read per batch, whatever its selector or
    its shape (a shape with logs makes that read take the logs)."""
    job_id = save(jc, "t")
    with_log = Shape("with log", lambda doc: doc, with_logs=True)
    plain, logged, other = Consumer(), Consumer(), Consumer()
    live.watch({"type": "t"}, plain)
    live.watch({}, logged, shape=with_log)
    live.watch({"status": "ready"}, other, shape=STORED)
    for consumer in (plain, logged, other):
        consumer.wait(1)
    assert len(live._queries) == 3
    reads = count_reads(live, monkeypatch)
    jc.pause_jobs([job_id])
    settle(live)
    assert reads == [1]
    assert [c.kind for c in plain.wait(2)[1].changes] == ["changed"]
    assert [c.kind for c in other.wait(2)[1].changes] == ["removed"]
    (change,) = logged.wait(2)[1].changes
    assert change.doc is not None
    assert [entry["message"] for entry in change.doc["log"]][-1] == "Job Paused"
    assert "log" not in (plain.batches[1].changes[0].doc or {})  # its own copy, no log


def test_a_late_consumer_gets_the_current_result_without_a_read(
    jc: JobCollection, live: LiveQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_id = save(jc, "l")
    first = Consumer()
    live.watch({"type": "l"}, first)
    first.wait(1)
    second_id = save(jc, "l")
    settle(live)
    reads: list[object] = []
    original = live.reader.read_chunks

    def counting(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(live.reader, "read_chunks", counting)
    late = Consumer()
    live.watch({"type": "l"}, late)
    (initial,) = late.wait(1)
    assert [(c.kind, c.id) for c in initial.changes] == [("added", first_id), ("added", second_id)]
    assert reads == []


def test_stopping_the_last_consumer_stops_the_query(
    jc: JobCollection, live: LiveQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(jc, "x")
    one, two = Consumer(), Consumer()
    first, second = live.watch({"type": "x"}, one), live.watch({"type": "x"}, two)
    one.wait(1)
    two.wait(1)
    first.stop()
    first.stop()  # idempotent
    assert len(live._queries) == 1  # the other consumer keeps it
    save(jc, "x")
    settle(live)
    assert len(two.wait(2)) == 2
    assert len(one.batches) == 1
    second.stop()
    assert live._queries == {}
    reads = count_reads(live, monkeypatch)
    save(jc, "x")
    settle(live)
    time.sleep(0.05)
    assert reads == []  # nobody watches: nothing is read
    assert len(two.batches) == 2


def test_a_consumer_that_raises_does_not_break_the_others(
    jc: JobCollection, live: LiveQueries, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(batch: LiveBatch) -> None:
        raise RuntimeError("consumer bug")

    live.watch({}, broken)
    good = Consumer()
    live.watch({}, good)
    good.wait(1)
    job_id = save(jc, "b")
    settle(live)
    assert good.events() == [("added", job_id)]
    jc.pause_jobs([job_id])
    settle(live)
    assert good.events() == [("added", job_id), ("changed", job_id)]
    assert "consumer bug" in caplog.text


def test_a_failed_first_read_is_reported_to_its_consumer(
    live: LiveQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr(live.reader, "read_chunks", failing)
    consumer = Consumer()
    handle = live.watch({}, consumer)
    (batch,) = consumer.wait(1)
    assert batch.initial
    assert isinstance(batch.error, OSError)
    assert not handle.active
    assert live._queries == {}


def test_a_bad_selector_is_refused_at_once(live: LiveQueries) -> None:
    from jobcollection import ValidationError

    with pytest.raises(ValidationError, match="selector"):
        live.watch({"owner": "ada"}, Consumer())


def test_ready_types_come_and_go(jc: JobCollection, live: LiveQueries) -> None:
    save(jc, "mail")
    consumer = Consumer()
    handle = live.watch_ready_types(frozenset({"mail", "sms"}), consumer)
    (initial,) = consumer.wait(1)
    assert [(c.kind, c.id) for c in initial.changes] == [("added", "mail")]
    save(jc, "sms")
    settle(live)
    assert len(jc.get_work("mail")) == 1
    settle(live)
    save(jc, "push")  # not watched
    settle(live)
    assert consumer.events() == [("added", "mail"), ("added", "sms"), ("removed", "mail")]
    handle.stop()


def test_settle_is_false_when_nothing_is_in_flight(jc: JobCollection, live: LiveQueries) -> None:
    assert live.settle(lambda: None) is False
    consumer = Consumer()
    live.watch({}, consumer)
    consumer.wait(1)
    settle(live)
    assert live.settle(lambda: None) is False
    job_id = save(jc, "z")
    settle(live)  # returns only after the consumer got the change
    assert consumer.events() == [("added", job_id)]


def test_observe_runs_on_the_engine(jc: JobCollection) -> None:
    """`JobManager.observe` is a consumer like any other: `added` before it returns."""
    job_id = save(jc, "o")
    seen: list[tuple[str, str]] = []
    stop = jc.manager.observe({"type": "o"}, lambda change: seen.append((change.kind, change.id)))
    assert seen == [("added", job_id)]
    assert len(jc.manager.live._queries) == 1
    stop()
    assert jc.manager.live._queries == {}
