"""Copying a queue that is still in use (`jobcollection db copy --live`).

1. Note where the source's change feed stands, then copy everything as `transfer` does (a
   snapshot, chunk by chunk, while servers and workers go on using the source).
2. Follow the source's change feed from the noted position: each changed job is read again
   from the source and replaces the target's copy (or is removed from the target when it is
   gone from the source). A job may be copied more than once; the last copy is the one that
   counts, since it is read after the change that announced it.
3. The operator stops the source's writers (servers and workers): the short write pause of
   the switch. Once the feed has been quiet for `quiet_s`, a last pass brings users and login
   tokens up to date, and every collection of both sides is compared (count, and a digest of
   every document that does not depend on their order); then the servers start on the target.

A job replaced during the follow phase sits last in the target's insertion order (claim order
still follows priority, `retryUntil` and `after` first). If the source's feed dropped changes
before they were followed (the feed keeps a bounded number), the comparison finds the
difference and the copy fails with `CopyMismatch`: run it again with the writers stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..core import ejson
from ..core.constants import JOB_STATUSES
from . import transfer
from .port import Change, Storage

FOLLOW_LIMIT = 1000  # feed entries one step of the follow phase takes
IDLE_POLL_S = 0.05  # how often a quiet feed is asked again

Following = Callable[[int, float], None]  # (changes applied so far, seconds since the last one)


@dataclass
class LiveCopyReport:
    """The snapshot's report, what following the feed applied, and the final comparison."""

    snapshot: transfer.CopyReport
    changes: int = 0  # feed entries applied after the snapshot
    jobs: dict[str, int] = field(default_factory=dict)  # per collection, at the end
    digest: str = ""  # of every document of both sides (the same, or the copy raised)


def copy_live(
    source: Storage,
    target: Storage,
    *,
    quiet_s: float = 2.0,
    progress: transfer.Progress | None = None,
    following: Following | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LiveCopyReport:
    """Copy ``source`` into ``target`` while it is in use, follow its changes until none came
    for ``quiet_s`` seconds (the writers stopped), then check that both sides hold the same."""
    mark = source.last_seq()
    report = LiveCopyReport(transfer.copy_database(source, target, progress=progress))
    last_change = clock()
    while True:
        changes = source.changes_since(mark, FOLLOW_LIMIT)
        if changes:
            apply_changes(source, target, changes)
            report.changes += len(changes)
            mark = changes[-1].seq
            last_change = clock()
        elif clock() - last_change >= quiet_s:
            break
        if following is not None:
            following(report.changes, clock() - last_change)
        if len(changes) < FOLLOW_LIMIT:
            sleep(IDLE_POLL_S)
    sync_accounts(source, target)
    report.jobs, report.digest = compare(source, target)
    return report


def apply_changes(source: Storage, target: Storage, changes: Sequence[Change]) -> None:
    """Make the target's copy of each changed job what the source holds now."""
    by_collection: dict[str, dict[str, None]] = {}
    for change in changes:
        by_collection.setdefault(change.collection, {})[change.job_id] = None
    for name, wanted in by_collection.items():
        ids = list(wanted)
        with source.read(name) as tx:
            docs = tx.get(ids)
            logs = tx.log_of([doc["_id"] for doc in docs])
        for doc in docs:
            doc["log"] = logs.get(doc["_id"], [])
        with target.write(name) as tx:
            tx.remove(ids, JOB_STATUSES)
            if docs:
                tx.insert(docs)


def sync_accounts(source: Storage, target: Storage) -> None:
    """Users and login tokens of the target made the source's (logins went on meanwhile)."""
    theirs = {user.id: user for user in source.users.list_users()}
    ours = {user.id: user for user in target.users.list_users()}
    for user_id, user in ours.items():
        if theirs.get(user_id) != user:  # gone, or changed (a new password, an address)
            target.users.remove_user(user_id)
    for user_id, user in theirs.items():
        if ours.get(user_id) != user:
            target.users.insert_user(user)
    wanted = {(user_id, hashed): when for user_id, hashed, when in source.users.tokens()}
    held = {(user_id, hashed) for user_id, hashed, _ in target.users.tokens()}
    for _, hashed in held - wanted.keys():
        target.users.delete_token(hashed)
    for (user_id, hashed), when in wanted.items():
        if (user_id, hashed) not in held:
            target.users.add_token(user_id, hashed, when)


def compare(source: Storage, target: Storage) -> tuple[dict[str, int], str]:
    """Each collection's job count and an order-independent digest of its documents, which
    must be the same on both sides (else `CopyMismatch`); the counts and the overall digest."""
    names = sorted(set(source.collections()) | set(target.collections()))
    counts: dict[str, int] = {}
    overall = hashlib.sha256()
    for name in names:
        theirs, ours = _summary(source, name), _summary(target, name)
        if theirs != ours:
            raise transfer.CopyMismatch(
                f"collection {name!r}: the source holds {theirs[0]} jobs and the target "
                f"{ours[0]}" + (", with different documents" if theirs[0] == ours[0] else "")
            )
        counts[name] = theirs[0]
        overall.update(f"{name}\n{theirs[0]}\n{theirs[1]:064x}\n".encode())
    return counts, overall.hexdigest()


def _summary(storage: Storage, name: str) -> tuple[int, int]:
    """(jobs, the sum of their documents' SHA-256 mod 2**256): the same for the same set of
    documents, in whatever order they were inserted."""
    count, total = 0, 0
    for docs in transfer.documents(storage, name):
        for doc in docs:
            canonical = json.dumps(ejson.to_ejson(doc), sort_keys=True, separators=(",", ":"))
            total += int.from_bytes(hashlib.sha256(canonical.encode()).digest(), "big")
            count += 1
    return count, total % (1 << 256)
