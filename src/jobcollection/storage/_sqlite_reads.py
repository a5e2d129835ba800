"""Bounded reads of one collection in SQLite: pages of jobs and slices of counts.

Each call runs inside one read transaction and examines a bounded number of rows or index
entries, whatever the size of the table. The engine strings calls together, one short
transaction each, going on from the keyset the last one returned (`seq`, the insertion
number, for pages). So a large read never holds a snapshot for long — the WAL is checkpointed
between chunks — and nothing is skipped or repeated: a chunk starts strictly after the last
row the previous one returned. (OFFSET appears below only inside one statement, to find where
a slice of a count ends; it never carries a position from one transaction to the next.)

A page is read one of two ways:

- a window of `WINDOW` consecutive rowids scanned in order, with the filter applied to each
  row: cheap when matches are dense (an unfiltered listing, a common status);
- the matching `seq`s read off the status indexes (covering: no row is fetched), the best
  `limit` taken and only those rows fetched: cheap when few jobs match.

Every page starts with a window; when it finds fewer than asked, a count of what is left
(stopped at `SPARSE`) tells whether the rest is few enough for the indexes. If not, the page
ends early and the next one scans the next window.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any, Final

from ..core.constants import JOB_STATUSES
from . import _columns as cols
from .port import JobDoc, Page, Tally, TallyCursor

WINDOW: Final = 4096  # rowids one page scans in order
SPARSE: Final = 10_000  # fewer matches than this left: take them off the status indexes
TALLY_BUDGET: Final = 50_000  # index entries one slice of a count examines (about)
TALLY_WINDOW: Final = 50_000  # rowids one count statement of a non-ready group spans
_GROUP_COST: Final = 50  # what finding and finishing one (status, type) group counts as

# The claim order of ready jobs: the order of `jobs_ready`, and the keyset of their counts.
_READY_KEY: Final = "priority, retry_until, after, seq"


@functools.cache
def marks(n: int) -> str:
    return ", ".join("?" * n)


Where = tuple[list[str], list[Any]]


def by_status_index(
    where: list[str], args: list[Any], statuses: Collection[str] | None
) -> list[Where]:
    """A status filter as (where, args) parts, each served by one index: ready jobs are only in
    `jobs_ready`, the others only in `jobs_status` (sqlite_004.sql). `statuses` None: every
    status (both parts). No part: nothing matches."""
    if statuses is None:
        return [([*where, "status = 'ready'"], args), ([*where, "status != 'ready'"], args)]
    wanted = list(dict.fromkeys(statuses))
    others = [status for status in wanted if status != "ready"]
    parts = []
    if len(others) < len(wanted):
        parts.append(([*where, "status = 'ready'"], args))
    if others:
        status_in = f"status IN ({marks(len(others))}) AND status != 'ready'"
        parts.append(([*where, status_in], [*args, *others]))
    return parts


def _filter(
    collection: str,
    ids: Sequence[str] | None,
    statuses: Collection[str] | None,
    types: Collection[str] | None,
) -> Where | None:
    """The conditions of a query as plain terms; None when it can match nothing."""
    where, args = ["collection = ?"], [collection]
    for column, values in (("id", ids), ("status", statuses), ("type", types)):
        if values is not None:
            wanted = list(dict.fromkeys(values))
            if not wanted:
                return None
            where.append(f"{column} IN ({marks(len(wanted))})")
            args.extend(wanted)
    return where, args


def _docs(rows: list[Any]) -> tuple[list[JobDoc], list[int]]:
    return [cols.row_to_doc(row[:-1]) for row in rows], [row[-1] for row in rows]


# -- pages -------------------------------------------------------------------------------------


def page(
    conn: sqlite3.Connection,
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
    beyond = "seq < ?" if newest_first else "seq > ?"
    if after is not None:
        where, args = [*where, beyond], [*args, after]
    select = f"SELECT {cols.SELECT_LIST}, seq FROM jobs"
    if ids is not None:  # a few hundred ids at most: straight off the id index
        sql = f"{select} WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        docs, seqs = _docs(conn.execute(sql, [*args, limit]).fetchall())
        return Page(docs, seqs, seqs[-1] if len(docs) == limit else None)
    start = _first_seq(conn, after, newest_first)
    if start is None:
        return Page([], [], None)
    # (low, high]: WINDOW rowids from the first one beyond the cursor, in the order asked.
    low, high = (start - WINDOW, start) if newest_first else (start - 1, start - 1 + WINDOW)
    sql = (  # NOT INDEXED: walk the rowids, however selective a status index looks
        f"{select} NOT INDEXED WHERE seq > ? AND seq <= ? AND {' AND '.join(where)} "
        f"ORDER BY seq {order} LIMIT ?"
    )
    docs, seqs = _docs(conn.execute(sql, [low, high, *args, limit]).fetchall())
    if len(docs) == limit:
        return Page(docs, seqs, seqs[-1])
    edge = low + 1 if newest_first else high  # the window's far end: `next` goes on from it
    rest = _few_left(conn, collection, statuses, types, edge, newest_first, limit - len(docs))
    if rest is None:
        return Page(docs, seqs, edge)
    more, exhausted = rest
    if more:
        sql = f"{select} WHERE seq IN ({marks(len(more))}) ORDER BY seq {order}"
        extra, extra_seqs = _docs(conn.execute(sql, more).fetchall())
        docs, seqs = docs + extra, seqs + extra_seqs
    return Page(docs, seqs, None if exhausted or not seqs else seqs[-1])


def _first_seq(conn: sqlite3.Connection, after: int | None, newest_first: bool) -> int | None:
    """The first rowid beyond the cursor (gaps left by removed jobs are jumped, not scanned)."""
    sql = "SELECT max(seq) FROM jobs" if newest_first else "SELECT min(seq) FROM jobs"
    if after is None:
        row = conn.execute(sql).fetchone()
    else:
        row = conn.execute(f"{sql} WHERE seq {'<' if newest_first else '>'} ?", [after]).fetchone()
    return None if row[0] is None else int(row[0])


def _few_left(
    conn: sqlite3.Connection,
    collection: str,
    statuses: Collection[str] | None,
    types: Collection[str] | None,
    edge: int,
    newest_first: bool,
    need: int,
) -> tuple[list[int], bool] | None:
    """The `seq`s of the next `need` matches beyond `edge` (and whether they are the last),
    read off the status indexes; None if `SPARSE` or more are left (scan on instead)."""
    where: list[str] = ["collection = ?"]
    args: list[Any] = [collection]
    if types is not None:
        wanted = list(dict.fromkeys(types))
        where.append(f"type IN ({marks(len(wanted))})")
        args.extend(wanted)
    where.append("seq < ?" if newest_first else "seq > ?")
    args.append(edge)
    parts = by_status_index(where, args, statuses)
    params = [arg for _, part_args in parts for arg in part_args]
    union = " UNION ALL ".join(f"SELECT seq FROM jobs WHERE {' AND '.join(w)}" for w, _ in parts)
    left = conn.execute(f"SELECT count(*) FROM ({union} LIMIT ?)", [*params, SPARSE]).fetchone()
    if left[0] >= SPARSE:
        return None
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"{union} ORDER BY seq {order} LIMIT ?", [*params, need]).fetchall()
    return [row[0] for row in rows], left[0] <= need


# -- counts ------------------------------------------------------------------------------------

# A tally's cursor: (part, status, type, key). Part 0 counts ready jobs (in `jobs_ready`), part
# 1 the others (in `jobs_status`). `key` None: the group (status, type) is done; (): it starts;
# else where it goes on: the claim-order key of the last ready job counted, or for the others
# the end of the last window counted and the group's last seq (see `_count_window`).
_START: Final[TallyCursor] = (0, None, None, None)


def tally(
    conn: sqlite3.Connection,
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
        rows = conn.execute(sql + "GROUP BY status, type ORDER BY 1, 2", args).fetchall()
        return Tally([(s, t, n) for s, t, n in rows], None)
    wanted = None if statuses is None else set(statuses)
    kinds = list(dict.fromkeys(types)) if types is not None else None
    part, status, job_type, key = after or _START
    budget = TALLY_BUDGET if at_most is None else max(1, min(TALLY_BUDGET, at_most))
    counts: list[tuple[str, str, int]] = []
    while budget > 0:
        if part == 0 and wanted is not None and "ready" not in wanted:
            part, status, job_type, key = 1, None, None, None
        if key is None:
            group = _next_group(conn, collection, part, status, job_type, wanted, kinds)
            if group is None:
                if part == 1:
                    return Tally(counts, None)
                part, status, job_type, key = 1, None, None, None
                continue
            (status, job_type), key = group, ()
        number, key = _count_group(conn, collection, part, status, job_type, key, budget)
        if number:
            counts.append((status, job_type, number))
        budget -= max(number, _GROUP_COST)
    return Tally(counts, (part, status, job_type, key))


_GROUP: Final = "collection = ? AND status = ? AND status != 'ready' AND type = ?"


def _count_window(
    conn: sqlite3.Connection, group: list[Any], key: tuple[Any, ...]
) -> tuple[int, tuple[Any, ...] | None]:
    """Count a (status, type) group of `jobs_status` over the next `TALLY_WINDOW` rowids from
    its first job after the cursor: a plain count of one index range, so at most that many
    entries. `key` is (), or (the last window's end, the group's last seq when counting
    began: jobs added to the group since are left out, as if counted before they came)."""
    if key:
        low, top = key
    else:
        low, top = 0, conn.execute(f"SELECT max(seq) FROM jobs WHERE {_GROUP}", group).fetchone()[0]
    first = conn.execute(f"SELECT min(seq) FROM jobs WHERE {_GROUP} AND seq > ?", [*group, low])
    start = first.fetchone()[0]
    if start is None or top is None or start > top:
        return 0, None
    high = start - 1 + TALLY_WINDOW
    sql = f"SELECT count(*) FROM jobs WHERE {_GROUP} AND seq > ? AND seq <= ?"
    (number,) = conn.execute(sql, [*group, start - 1, high]).fetchone()
    return number, ((high, top) if high < top else None)


def _next_group(
    conn: sqlite3.Connection,
    collection: str,
    part: int,
    status: str | None,
    job_type: str | None,
    statuses: set[str] | None,
    types: list[str] | None,
) -> tuple[str, str] | None:
    """The first (status, type) with jobs after (status, type) in the part's index order:
    an index seek or two, never a walk over a group's entries."""
    if part == 0:
        found = _first_type(conn, collection, "ready", job_type, types)
        return None if found is None else ("ready", found)
    if status is not None:
        found = _first_type(conn, collection, status, job_type, types)
        if found is not None:
            return status, found
    pool = JOB_STATUSES if statuses is None else statuses
    for candidate in sorted(s for s in pool if s != "ready" and (status is None or s > status)):
        found = _first_type(conn, collection, candidate, None, types)
        if found is not None:
            return candidate, found
    return None


def _first_type(
    conn: sqlite3.Connection,
    collection: str,
    status: str,
    after: str | None,
    types: list[str] | None,
) -> str | None:
    """The first job type of `status` (after `after`), from the status's own index."""
    where = "status = 'ready'" if status == "ready" else "status = ? AND status != 'ready'"
    args: list[Any] = [collection] if status == "ready" else [collection, status]
    if types is not None:
        where += f" AND type IN ({marks(len(types))})"
        args.extend(types)
    if after is not None:
        where += " AND type > ?"
        args.append(after)
    sql = f"SELECT type FROM jobs WHERE collection = ? AND {where} ORDER BY type LIMIT 1"
    row = conn.execute(sql, args).fetchone()
    return None if row is None else str(row[0])


def _count_group(
    conn: sqlite3.Connection,
    collection: str,
    part: int,
    status: str,
    job_type: str,
    key: tuple[Any, ...],
    budget: int,
) -> tuple[int, tuple[Any, ...] | None]:
    """Count up to `budget` entries of one group after `key`; the number, and the key of the
    last one when the budget ran out (None: the group is done)."""
    if part == 1:
        return _count_window(conn, [collection, status, job_type], key)
    where = "collection = ? AND type = ? AND status = 'ready'"
    args: list[Any] = [collection, job_type]
    if key:
        where += f" AND ({_READY_KEY}) > (?, ?, ?, ?)"
        args.extend(key)
    inner = f"SELECT {_READY_KEY} FROM jobs WHERE {where} ORDER BY {_READY_KEY}"
    (number,) = conn.execute(f"SELECT count(*) FROM ({inner} LIMIT ?)", [*args, budget]).fetchone()
    if number < budget:
        return number, None
    last = conn.execute(f"{inner} LIMIT 1 OFFSET ?", [*args, budget - 1]).fetchone()
    return number, tuple(last)
