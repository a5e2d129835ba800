"""The change feed's rows, as both SQL adapters write and read them.

A write records one row per job changed, except a batch insert: its jobs of one type and status
share a row with op `inserts` and their ids comma-separated (schema 4). Reading expands such a
row back into one `Change` per job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from .port import Change, ChangeOp

RowOp = ChangeOp | Literal["inserts"]
PendingRow = tuple[
    str, str, RowOp, str, str | None, str
]  # collection, id(s), op, type, status, fields
FeedRow = tuple[int, str, str, RowOp, str, str | None, str]  # a stored row: its seq first


def inserted_rows(collection: str, jobs: Sequence[tuple[str, str, str]]) -> list[PendingRow]:
    """Feed rows for inserted (type, status, id)s: one per type and status, op `inserts` with
    the ids comma-separated; a lone job, or ids that contain a comma (only an injected id
    factory makes those), get the usual one-job rows."""
    by_kind: dict[tuple[str, str], list[str]] = {}
    for job_type, status, job_id in jobs:
        by_kind.setdefault((job_type, status), []).append(job_id)
    rows: list[PendingRow] = []
    for (job_type, status), ids in by_kind.items():
        joined = ",".join(ids)
        if len(ids) > 1 and joined.count(",") == len(ids) - 1:
            rows.append((collection, joined, "inserts", job_type, status, "*"))
        else:
            rows += [(collection, job_id, "insert", job_type, status, "*") for job_id in ids]
    return rows


def expand(rows: Iterable[FeedRow]) -> list[Change]:
    """Feed rows as changes: one per job (an `inserts` row names several, comma-separated)."""
    changes: list[Change] = []
    for seq, collection, job_id, op, job_type, status, fields in rows:
        names = tuple(fields.split(",")) if fields else ()
        if op == "inserts":
            changes += [
                Change(seq, collection, one, "insert", job_type, status, names)
                for one in job_id.split(",")
            ]
        else:
            changes.append(Change(seq, collection, job_id, op, job_type, status, names))
    return changes
