"""Bounded reads of one collection in PostgreSQL: pages of jobs and slices of counts.

The same contract as the SQLite adapter's (`storage/_sqlite_reads.py`): each call examines a
bounded number of rows or index entries and returns a keyset to go on from. A page scans a
window of `WINDOW` consecutive `seq`s beyond its cursor (via `jobs_collection_seq`); when that
finds fewer than asked and fewer than `SPARSE` matches are left, they are taken off the status
indexes instead. A count walks (status, type) groups in index order: ready jobs in claim order
off `jobs_ready`, the others by `seq` off `jobs_status`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

import psycopg

from .. import _columns as cols
from ..port import JobDoc, Page, Tally, TallyCursor

WINDOW: Final = 4096
SPARSE: Final = 10_000
TALLY_BUDGET: Final = 50_000
_GROUP_COST: Final = 50
_READY_KEY: Final = "priority, retry_until, after, seq"
_START: Final[TallyCursor] = (0, None, None, None)

Where = tuple[list[str], list[Any]]
Cursor = psycopg.Cursor[Any]


def _filter(
    collection: str,
    ids: Sequence[str] | None,
    statuses: Collection[str] | None,
    types: Collection[str] | None,
) -> Where | None:
    """The conditions of a query; None when it can match nothing."""
    where: list[str] = ["collection = %s"]
    args: list[Any] = [collection]
    for column, values in (("id", ids), ("status", statuses), ("type", types)):
        if values is not None:
            wanted = list(dict.fromkeys(values))
            if not wanted:
                return None
            where.append(f"{column} = ANY(%s::text[])")
            args.append(wanted)
    return where, args


def _docs(rows: list[tuple[Any, ...]]) -> tuple[list[JobDoc], list[int]]:
    return [cols.row_to_doc(row[:-1]) for row in rows], [int(row[-1]) for row in rows]


def page(
    cur: Cursor,
    collection: str,
    *,
    ids: Sequence[str] | None,
    statuses: Collection[str] | None,
    types: Collection[str] | None,
    after: int | None,
    limit: int,
    newest_first: bool,
) -> Page:
    """See `storage.port.Transaction.page`."""
    found = _filter(collection, ids, statuses, types)
    if found is None or limit <= 0:
        return Page([], [], None)
    where, args = found
    order = "DESC" if newest_first else "ASC"
    beyond = "seq < %s" if newest_first else "seq > %s"
    if after is not None:
        where, args = [*where, beyond], [*args, after]
    select = f"SELECT {cols.SELECT_LIST}, seq FROM jobs"
    if ids is not None:  # a few hundred ids at most: straight off the id index
        sql = f"{select} WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT %s"
        docs, seqs = _docs(cur.execute(sql, [*args, limit]).fetchall())
        return Page(docs, seqs, seqs[-1] if len(docs) == limit else None)
    edge_sql = "max(seq)" if newest_first else "min(seq)"
    first = f"SELECT {edge_sql} FROM jobs WHERE collection = %s"
    row = cur.execute(
        first if after is None else f"{first} AND {beyond}",
        [collection] if after is None else [collection, after],
    ).fetchone()
    if row is None or row[0] is None:
        return Page([], [], None)
    start = int(row[0])
    low, high = (start - WINDOW, start) if newest_first else (start - 1, start - 1 + WINDOW)
    sql = (
        f"{select} WHERE seq > %s AND seq <= %s AND {' AND '.join(where)} "
        f"ORDER BY seq {order} LIMIT %s"
    )
    docs, seqs = _docs(cur.execute(sql, [low, high, *args, limit]).fetchall())
    if len(docs) == limit:
        return Page(docs, seqs, seqs[-1])
    edge = low + 1 if newest_first else high  # the window's far end: `next` goes on from it
    base, base_args = found
    rest = [*base, beyond]
    rest_args = [*base_args, edge]
    count = f"SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {' AND '.join(rest)} LIMIT %s) AS s"
    (left,) = cur.execute(count, [*rest_args, SPARSE]).fetchone() or (0,)
    if left >= SPARSE:
        return Page(docs, seqs, edge)
    need = limit - len(docs)
    sql = f"{select} WHERE {' AND '.join(rest)} ORDER BY seq {order} LIMIT %s"
    extra, extra_seqs = _docs(cur.execute(sql, [*rest_args, need]).fetchall())
    docs, seqs = docs + extra, seqs + extra_seqs
    return Page(docs, seqs, None if left <= need or not seqs else seqs[-1])


# -- counts ------------------------------------------------------------------------------------
# A tally's cursor: (part, status, type, key). Part 0 counts ready jobs (claim order, off
# `jobs_ready`), part 1 the others (by seq, off `jobs_status`). `key` None: the group is done;
# (): it starts; else the key of the last job counted.


def tally(
    cur: Cursor,
    collection: str,
    *,
    ids: Sequence[str] | None,
    statuses: Collection[str] | None,
    types: Collection[str] | None,
    after: TallyCursor | None,
    at_most: int | None = None,
) -> Tally:
    """See `storage.port.Transaction.tally`."""
    found = _filter(collection, ids, statuses, types)
    if found is None:
        return Tally([], None)
    if ids is not None:  # a few hundred ids at most
        where, args = found
        sql = f"SELECT status, type, count(*) FROM jobs WHERE {' AND '.join(where)} "
        rows = cur.execute(sql + "GROUP BY status, type ORDER BY 1, 2", args).fetchall()
        return Tally([(s, t, int(n)) for s, t, n in rows], None)
    wanted = None if statuses is None else list(dict.fromkeys(statuses))
    kinds = None if types is None else list(dict.fromkeys(types))
    part, status, job_type, key = after or _START
    budget = TALLY_BUDGET if at_most is None else max(1, min(TALLY_BUDGET, at_most))
    counts: list[tuple[str, str, int]] = []
    while budget > 0:
        if part == 0 and wanted is not None and "ready" not in wanted:
            part, status, job_type, key = 1, None, None, None
        if key is None:
            group = _next_group(cur, collection, part, status, job_type, wanted, kinds)
            if group is None:
                if part == 1:
                    return Tally(counts, None)
                part, status, job_type, key = 1, None, None, None
                continue
            (status, job_type), key = group, ()
        assert status is not None
        assert job_type is not None
        number, key = _count_group(cur, collection, part, status, job_type, key, budget)
        if number:
            counts.append((status, job_type, number))
        budget -= max(number, _GROUP_COST)
    return Tally(counts, (part, status, job_type, key))


def _next_group(
    cur: Cursor,
    collection: str,
    part: int,
    status: str | None,
    job_type: str | None,
    statuses: list[str] | None,
    types: list[str] | None,
) -> tuple[str, str] | None:
    """The first (status, type) with jobs after (status, type) in the part's index order."""
    where: list[str] = ["collection = %s"]
    args: list[Any] = [collection]
    if types is not None:
        where.append("type = ANY(%s::text[])")
        args.append(types)
    if part == 0:
        where.append("status = 'ready'")
        if job_type is not None:
            where.append("type > %s")
            args.append(job_type)
        sql = f"SELECT 'ready', type FROM jobs WHERE {' AND '.join(where)} ORDER BY type LIMIT 1"
    else:
        where.append("status <> 'ready'")
        if statuses is not None:
            where.append("status = ANY(%s::text[])")
            args.append(statuses)
        if status is not None:
            where.append("(status, type) > (%s, %s)")
            args += [status, job_type]
        sql = (
            f"SELECT status, type FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY status, type LIMIT 1"
        )
    row = cur.execute(sql, args).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def _count_group(
    cur: Cursor,
    collection: str,
    part: int,
    status: str,
    job_type: str,
    key: tuple[Any, ...],
    budget: int,
) -> tuple[int, tuple[Any, ...] | None]:
    """Count up to `budget` jobs of one group after `key`; the number, and the key of the last
    one when the budget ran out (None: the group is done)."""
    if part == 0:
        where = "collection = %s AND type = %s AND status = 'ready'"
        args: list[Any] = [collection, job_type]
        if key:
            where += f" AND ({_READY_KEY}) > (%s, %s, %s, %s)"
            args.extend(key)
        inner = f"SELECT {_READY_KEY} FROM jobs WHERE {where} ORDER BY {_READY_KEY}"
    else:
        where = "collection = %s AND status = %s AND status <> 'ready' AND type = %s"
        args = [collection, status, job_type]
        if key:
            where += " AND seq > %s"
            args.extend(key)
        inner = f"SELECT seq FROM jobs WHERE {where} ORDER BY seq"
    sql = f"SELECT count(*) FROM ({inner} LIMIT %s) AS s"
    (number,) = cur.execute(sql, [*args, budget]).fetchone() or (0,)
    if number < budget:
        return int(number), None
    last = cur.execute(f"{inner} LIMIT 1 OFFSET %s", [*args, budget - 1]).fetchone()
    return int(number), None if last is None else tuple(last)
