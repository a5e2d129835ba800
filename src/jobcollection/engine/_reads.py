"""Reads of a whole collection, chunk by chunk: each chunk is its own short read transaction.

A read that held one snapshot while it went through a large collection would keep the WAL
from being checkpointed for as long as it took (and writers' WAL growing meanwhile). Here every
chunk is read in its own transaction and the next one goes on from the keyset the storage
returned, so a job that exists and matches throughout the read is returned exactly once; a
job written between chunks is returned as one of the chunks saw it (or not at all if it
stopped matching, or was inserted behind the chunks already read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

from ..storage.port import JobDoc, Page, Storage, Transaction, iter_chunks

CHUNK: Final = 500  # documents per transaction (and ids per statement)

Query = Mapping[str, Sequence[str]]  # `parse_selector`'s ids / statuses / types
T = TypeVar("T")


def chunks(
    storage: Storage,
    root: str,
    query: Query,
    *,
    limit: int | None = None,
    newest_first: bool = False,
    with_logs: bool = False,
    chunk: int | None = None,
) -> Iterator[list[JobDoc]]:
    """The jobs matching `query`, in insertion order (or newest first), up to `limit`, as
    lists of at most `chunk` documents; `with_logs` adds each job's `log`, read in the same
    transaction as the job."""
    size = chunk or CHUNK

    def take(tx: Transaction, page: Page) -> list[tuple[int, JobDoc]]:
        docs = _logged(tx, page.docs) if with_logs else page.docs
        return list(zip(page.seqs, docs, strict=True))

    found = visit(storage, root, query, take, limit=limit, newest_first=newest_first, chunk=size)
    if query.get("ids") is None:
        yield from ([doc for _, doc in pairs] for pairs in found if pairs)
        return
    # Named by id: each slice of ids was read in its own transaction; now put them in order
    # (the caller handed over the ids, so holding their documents is its own affair).
    every = sorted(
        (pair for pairs in found for pair in pairs), key=lambda p: p[0], reverse=newest_first
    )
    ordered = [doc for _, doc in (every if limit is None else every[:limit])]
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def visit(
    storage: Storage,
    root: str,
    query: Query,
    take: Callable[[Transaction, Page], T],
    *,
    limit: int | None = None,
    newest_first: bool = False,
    chunk: int | None = None,
) -> Iterator[T]:
    """`take(tx, page)` for each chunk of the matching jobs, inside that chunk's own read
    transaction; yields what it returns once the transaction has ended. A query by ids goes a
    slice of ids at a time (`limit` and the order are then left to the caller)."""
    statuses, types = query.get("statuses"), query.get("types")
    ids = query.get("ids")
    chunk = chunk or CHUNK
    if ids is not None:
        for part in iter_chunks(list(dict.fromkeys(ids)), chunk):
            with storage.read(root) as tx:
                page = tx.page(ids=part, statuses=statuses, types=types, limit=len(part))
                taken = take(tx, page)
            yield taken
        return
    after: int | None = None
    left = limit
    while left is None or left > 0:
        want = chunk if left is None else min(chunk, left)
        with storage.read(root) as tx:
            page = tx.page(
                statuses=statuses, types=types, after=after, limit=want, newest_first=newest_first
            )
            taken = take(tx, page)
        yield taken
        if left is not None:
            left -= len(page.docs)
        if page.next is None:
            return
        after = page.next


def one_page(
    storage: Storage,
    root: str,
    query: Query,
    *,
    after: int | None,
    limit: int,
    newest_first: bool = False,
) -> Page:
    """One page of the matching jobs after the keyset `after`: for a reader that comes back for
    the next one later (a remote client), so each call is its own short transaction (a query
    by ids: one per slice of ids, as `visit`)."""
    statuses, types, ids = query.get("statuses"), query.get("types"), query.get("ids")
    if ids is None:
        with storage.read(root) as tx:
            return tx.page(
                statuses=statuses,
                types=types,
                after=after,
                limit=limit,
                newest_first=newest_first,
            )
    found: list[tuple[int, JobDoc]] = []
    for part in iter_chunks(list(dict.fromkeys(ids)), CHUNK):
        with storage.read(root) as tx:
            page = tx.page(
                ids=part,
                statuses=statuses,
                types=types,
                after=after,
                limit=len(part),
                newest_first=newest_first,
            )
        found.extend(zip(page.seqs, page.docs, strict=True))
    found.sort(key=lambda pair: pair[0], reverse=newest_first)
    taken = found[:limit]
    more = len(found) > limit
    return Page(
        [doc for _, doc in taken], [seq for seq, _ in taken], taken[-1][0] if more else None
    )


def _logged(tx: Transaction, docs: list[JobDoc]) -> list[JobDoc]:
    if docs:
        logs = tx.log_of([doc["_id"] for doc in docs])
        for doc in docs:
            doc["log"] = logs.get(doc["_id"], [])
    return docs


def get_job(
    storage: Storage,
    root: str,
    ids: Sequence[str],
    *,
    single: bool,
    get_log: bool,
    get_failures: bool,
) -> JobDoc | list[JobDoc] | None:
    """`getJob`: the documents (with their logs if asked), read a slice of ids at a time."""
    if not ids:
        return None
    docs = [
        doc for found in chunks(storage, root, {"ids": ids}, with_logs=get_log) for doc in found
    ]
    for doc in docs:
        doc.pop("_private", None)
        if not get_failures:
            doc.pop("failures", None)
    if single:
        return docs[0] if docs else None
    return docs or None


def tally(
    storage: Storage, root: str, query: Query, *, at_most: int | None = None
) -> list[tuple[str, str, int]]:
    """(status, type, number) of the matching jobs, sorted, counted a slice per transaction;
    with `at_most`, counting stops once that many were found (the numbers are then a part)."""
    totals: dict[tuple[str, str], int] = {}
    ids = query.get("ids")
    slices: Iterator[Any] = (
        iter_chunks(list(dict.fromkeys(ids)), CHUNK) if ids is not None else iter([None])
    )  # (a few hundred ids per slice, like `visit`)
    for part in slices:
        after = None
        while True:
            with storage.read(root) as tx:
                counted = tx.tally(
                    ids=part,
                    statuses=query.get("statuses"),
                    types=query.get("types"),
                    after=after,
                    at_most=None if at_most is None else at_most - sum(totals.values()),
                )
            for status, job_type, number in counted.counts:
                totals[(status, job_type)] = totals.get((status, job_type), 0) + number
            if at_most is not None and sum(totals.values()) >= at_most:
                return _sorted(totals)
            if counted.next is None:
                break
            after = counted.next
    return _sorted(totals)


def _sorted(totals: dict[tuple[str, str], int]) -> list[tuple[str, str, int]]:
    return [(status, job_type, n) for (status, job_type), n in sorted(totals.items())]
