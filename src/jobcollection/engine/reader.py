"""`JobReader`: the read side of one collection — find, page, count, stats, get.

Reads need neither the engine's scheduler nor its validation of the 16 operations, so they
live apart from `JobManager` (which reads through one of these): a short-lived program that
only reads, such as the CLI's `ls`, `show` and `stats`, opens a reader on the storage and
loads nothing else. Every read goes a chunk per short transaction (see `_reads`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..core.selector import parse_selector
from ..storage.port import JobDoc, Storage
from . import _reads


class JobReader:
    """Reads of collection `root` in `storage`."""

    def __init__(self, storage: Storage, root: str) -> None:
        self.storage = storage
        self.root = root

    def find(
        self,
        selector: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[JobDoc]:
        """Documents (without `log`) matching a small equality/`$in` selector, in insertion
        order (or newest first)."""
        query = parse_selector(selector or {})
        found = _reads.chunks(
            self.storage, self.root, query, limit=limit, newest_first=newest_first
        )
        return [doc for chunk in found for doc in chunk]

    def read_chunks(
        self, selector: dict[str, Any] | None = None, *, with_logs: bool = False
    ) -> Iterator[list[JobDoc]]:
        """The matching documents (with their `log` if asked) a chunk at a time, each chunk read
        in its own transaction: for readers that hand documents on as they come."""
        return _reads.chunks(
            self.storage, self.root, parse_selector(selector or {}), with_logs=with_logs
        )

    def find_page(
        self,
        selector: dict[str, Any] | None = None,
        *,
        after: int | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> tuple[list[JobDoc], int | None]:
        """One page of `find` in one short transaction: the documents and the keyset to pass
        as `after` for the next page (None: there is none). A page may hold fewer than `limit`
        documents and still have a next one (few jobs matched in the rows it looked at)."""
        query = parse_selector(selector or {})
        page = _reads.one_page(
            self.storage, self.root, query, after=after, limit=limit, newest_first=newest_first
        )
        return page.docs, page.next

    def count(self, selector: dict[str, Any] | None = None, at_most: int | None = None) -> int:
        """How many jobs match the selector; with `at_most`, counting stops there (the answer
        is then `at_most` or more), so the cost is bounded however many jobs match."""
        rows = _reads.tally(
            self.storage, self.root, parse_selector(selector or {}), at_most=at_most
        )
        return sum(n for _, _, n in rows)

    def stats(self) -> list[tuple[str, str, int]]:
        """(status, type, count) rows, sorted; counted a slice per short transaction."""
        return _reads.tally(self.storage, self.root, {})

    def get(
        self, ids: str | Sequence[str], *, get_log: bool = False, get_failures: bool = False
    ) -> JobDoc | list[JobDoc] | None:
        """`getJob`'s answer: one id gives its document or None, a list of ids the documents
        found (None if none), without `_private`, with `log`/`failures` only if asked."""
        single = isinstance(ids, str)
        listed = [ids] if isinstance(ids, str) else list(ids)
        return _reads.get_job(
            self.storage,
            self.root,
            listed,
            single=single,
            get_log=get_log,
            get_failures=get_failures,
        )
