"""Keyset reads: `page` and `tally` give exactly what a full scan gives, chunk by chunk."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from contract_helpers import job

import jobcollection.storage._sqlite_reads as sqlite_reads
from jobcollection.storage.port import Storage

STATUSES = ["waiting", "ready", "running", "completed", "failed", "cancelled", "paused"]
FILTERS: list[dict[str, Any]] = [
    {},
    {"statuses": ["ready"]},
    {"statuses": ["completed", "ready"]},
    {"statuses": ["failed"], "types": ["b"]},
    {"types": ["a", "c"]},
    {"statuses": []},
    {"ids": ["j005", "j100", "j007", "zz"]},
]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows and budgets small enough that 200 jobs take many chunks."""
    modules: list[Any] = [sqlite_reads]
    try:
        import jobcollection.storage.postgres.reads as pg_reads

        modules.append(pg_reads)
    except ImportError:  # no psycopg: the PostgreSQL runs skip anyway
        pass
    for module in modules:
        monkeypatch.setattr(module, "WINDOW", 16)
        monkeypatch.setattr(module, "SPARSE", 12)
        monkeypatch.setattr(module, "TALLY_BUDGET", 30)


@pytest.fixture
def filled(storage: Storage) -> list[dict[str, Any]]:
    rng = random.Random(7)
    docs = [
        job(f"j{n:03d}", rng.choice("abc"), rng.choice(STATUSES), priority=rng.choice([-5, 0, 9]))
        for n in range(200)
    ]
    with storage.write("q") as tx:
        tx.insert(docs)
        tx.insert([job("x1", "a", "ready")])
    with storage.write("other") as tx:
        tx.insert([job("elsewhere", "a", "ready")])
    gone = [doc["_id"] for doc in docs[40:90]]
    with storage.write("q") as tx:
        tx.remove(gone, STATUSES)
    with storage.read("q") as tx:
        return tx.find()


def expected(docs: list[dict[str, Any]], query: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        doc
        for doc in docs
        if all(doc[key] in query[name] for name, key in _KEYS.items() if name in query)
    ]


_KEYS = {"ids": "_id", "statuses": "status", "types": "type"}


@pytest.mark.parametrize("query", FILTERS)
@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("limit", [1, 7, 500])
def test_pages_walk_every_match_once_in_order(
    storage: Storage,
    filled: list[dict[str, Any]],
    query: dict[str, Any],
    newest_first: bool,
    limit: int,
) -> None:
    want = expected(filled, query)
    if newest_first:
        want = want[::-1]
    got: list[dict[str, Any]] = []
    after: int | None = None
    for _ in range(1000):
        with storage.read("q") as tx:
            page = tx.page(**query, after=after, limit=limit, newest_first=newest_first)
        assert len(page.docs) <= limit
        assert len(page.seqs) == len(page.docs)
        got += page.docs
        if page.next is None:
            break
        after = page.next
    assert [d["_id"] for d in got] == [d["_id"] for d in want]


@pytest.mark.parametrize("query", FILTERS)
@pytest.mark.parametrize("at_most", [None, 5])
def test_tallies_add_up_to_the_counts(
    storage: Storage, filled: list[dict[str, Any]], query: dict[str, Any], at_most: int | None
) -> None:
    want = Counter((doc["status"], doc["type"]) for doc in expected(filled, query))
    got: Counter[tuple[str, str]] = Counter()
    cursor = None
    for _ in range(1000):
        with storage.read("q") as tx:
            tally = tx.tally(**query, after=cursor, at_most=at_most)
        for status, job_type, number in tally.counts:
            got[status, job_type] += number
        if tally.next is None:
            break
        cursor = tally.next
    assert got == want
