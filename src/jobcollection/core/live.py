"""Live queries: turn "this job is now like this (or gone)" into added/changed/removed events.

Pure bookkeeping shared by local collections (fed from the change feed) and remote ones (fed
from a DDP subscription): feed it every job that may have changed, in order, and it reports
what changed for the jobs matching a selector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

JobDoc = dict[str, Any]
_FIELD_OF = {"ids": "_id", "statuses": "status", "types": "type"}


@dataclass(frozen=True, slots=True)
class JobChange:
    """One change seen by a live query. ``doc`` is the job now (None when removed);
    ``fields`` names the top-level fields that changed (empty for added/removed)."""

    kind: Literal["added", "changed", "removed"]
    id: str
    doc: JobDoc | None
    fields: tuple[str, ...] = ()


def matches(doc: JobDoc, query: dict[str, list[str]]) -> bool:
    """Whether ``doc`` satisfies a parsed selector (`{"statuses": [...], "types": [...]}`)."""
    return all(doc.get(_FIELD_OF.get(key, key)) in values for key, values in query.items())


@dataclass
class LiveQuery:
    """The jobs matching ``query`` as last reported, and the events that keep a view of them."""

    query: dict[str, list[str]]
    emit: Callable[[JobChange], None]
    docs: dict[str, JobDoc] = field(default_factory=dict)

    def update(self, job_id: str, doc: JobDoc | None) -> None:
        """The job is now ``doc`` (None: it no longer exists)."""
        before = self.docs.get(job_id)
        if doc is not None and matches(doc, self.query):
            self.docs[job_id] = doc
            if before is None:
                self.emit(JobChange("added", job_id, doc))
                return
            changed = tuple(k for k in doc.keys() | before.keys() if before.get(k) != doc.get(k))
            if changed:
                self.emit(JobChange("changed", job_id, doc, tuple(sorted(changed))))
        elif before is not None:
            del self.docs[job_id]
            self.emit(JobChange("removed", job_id, None))
