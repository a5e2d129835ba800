"""The client's local copy of published documents: data messages applied, changes reported.

``collections`` maps a collection name to its documents by id. `apply` takes one `added`,
`changed` or `removed` and returns the `Change` it made (None when it changed nothing: a
change or removal of an unknown document). `reconcile` makes the cache equal to another (the
documents resent after a reconnect) and returns the difference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

ChangeKind = Literal["added", "changed", "removed"]
Collections = defaultdict[str, dict[str, dict[str, Any]]]


@dataclass(slots=True)
class Change:
    """One change of a cached document: ``fields`` holds the whole document for ``added``, the
    new values for ``changed`` and nothing for ``removed``; ``cleared`` names the fields a
    ``changed`` removed."""

    kind: ChangeKind
    collection: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    cleared: list[str] = field(default_factory=list)


class Cache:
    __slots__ = ("collections",)

    def __init__(self, collections: Collections | None = None) -> None:
        self.collections: Collections = defaultdict(dict) if collections is None else collections

    def apply(self, message: dict[str, Any]) -> Change | None:
        kind, collection, doc_id = message.get("msg"), message.get("collection"), message.get("id")
        if not isinstance(collection, str) or not isinstance(doc_id, str):
            return None
        docs = self.collections[collection]
        if kind == "added":
            fields = message.get("fields") or {}
            docs[doc_id] = dict(fields)
            return Change("added", collection, doc_id, fields, [])
        if kind == "changed":
            doc = docs.get(doc_id)
            if doc is None:
                return None
            fields = message.get("fields") or {}
            cleared = message.get("cleared") or []
            doc.update(fields)
            for name in cleared:
                doc.pop(name, None)
            return Change("changed", collection, doc_id, fields, list(cleared))
        if kind == "removed" and docs.pop(doc_id, None) is not None:
            return Change("removed", collection, doc_id, {}, [])
        return None

    def reconcile(self, fresh: Collections) -> list[Change]:
        """Make the cache equal to ``fresh`` (its documents are taken over); the difference."""
        changes: list[Change] = []
        for collection in set(self.collections) | set(fresh):
            old = self.collections[collection]
            new = fresh.get(collection, {})
            for doc_id in [d for d in old if d not in new]:
                del old[doc_id]
                changes.append(Change("removed", collection, doc_id, {}, []))
            for doc_id, doc in new.items():
                before = old.get(doc_id)
                old[doc_id] = doc
                if before is None:
                    changes.append(Change("added", collection, doc_id, dict(doc), []))
                    continue
                changed = {k: v for k, v in doc.items() if k not in before or before[k] != v}
                cleared = [k for k in before if k not in doc]
                if changed or cleared:
                    changes.append(Change("changed", collection, doc_id, changed, cleared))
        return changes
