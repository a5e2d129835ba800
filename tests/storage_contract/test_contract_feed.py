"""The change feed: every committed change, once, in one stable order; nothing uncommitted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest
from contract_helpers import CLAIMED, POSTGRES_ONLY, RUNNING, OpenStorage, job

from jobcollection.storage.port import Change, Storage


class Collector:
    """A subscriber that keeps what it was given."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._lock = threading.Lock()

    def __call__(self, changes: Sequence[Change]) -> None:
        with self._lock:
            self.changes.extend(changes)

    def ids(self) -> list[str]:
        with self._lock:
            return [change.job_id for change in self.changes]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.ids()) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.ids()


def keys(changes: Sequence[Change]) -> list[tuple[str, str, str | None]]:
    return [(change.job_id, change.op, change.status) for change in changes]


def test_changes_since_gives_every_write_in_commit_order(storage: Storage) -> None:
    assert storage.last_seq() == 0
    assert storage.changes_since(0) == []
    with storage.write("q") as tx:
        tx.insert([job("a"), job("b"), job("w", "u", "waiting")])
    with storage.write("q") as tx:
        tx.claim(["t"], 1, RUNNING, CLAIMED)
        tx.remove(["w"], ["waiting"])
    with storage.write("q") as tx:
        pass  # a write that changes nothing adds nothing
    changes = storage.changes_since(0)
    assert keys(changes) == [
        ("a", "insert", "ready"),
        ("b", "insert", "ready"),
        ("w", "insert", "waiting"),
        ("a", "update", "running"),
        ("w", "remove", None),
    ]
    assert changes[0].seq == changes[1].seq  # inserted together: one feed row
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert changes[3].fields == ("status", "runId", "updated", "retries", "retried")
    assert {c.collection for c in changes} == {"q"}
    assert storage.last_seq() == changes[-1].seq
    assert storage.changes_since(changes[-1].seq) == []
    assert keys(storage.changes_since(changes[2].seq)) == keys(changes[3:])
    assert len(storage.changes_since(0, limit=3)) >= 2


def test_a_subscriber_in_another_storage_sees_every_change_once(
    storage: Storage, open_storage_again: OpenStorage
) -> None:
    other = open_storage_again()
    theirs, ours = Collector(), Collector()
    unsubscribe = other.subscribe(theirs)
    storage.subscribe(ours)
    for n in range(20):
        with storage.write("q") as tx:
            tx.insert([job(f"j{n:02d}")])
    expected = [f"j{n:02d}" for n in range(20)]
    assert theirs.wait_for(20) == expected
    assert ours.wait_for(20) == expected
    unsubscribe()
    with storage.write("q") as tx:
        tx.insert([job("late")])
    assert ours.wait_for(21)[-1] == "late"
    time.sleep(0.2)
    assert theirs.ids() == expected


def _hold_a_write(storage: Storage, job_id: str) -> tuple[threading.Event, Callable[[], None]]:
    """Start a write that inserts `job_id` and stays open; returns (written, commit)."""
    written, release = threading.Event(), threading.Event()

    def run() -> None:
        with storage.write("q") as tx:
            tx.insert([job(job_id)])
            assert tx.get([job_id])  # the insert has reached the server (its id is taken)
            written.set()
            release.wait(30)

    thread = threading.Thread(target=run)
    thread.start()

    def commit() -> None:
        release.set()
        thread.join(30)

    return written, commit


@POSTGRES_ONLY
def test_out_of_order_commits_are_never_missed(
    adapter: str, storage: Storage, open_storage_again: OpenStorage
) -> None:
    """Writer A writes first but commits after writer B: a reader in between sees neither
    (it could not otherwise receive A later below B); afterwards both, once, in one order.
    PostgreSQL only: SQLite serializes its writers, so B cannot commit while A is open."""
    writer_b, reader = open_storage_again(), open_storage_again()
    seen = Collector()
    reader.subscribe(seen)
    written, commit_a = _hold_a_write(storage, "A")
    try:
        assert written.wait(10)
        with writer_b.write("q") as tx:
            tx.insert([job("B")])
        time.sleep(0.3)  # the reader's watcher polls, and B's notification has arrived
        assert reader.changes_since(0) == []
        assert reader.last_seq() == 0
        assert seen.ids() == []
        with reader.read("q") as tx:  # B itself is committed and readable
            assert [doc["_id"] for doc in tx.get(["A", "B"])] == ["B"]
    finally:
        commit_a()
    assert seen.wait_for(2) == ["A", "B"]
    changes = reader.changes_since(0)
    assert [c.job_id for c in changes] == ["A", "B"]
    assert changes[0].seq < changes[1].seq
    assert reader.changes_since(0) == changes  # stable
    assert reader.changes_since(changes[0].seq) == changes[1:]
    time.sleep(0.2)
    assert seen.ids() == ["A", "B"]  # each once


def test_a_rolled_back_write_never_reaches_subscribers(
    storage: Storage, open_storage_again: OpenStorage
) -> None:
    seen = Collector()
    open_storage_again().subscribe(seen)

    class Boom(Exception):
        pass

    def fail() -> None:
        with storage.write("q") as tx:
            tx.insert([job("never")])
            raise Boom

    with pytest.raises(Boom):
        fail()
    with storage.write("q") as tx:
        tx.insert([job("kept")])
    assert seen.wait_for(1) == ["kept"]
    time.sleep(0.1)
    assert seen.ids() == ["kept"]


def test_concurrent_writers_every_change_once_in_the_feed_order(
    storage: Storage, open_storage_again: OpenStorage
) -> None:
    """Writers in several storages at once (on PostgreSQL their commits interleave freely): a
    subscriber elsewhere gets every change once, in the order `changes_since` gives."""
    writers = [storage, open_storage_again(), open_storage_again()]
    seen = Collector()
    open_storage_again().subscribe(seen)
    per_writer = 40
    start = threading.Barrier(len(writers))

    def write(index: int) -> None:
        start.wait()
        for n in range(per_writer):
            with writers[index].write("q") as tx:
                tx.insert([job(f"w{index}-{n:02d}")])
                if n % 3 == 0:
                    time.sleep(0.001)  # hold some transactions open a little

    threads = [threading.Thread(target=write, args=(k,)) for k in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    total = len(writers) * per_writer
    got = seen.wait_for(total)
    time.sleep(0.2)
    assert len(seen.ids()) == total
    assert len(set(got)) == total
    feed = storage.changes_since(0)
    assert [c.job_id for c in feed] == got
    for index in range(len(writers)):  # each writer's changes in its own order
        mine = [i for i in got if i.startswith(f"w{index}-")]
        assert mine == sorted(mine)


@POSTGRES_ONLY
def test_writes_that_did_not_notify_reach_subscribers_here_at_once_elsewhere_soon(
    adapter: str,
    storage: Storage,
    open_storage_again: OpenStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Notifications are rate-limited (postgres/notify.py): a write soon after another one
    commits without its own. This process's subscribers are woken directly; another
    process's by the trailing notification (the watchers' safety-net poll is off here)."""
    from jobcollection.storage.postgres import feed

    monkeypatch.setattr(feed, "POLL_S", 60.0)
    here, elsewhere = Collector(), Collector()
    storage.subscribe(here)
    open_storage_again().subscribe(elsewhere)
    notifier = storage._notifier  # type: ignore[attr-defined]
    notifier._gap_s = 60.0  # no trailing notification during this part
    for name in ("a", "b", "c"):
        with storage.write("q") as tx:
            tx.insert([job(name)])
    assert here.wait_for(3, timeout=5) == ["a", "b", "c"]
    assert elsewhere.wait_for(1, timeout=5)[:1] == ["a"]
    notifier.hurry()  # the one owed for "b" and "c", now
    assert elsewhere.wait_for(3, timeout=5) == ["a", "b", "c"]
