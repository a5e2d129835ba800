"""A claim over many types (first narrowed to the types whose best ready job can make the cut)
takes exactly the jobs the one-part-per-type statement takes: the best `limit` ready jobs of
the types asked for, by priority, retryUntil, after, then insertion order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import jobcollection.storage._sqlite_tx as sqlite_tx
from jobcollection import Job, JobCollection

FIELDS = {"status": "running", "runId": "test", "updated": 0}
LOG = {"time": 0, "runId": "test", "level": "info", "message": "Job Running", "data": {}}
PAST = datetime(2020, 1, 1, tzinfo=UTC)


class _Rollback(Exception):
    pass


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("q", db) as collection:
        yield collection


def claim(jc: JobCollection, types: list[str], limit: int) -> list[str]:
    """The ids a claim takes, in a transaction rolled back afterwards."""
    claimed: list[str] = []
    try:
        with jc.manager.storage.write("q") as tx:  # type: ignore[attr-defined]
            claimed = [doc["_id"] for doc in tx.claim(types, limit, FIELDS, LOG)]
            raise _Rollback
    except _Rollback:
        pass
    return claimed


def fill(jc: JobCollection, rng: random.Random) -> list[str]:
    """Ready jobs of up to 30 types with clashing priorities, deadlines and due times."""
    types = [f"t{k}" for k in range(rng.randint(1, 30))]
    jobs = []
    for _ in range(rng.randint(0, 150)):
        job = Job(jc, rng.choice(types), {})
        job.priority(rng.choice([-10, 0, 0, 10]))
        if rng.random() < 0.3:
            job.retry(retries=2, until=PAST + timedelta(days=rng.randint(10_000, 10_003)))
        job.after(PAST + timedelta(seconds=rng.randint(0, 3)))
        jobs.append(job)
    jc.save_jobs(jobs)
    return types


@pytest.mark.parametrize("seed", range(40))
def test_narrowed_claims_match_the_one_part_per_type_claim(
    jc: JobCollection, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    types = fill(jc, rng)
    for _ in range(5):
        asked = [rng.choice([*types, "idle", "other"]) for _ in range(rng.randint(9, 60))]
        limit = rng.choice([1, 2, 5, 40, 1000])
        narrowed = claim(jc, asked, limit)
        with monkeypatch.context() as one_part_each:
            one_part_each.setattr(sqlite_tx, "_FEW_TYPES", 10**6)
            assert claim(jc, asked, limit) == narrowed
        assert len(narrowed) == len(set(narrowed))


@pytest.mark.sqlite_only(reason="counts the SQL statements SQLite ran (its trace callback)")
def test_a_claim_asks_sqlite_for_one_fixed_statement_whatever_the_types(
    jc: JobCollection,
) -> None:
    """The narrowing statement takes the types as one JSON parameter (its text does not grow
    with them), and the claim statement has a part per contender only."""
    jc.save_jobs([Job(jc, "deep", {}) for _ in range(50)])
    statements: list[str] = []
    storage = jc.manager.storage  # type: ignore[attr-defined]
    storage._conn.set_trace_callback(statements.append)
    try:
        for count in (9, 100, 256):
            asked = ["deep", *(f"idle-{k}" for k in range(count - 1))]
            assert len(claim(jc, asked, 3)) == 3
    finally:
        storage._conn.set_trace_callback(None)
    narrowing = [s for s in statements if "json_each" in s]
    claims = [s for s in statements if s.startswith("UPDATE jobs")]
    assert len(narrowing) == 3
    assert {s.split("json_each(")[0] for s in narrowing} == {"SELECT j.type FROM "}
    assert sqlite_tx._CONTENDERS.count("?") == 3
    assert all(s.count("UNION ALL") == 0 for s in claims)  # one contender: one part
