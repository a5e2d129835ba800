"""Live queries: turn "this job is now like this (or gone)" into added/changed/removed events.

Pure bookkeeping shared by local collections (fed from the change feed) and remote ones (fed
from a DDP subscription): feed it every job that may have changed, in order, and it reports
what changed for the jobs matching a selector.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JobDoc = dict[str, Any]
_ABSENT: Any = object()  # a field the document does not have


@dataclass(frozen=True, slots=True)
class JobChange:
    """One change seen by a live query. ``doc`` is the job now (None when removed);
    ``fields`` names the top-level fields that changed (empty for added/removed)."""

    kind: Literal["added", "changed", "removed"]
    id: str
    doc: JobDoc | None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed selector (see `core.selector.parse_selector`): each set that is not None must
    contain the job's value. Shared by live queries here and the server's publications."""

    ids: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    types: frozenset[str] | None = None

    @classmethod
    def of(cls, parsed: Mapping[str, Iterable[str]]) -> Query:
        """From `parse_selector`'s ``{"ids"|"statuses"|"types": [...]}``."""

        def values(name: str) -> frozenset[str] | None:
            found = parsed.get(name)
            return None if found is None else frozenset(found)

        return cls(values("ids"), values("statuses"), values("types"))

    def selector(self) -> dict[str, Any]:
        """The selector this query was parsed from (in a canonical form)."""
        selector: dict[str, Any] = {}
        for key, values in (("_id", self.ids), ("status", self.statuses), ("type", self.types)):
            if values is not None:
                selector[key] = {"$in": sorted(values)}
        return selector

    def matches(self, job_id: str, fields: Mapping[str, Any]) -> bool:
        """Whether the job ``job_id`` with these fields (a document or its published fields;
        only `status` and `type` are read) is selected."""
        return (
            (self.ids is None or job_id in self.ids)
            and (self.statuses is None or fields.get("status") in self.statuses)
            and (self.types is None or fields.get("type") in self.types)
        )


@dataclass
class LiveQuery:
    """The jobs matching ``query`` as last reported, and the events that keep a view of them.

    With ``fields``, a job is matched on its whole document but reported (and compared) with
    only those top-level fields: a change of another field reports nothing. ``same`` tells
    whether a field's value is unchanged (``==`` by default; a wire form may need stricter)."""

    query: Query
    emit: Callable[[JobChange], None]
    docs: dict[str, JobDoc] = field(default_factory=dict)
    fields: frozenset[str] | None = None
    same: Callable[[Any, Any], bool] = operator.eq

    def update(self, job_id: str, doc: JobDoc | None) -> None:
        """The job is now ``doc`` (None: it no longer exists)."""
        before, same = self.docs.get(job_id), self.same
        if doc is not None and self.query.matches(job_id, doc):
            if self.fields is not None:
                doc = project(doc, self.fields)
            if before is None:
                self.docs[job_id] = doc
                self.emit(JobChange("added", job_id, doc))
                return
            changed = tuple(
                k
                for k in doc.keys() | before.keys()
                if (old := before.get(k, _ABSENT)) is not (new := doc.get(k, _ABSENT))
                and (old is _ABSENT or new is _ABSENT or not same(old, new))
            )
            if changed:
                self.docs[job_id] = doc
                self.emit(JobChange("changed", job_id, doc, tuple(sorted(changed))))
        elif before is not None:
            del self.docs[job_id]
            self.emit(JobChange("removed", job_id, None))


def project(doc: Mapping[str, Any], fields: frozenset[str]) -> JobDoc:
    """Only these top-level fields of ``doc`` (the same value objects)."""
    return {name: doc[name] for name in fields if name in doc}
