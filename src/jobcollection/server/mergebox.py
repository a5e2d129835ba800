"""The merged view of one DDP connection (Meteor's "merge box") — pure.

Several subscriptions of one connection may publish the same document; the client holds one
document per (collection, id). The box remembers what each subscription publishes and what the
client was sent, and turns every publication event into the DDP data messages that bring the
client up to date:

- ``{"msg": "added", "collection", "id", "fields"}`` when a document enters the client's view;
- ``{"msg": "changed", "collection", "id", "fields"?, "cleared"?}`` at top-level granularity (a
  changed nested value is resent whole; fields no subscription publishes any more are listed
  in ``cleared``); never an empty change;
- ``{"msg": "removed", "collection", "id"}`` when the last subscription stops publishing it.

Where subscriptions disagree on a field, the client sees the value of the subscription that
published the document first (Meteor shows one of them too; which one is not specified).

Values are Python values, compared strictly (``True`` differs from ``1``, a dict from a list);
EJSON encoding is left to whoever sends the messages. The box keeps a reference to each
``fields`` mapping it is given and never mutates it: callers must not mutate it afterwards
either. Passing the *same* mapping (or the same value objects) again is the cheap way to say
"unchanged" — identity is checked before equality.

Events are lenient: ``added`` for a document the subscription already publishes acts as
``changed``, ``changed`` for one it does not publish acts as ``added``, and ``removed`` for one
it does not publish does nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Final

from ..ddp import messages as wire

Message = dict[str, Any]
DocKey = tuple[str, str]  # (collection, id)

_MISSING: Final[Any] = object()


def same(a: Any, b: Any) -> bool:
    """Strict deep equality of EJSON-able Python values: types must match (``1 != True``,
    ``1 != 1.0``), NaN equals NaN, dict key order does not matter."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return len(a) == len(b) and all(
            key in b and same(value, b[key]) for key, value in a.items()
        )
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(map(same, a, b))
    if kind is float:
        return bool(a == b or (a != a and b != b))
    return bool(a == b)


class _DocView:
    """One document of the connection: each subscription's fields and what the client has."""

    __slots__ = ("client", "subs")

    def __init__(self) -> None:
        self.subs: dict[Hashable, Mapping[str, Any]] = {}  # in the order they published it
        self.client: dict[str, Any] | None = None  # None: not sent to the client (yet)

    def value(self, key: str) -> Any:
        for fields in self.subs.values():
            value = fields.get(key, _MISSING)
            if value is not _MISSING:
                return value
        return _MISSING

    def merged(self) -> dict[str, Any]:
        if len(self.subs) == 1:
            return dict(next(iter(self.subs.values())))
        merged: dict[str, Any] = {}
        for fields in self.subs.values():
            for key, value in fields.items():
                merged.setdefault(key, value)
        return merged


class MergeBox:
    """The documents one connection's client holds, and who publishes them.

    Every method returns the messages to send, in order; on an empty list there is nothing to
    send. Between :meth:`hold` and :meth:`release` the methods return nothing and
    :meth:`release` returns the net difference instead (how a re-run of every subscription
    after login avoids removing and re-adding documents that stay).
    """

    def __init__(self) -> None:
        self._docs: dict[DocKey, _DocView] = {}
        self._by_sub: dict[Hashable, dict[DocKey, None]] = {}
        self._held: dict[DocKey, None] | None = None

    # -- queries ---------------------------------------------------------------------------

    def has(self, sub_id: Hashable, collection: str, doc_id: str) -> bool:
        """Whether subscription ``sub_id`` publishes this document."""
        docs = self._by_sub.get(sub_id)
        return docs is not None and (collection, doc_id) in docs

    def documents(self, sub_id: Hashable) -> list[DocKey]:
        """The (collection, id) of every document ``sub_id`` publishes."""
        return list(self._by_sub.get(sub_id, ()))

    def client_fields(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """A copy of the fields the client was sent for this document (None: it has none)."""
        view = self._docs.get((collection, doc_id))
        return None if view is None or view.client is None else dict(view.client)

    def __len__(self) -> int:
        """How many documents the client holds or is about to be sent."""
        return len(self._docs)

    # -- publication events ----------------------------------------------------------------

    def added(
        self, sub_id: Hashable, collection: str, doc_id: str, fields: Mapping[str, Any]
    ) -> list[Message]:
        """``sub_id`` publishes this document with these top-level ``fields`` (no ``_id``)."""
        return self._set(sub_id, (collection, doc_id), fields)

    def changed(
        self, sub_id: Hashable, collection: str, doc_id: str, fields: Mapping[str, Any]
    ) -> list[Message]:
        """``sub_id``'s full new top-level ``fields`` of this document; the box diffs them."""
        return self._set(sub_id, (collection, doc_id), fields)

    def removed(self, sub_id: Hashable, collection: str, doc_id: str) -> list[Message]:
        """``sub_id`` stops publishing this document."""
        key = (collection, doc_id)
        docs = self._by_sub.get(sub_id)
        if docs is None or key not in docs:
            return []
        del docs[key]
        if not docs:
            del self._by_sub[sub_id]
        return self._drop(sub_id, key)

    def drop_subscription(self, sub_id: Hashable) -> list[Message]:
        """``sub_id`` ends: removed for documents no other subscription publishes, changed
        where the remaining ones publish different fields."""
        messages: list[Message] = []
        for key in self._by_sub.pop(sub_id, ()):
            messages.extend(self._drop(sub_id, key))
        return messages

    def hold(self) -> None:
        """Collect the changes of the following calls instead of returning messages."""
        if self._held is not None:
            raise RuntimeError("MergeBox.hold() is already in effect")
        self._held = {}

    def release(self) -> list[Message]:
        """End :meth:`hold`: the messages that turn the client's old view into the new one."""
        held, self._held = self._held, None
        if held is None:
            raise RuntimeError("MergeBox.release() without hold()")
        messages: list[Message] = []
        for key in held:
            view = self._docs.get(key)
            if view is not None:
                message = self._sync(key, view, None)
                if message is not None:
                    messages.append(message)
        return messages

    # -- internals ---------------------------------------------------------------------------

    def _set(self, sub_id: Hashable, key: DocKey, fields: Mapping[str, Any]) -> list[Message]:
        view = self._docs.get(key)
        if view is None:
            view = self._docs[key] = _DocView()
        old = view.subs.get(sub_id)
        if old is fields:
            return []
        view.subs[sub_id] = fields
        self._by_sub.setdefault(sub_id, {})[key] = None
        if self._held is not None:
            self._held[key] = None
            return []
        if old is None:
            keys: Iterable[str] = fields
        else:
            keys = [k for k, v in fields.items() if not same(old.get(k, _MISSING), v)]
            keys.extend(k for k in old if k not in fields)
        message = self._sync(key, view, keys)
        return [] if message is None else [message]

    def _drop(self, sub_id: Hashable, key: DocKey) -> list[Message]:
        view = self._docs[key]
        old = view.subs.pop(sub_id)
        if self._held is not None:
            self._held[key] = None
            return []
        message = self._sync(key, view, old)
        return [] if message is None else [message]

    def _sync(self, key: DocKey, view: _DocView, keys: Iterable[str] | None) -> Message | None:
        """Bring the client's copy of one document in line; ``keys`` are the fields that may
        differ (None: any)."""
        collection, doc_id = key
        if not view.subs:
            del self._docs[key]
            if view.client is None:
                return None
            return wire.removed(collection, doc_id)
        client = view.client
        if client is None:
            view.client = view.merged()
            return wire.added(collection, doc_id, dict(view.client))
        if keys is None:
            every = dict.fromkeys(client)
            for sub_fields in view.subs.values():
                every.update(dict.fromkeys(sub_fields))
            keys = every
        changed: dict[str, Any] = {}
        cleared: list[str] = []
        for name in keys:
            value = view.value(name)
            if value is _MISSING:
                if name in client:
                    del client[name]
                    cleared.append(name)
            elif not same(client.get(name, _MISSING), value):
                client[name] = value
                changed[name] = value
        if not changed and not cleared:
            return None
        return wire.changed(collection, doc_id, changed, cleared)
