"""Copying a database to another (`jobcollection db copy`), whatever the two adapters are.

Everything goes through the storage port: each collection's jobs in insertion order (so claim
tie-breaks and `ls` order survive), with their logs, in chunks of one read and one write
transaction; then the users and their login tokens. The change feed and the worker registry
are not copied: the target starts its own feed, and workers register again when they connect.

The copy is checked as it goes: each chunk written is read back from the target, and a SHA-256
over every copied document (log included, canonical EJSON, in insertion order) must come out
the same from both sides; at the end, each collection of the target must hold the jobs it held
before plus the ones copied.

Meant for a queue at rest (stop the servers and workers first): a job that changes during the
copy may be copied as it was before the change, and the checksum then says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..core import ejson
from ..errors import ConflictError
from .port import JobDoc, Storage

CHUNK = 1000  # jobs per read and per write transaction

Progress = Callable[[str, int], None]  # (collection, jobs copied so far in it)


@dataclass
class CopyReport:
    """What a copy did: jobs per collection, users and tokens, and the documents' checksum
    (the same on both sides, or the copy raised)."""

    jobs: dict[str, int] = field(default_factory=dict)
    users: int = 0
    tokens: int = 0
    checksum: str = ""


class CopyMismatch(ConflictError):
    """The target does not hold what was copied (something changed either side meanwhile)."""


def target_contents(target: Storage) -> str | None:
    """What the target already holds, in words (None: it is empty)."""
    held = []
    for name in target.collections():
        count = count_jobs(target, name)
        held.append(f"{count} job{'s' if count != 1 else ''} in {name!r}")
    users = len(target.users.list_users())
    if users:
        held.append(f"{users} user{'s' if users != 1 else ''}")
    return ", ".join(held) or None


def copy_database(
    source: Storage, target: Storage, *, progress: Progress | None = None
) -> CopyReport:
    """Copy every collection, user and token of ``source`` into ``target``. A job or user
    whose id the target already has stops the copy before anything is written
    (`ConflictError`); the caller decides whether a non-empty target may be used at all
    (`target_contents`)."""
    report = CopyReport()
    names = source.collections()
    for name in names:
        _refuse_clashes(source, target, name)
    users = source.users.list_users()
    taken = {user.id for user in target.users.list_users()} & {user.id for user in users}
    if taken:
        raise ConflictError(f"the target already has users with these ids: {sorted(taken)[:5]}")
    before = {name: count_jobs(target, name) for name in names}
    source_digest, target_digest = hashlib.sha256(), hashlib.sha256()
    for name in names:
        copied = 0
        for docs in documents(source, name):
            _digest(source_digest, name, docs)  # before the insert, which may add to them
            with target.write(name) as tx:
                tx.insert(docs)
            _digest(target_digest, name, _read_back(target, name, [doc["_id"] for doc in docs]))
            copied += len(docs)
            if progress is not None:
                progress(name, copied)
        report.jobs[name] = copied
    for user in users:
        target.users.insert_user(user)
    tokens = source.users.tokens()
    for user_id, hashed, when in tokens:
        target.users.add_token(user_id, hashed, when)
    report.users, report.tokens = len(users), len(tokens)
    report.checksum = source_digest.hexdigest()
    if target_digest.hexdigest() != report.checksum:
        raise CopyMismatch("the copied documents differ from the source's (checksums differ)")
    for name, copied in report.jobs.items():
        held = count_jobs(target, name)
        if held != before[name] + copied:
            raise CopyMismatch(
                f"collection {name!r}: the target held {before[name]} jobs and {copied} were "
                f"copied, but it holds {held}"
            )
    return report


def count_jobs(storage: Storage, name: str) -> int:
    """How many jobs the collection holds."""
    total, after = 0, None
    with storage.read(name) as tx:
        while True:
            tally = tx.tally(after=after)
            total += sum(number for _, _, number in tally.counts)
            if tally.next is None:
                return total
            after = tally.next


def _read_back(storage: Storage, name: str, ids: list[str]) -> list[JobDoc]:
    with storage.read(name) as tx:
        docs = tx.get(ids)
        logs = tx.log_of(ids)
    for doc in docs:
        doc["log"] = logs.get(doc["_id"], [])
    return docs


def documents(storage: Storage, name: str) -> Iterator[list[JobDoc]]:
    """The collection's documents with their logs, in insertion order, CHUNK at a time (one
    read transaction each)."""
    after: int | None = None
    while True:
        with storage.read(name) as tx:
            page = tx.page(after=after, limit=CHUNK)
            if page.docs:
                logs = tx.log_of([doc["_id"] for doc in page.docs])
        if page.docs:
            for doc in page.docs:
                doc["log"] = logs.get(doc["_id"], [])
            yield page.docs
        if page.next is None:
            return
        after = page.next


def _ids(storage: Storage, name: str) -> Iterator[list[str]]:
    after: int | None = None
    while True:
        with storage.read(name) as tx:
            page = tx.page(after=after, limit=CHUNK)
        if page.docs:
            yield [doc["_id"] for doc in page.docs]
        if page.next is None:
            return
        after = page.next


def _refuse_clashes(source: Storage, target: Storage, name: str) -> None:
    for ids in _ids(source, name):
        with target.read(name) as tx:
            found = tx.get(ids)
        if found:
            shown = ", ".join(doc["_id"] for doc in found[:5])
            raise ConflictError(
                f"collection {name!r}: the target already has jobs with these ids: {shown}"
            )


def _digest(digest: hashlib._Hash, name: str, docs: Sequence[JobDoc]) -> None:
    for doc in docs:
        digest.update(name.encode())
        canonical = json.dumps(ejson.to_ejson(doc), sort_keys=True, separators=(",", ":"))
        digest.update(canonical.encode())
        digest.update(b"\n")
