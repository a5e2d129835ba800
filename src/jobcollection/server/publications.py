"""Publications: live queries on job collections, merged per DDP connection.

Each served collection (a `JobManager`) has the built-in publication ``<root>.jobs`` with
params ``[selector?]``: the small equality/``$in`` selector on ``_id``, ``status`` and ``type``
that `parse_selector` accepts. Subscribing needs an allow rule under ``admin`` or ``manager``
(rule functions see the method name ``<root>.jobs`` and the params). Server code adds more with
:meth:`PublicationRegistry.publish`: ``fn(user_id, *params)`` returns a selector on the
collection's jobs, or None to publish nothing.

Documents go out in DDP collection ``<root>.jobs``: the whole job as ``getJob`` with
``getLog`` and ``getFailures`` returns it (``_private`` never, the collection's ``scrub`` hook
applied), times as EJSON dates.

Liveness. One storage listener per database receives every change of every process (local
writes synchronously inside the write, other processes' through the storage's watcher thread).
It only records the changed ids and wakes the event loop with ``call_soon_threadsafe``; on the
loop the ids gathered so far are re-read ONCE per batch and collection, whatever the number of
subscriptions, and every subscription of that collection is matched against the fresh document
and feeds its connection's `MergeBox`. Re-reading (rather than trusting the change entry) makes
the feed level-triggered: a change seen twice, late, or by a reader that already saw its effect
sends nothing twice. Unchanged field values are replaced by the objects sent before, so a
subscriber's merge box diff is mostly identity checks.

Threading: every method of the registry and of a `ConnectionView` runs on the event loop
thread; storage reads run inline there (a read takes microseconds, like the job methods the
dispatcher runs inline).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ..api._portal import running_on
from ..core import ejson
from ..core.live import Query
from ..core.permissions import Caller
from ..core.selector import parse_selector
from ..core.wire import times_to_wire
from ..engine.manager import JobManager
from ..errors import JobCollectionError
from ..storage.port import Change, JobDoc, Storage
from .doorbell import BellSub, ReadyBell, ReadyNews
from .mergebox import MergeBox, Message, same
from .meteor_error import MeteorError, as_meteor_error, not_subscribable

log = logging.getLogger(__name__)

PUBLISH_GROUPS: Final = ("admin", "manager")
RETRY_AFTER_S: Final = 0.05  # a failed re-read (database busy) is tried again this much later
Selector = dict[str, Any]
PublishFunction = Callable[..., Selector | None]  # fn(user_id, *params)
Send = Callable[[Message], None]


# -- selectors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matcher(Query):
    """A subscription's parsed selector, and the fields it publishes."""

    fields: frozenset[str] | None = None  # publish only these fields (None: all)

    @classmethod
    def parse(cls, selector: Selector | None) -> Matcher:
        """Raises `ValidationError` for what `parse_selector` refuses."""
        query = Query.of(parse_selector(selector or {}))
        return cls(query.ids, query.statuses, query.types)

    def selector(self) -> Selector:
        """The selector this matcher was parsed from (in a canonical form)."""
        selector: Selector = {}
        for key, values in (("_id", self.ids), ("status", self.statuses), ("type", self.types)):
            if values is not None:
                selector[key] = {"$in": sorted(values)}
        return selector

    def project(self, fields: Fields) -> Fields:
        """The fields a subscriber gets (the same value objects, so diffs stay cheap)."""
        if self.fields is None:
            return fields
        return Fields((name, fields[name]) for name in self.fields if name in fields)


# -- published documents -----------------------------------------------------------------------


class Fields(dict[str, Any]):
    """A published document's fields (no ``_id``); weak-referenceable so the per-collection
    cache of what was last sent lives exactly as long as some merge box holds it."""

    __slots__ = ("__weakref__",)


class _Source:
    """One served collection: its reads, its live subscriptions, the last fields sent."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.bell = ReadyBell(manager)  # `<root>.readyTypes`
        self.root = manager.root
        self.collection = f"{manager.root}.jobs"  # the DDP collection name
        self.subs: dict[_Sub, None] = {}
        self._sent: weakref.WeakValueDictionary[str, Fields] = weakref.WeakValueDictionary()

    def read_ids(self, ids: Sequence[str]) -> dict[str, Fields | None]:
        """The current fields of each id (None: the job is gone)."""
        fresh: dict[str, Fields | None] = dict.fromkeys(ids)
        for docs in self.manager.read_chunks({"_id": {"$in": list(fresh)}}, with_logs=True):
            for doc in docs:
                fresh[doc["_id"]] = self._publishable(doc)
        return fresh

    def read_matching(self, matcher: Matcher) -> list[tuple[str, Fields]]:
        """Every job the matcher selects, read a chunk per short transaction."""
        return [
            (doc["_id"], self._publishable(doc))
            for docs in self.manager.read_chunks(matcher.selector(), with_logs=True)
            for doc in docs
        ]

    def _publishable(self, doc: JobDoc) -> Fields:
        doc.pop("_private", None)
        if self.manager.scrub is not None:
            doc = self.manager.scrub(doc)
        fields = Fields(doc)
        doc_id = fields.pop("_id")
        fields.pop("_private", None)  # a scrub hook may have put it back
        times_to_wire(fields)
        before = self._sent.get(doc_id)
        if before is None:
            self._sent[doc_id] = fields
            return fields
        # Share the value objects that did not change, so merge boxes diff by identity.
        unchanged = len(before) == len(fields)
        for name, value in fields.items():
            old = before.get(name, _ABSENT)
            if old is value or (old is not _ABSENT and same(old, value)):
                fields[name] = old
            else:
                unchanged = False
        if unchanged:
            return before
        self._sent[doc_id] = fields
        return fields


_ABSENT: Final[Any] = object()


# -- publications ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Publication:
    name: str
    source: _Source
    function: PublishFunction | None  # None: the built-in `<root>.jobs`

    def matcher(self, caller: Caller, params: list[Any]) -> Matcher | None:
        """What ``caller`` gets for ``params`` (None: nothing); raises `MeteorError`."""
        if self.function is None:
            return self._builtin(caller, params)
        try:
            selector = self.function(caller.user_id, *params)
        except Exception as error:
            raise as_meteor_error(error) from error
        if selector is None:
            return None
        try:
            return Matcher.parse(selector)
        except JobCollectionError as error:
            log.error("publication %r returned a bad selector %r: %s", self.name, selector, error)
            raise MeteorError(500, "Internal server error") from error

    def _builtin(self, caller: Caller, params: list[Any]) -> Matcher:
        permissions = self.source.manager.permissions
        if not permissions.permits_under(PUBLISH_GROUPS, caller, self.name, params):
            raise not_subscribable(self.name, caller, PUBLISH_GROUPS)
        if len(params) > 2:
            usage = f"{self.name} takes [selector?, options?], got {params!r}"
            raise MeteorError(400, "Match failed", usage)
        selector = params[0] if params else None
        if selector is not None and not isinstance(selector, dict):
            got = ejson.json_type(selector)
            raise MeteorError(400, "Match failed", f"selector must be an object, got {got}")
        try:
            matcher = Matcher.parse(selector)
        except JobCollectionError as error:
            raise MeteorError(400, "Match failed", str(error)) from error
        if len(params) == 2:
            return replace(matcher, fields=_projection(params[1]))
        return matcher


def _projection(options: object) -> frozenset[str]:
    """Options `{"fields": [name, ...]}`: publish only those top-level fields (e.g. a worker
    that only needs to know that jobs are ready asks for `["type", "status"]`)."""
    if not isinstance(options, dict) or set(options) != {"fields"}:
        raise MeteorError(
            400, "Match failed", f"options must be {{fields: [...]}}, got {options!r}"
        )
    names = options["fields"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise MeteorError(400, "Match failed", "options.fields must be a list of field names")
    return frozenset(names)


@dataclass(eq=False, slots=True)
class _Sub:
    """One live subscription of one connection (hashed by identity)."""

    id: str
    view: ConnectionView
    publication: _Publication
    params: list[Any]
    matcher: Matcher | None = None


class PublicationRegistry:
    """The publications of the served collections and the live queries behind them."""

    def __init__(self, managers: Iterable[JobManager], loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._sources: dict[str, _Source] = {}
        self.bells: dict[str, ReadyBell] = {}  # `<root>.readyTypes`, by publication name
        self._publications: dict[str, _Publication] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        storages: list[Storage] = []
        for manager in managers:
            if manager.root in self._sources:
                raise ValueError(f"collection {manager.root!r} is served twice")
            source = self._sources[manager.root] = _Source(manager)
            self._publications[source.collection] = _Publication(source.collection, source, None)
            self.bells[source.bell.name] = source.bell
            if not any(manager.storage is known for known in storages):
                storages.append(manager.storage)
        # Written by storage threads, taken by the loop: ids to re-read, per collection.
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, None]] = {}
        self._bell_news: dict[str, dict[str, ReadyNews]] = {}  # root -> type -> news
        self._wakeup_scheduled = False
        self._closed = False
        for storage in storages:
            self._unsubscribe.append(storage.subscribe(self._on_changes))

    # -- server code -------------------------------------------------------------------------

    def publish(self, name: str, function: PublishFunction, collection: str | None = None) -> None:
        """Publish ``name``: ``function(user_id, *params)`` returns a selector on the jobs of
        ``collection`` (a root name; may be left out when one collection is served), or None
        to publish nothing; a `MeteorError` it raises is what the client is told."""
        if not isinstance(name, str) or not name:
            raise ValueError("a publication name must be a non-empty string")
        if name in self._publications:
            raise ValueError(f"publication {name!r} exists already")
        if not callable(function):
            raise TypeError(f"publication {name!r}: expected a function, got {function!r}")
        if collection is None:
            if len(self._sources) != 1:
                raise ValueError(f"publication {name!r}: say which collection it publishes")
            source = next(iter(self._sources.values()))
        elif collection in self._sources:
            source = self._sources[collection]
        else:
            raise ValueError(f"publication {name!r}: no collection {collection!r} is served")
        self._publications[name] = _Publication(name, source, function)

    def connection(self, send: Send) -> ConnectionView:
        """A new connection's merged view; its data messages go to ``send``."""
        return ConnectionView(self, send)

    def hush(self) -> None:
        """Ring no doorbell any more: the server is stopping and hands out no work."""
        for bell in self.bells.values():
            bell.quiet = True

    def close(self) -> None:
        """Stop listening to the storages (the connections' views stop receiving changes)."""
        self._closed = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    # -- live queries ------------------------------------------------------------------------

    def _on_changes(self, changes: Sequence[Change]) -> None:
        """The storage listener (any thread, possibly inside a write): note ids, wake the loop."""
        sources = self._sources
        with self._lock:
            for change in changes:
                source = sources.get(change.collection)
                if source is not None and source.subs:
                    self._pending.setdefault(change.collection, {})[change.job_id] = None
                if source is not None and source.bell.subs:  # someone follows the doorbell
                    news = self._bell_news.setdefault(change.collection, {})
                    seen = news.get(change.type)
                    if seen is None:
                        seen = news[change.type] = ReadyNews()
                    seen.note(change.status)
            pending = self._pending or self._bell_news
            if not pending or self._wakeup_scheduled or self._closed:
                return
            self._wakeup_scheduled = True
        try:
            if running_on(self.loop):  # a job method run inline on the loop
                self.loop.call_soon(self.flush)  # no wake-up write needed
            else:
                self.loop.call_soon_threadsafe(self.flush)
        except RuntimeError:  # the loop is closed: the server is going away
            pass

    def flush(self) -> None:
        """Re-read every job changed so far and update every subscriber (loop thread)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            bell_news, self._bell_news = self._bell_news, {}
            self._wakeup_scheduled = False
        for root, news in bell_news.items():
            try:
                self.bells[f"{root}.readyTypes"].recheck(news)
            except Exception:
                log.exception("%s: rechecking ready types failed", root)
        for root, ids in pending.items():
            source = self._sources[root]
            if not source.subs:
                continue
            try:
                fresh = source.read_ids(list(ids))
            except Exception:
                log.exception("%s: re-reading %d changed jobs failed; retrying", root, len(ids))
                self._retry(root, ids)
                continue
            for sub in list(source.subs):
                if sub in source.subs:  # a send callback may have closed its connection
                    sub.view._apply(sub, fresh)

    def _retry(self, root: str, ids: dict[str, None]) -> None:
        with self._lock:
            self._pending.setdefault(root, {}).update(ids)
        if not self._closed:
            self.loop.call_later(RETRY_AFTER_S, self.flush)


@dataclass(eq=False)
class ConnectionView:
    """One DDP connection's subscriptions and merged view (created by
    `PublicationRegistry.connection`). Every method runs on the event loop thread."""

    registry: PublicationRegistry
    send: Send
    box: MergeBox = field(default_factory=MergeBox)
    _subs: dict[str, _Sub] = field(default_factory=dict)
    _bells: dict[str, tuple[ReadyBell, BellSub]] = field(default_factory=dict)
    closed: bool = False

    async def subscribe(
        self, sub_id: str, name: str, params: Sequence[Any], caller: Caller
    ) -> None:
        """Start subscription ``sub_id`` and send its initial documents as `added`; the
        session then sends `ready`. Raises `MeteorError` (for `nosub`) when the publication is
        unknown (404), refuses ``caller`` (403) or the params are bad (400)."""
        bell = self.registry.bells.get(name)
        if bell is not None:
            self._ring(sub_id, bell, bell.check(caller, list(params)))
            return
        publication = self.registry._publications.get(name)
        if publication is None:
            raise MeteorError(404, f"Subscription '{name}' not found")
        if self.closed:
            return
        sub = _Sub(sub_id, self, publication, list(params))
        sub.matcher = publication.matcher(caller, sub.params)
        try:
            docs = [] if sub.matcher is None else publication.source.read_matching(sub.matcher)
        except Exception as error:
            raise as_meteor_error(error) from error
        self._subs[sub_id] = sub
        publication.source.subs[sub] = None
        collection = publication.source.collection
        for doc_id, fields in docs:
            projected = sub.matcher.project(fields) if sub.matcher is not None else fields
            self._send_all(self.box.added(sub_id, collection, doc_id, projected))

    def _ring(self, sub_id: str, bell: ReadyBell, types: frozenset[str]) -> None:
        if self.closed:
            return
        sub = BellSub(sub_id, self.box, self._send_all, types)
        self._bells[sub_id] = (bell, sub)
        bell.subscribe(sub)

    def unsubscribe(self, sub_id: str) -> None:
        """End ``sub_id``: sends `removed` for documents no other subscription publishes (and
        `changed` where they differ); the session sends `nosub`. Unknown ids are ignored."""
        if sub_id in self._bells:
            bell, bell_sub = self._bells.pop(sub_id)
            bell.unsubscribe(bell_sub)
            self._send_all(self.box.drop_subscription(sub_id))
            return
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return
        sub.publication.source.subs.pop(sub, None)
        self._send_all(self.box.drop_subscription(sub_id))

    async def rerun(self, caller: Caller) -> dict[str, MeteorError]:
        """The connection's user changed: re-run every subscription for ``caller`` and send
        only the difference. Returns the subscriptions that now fail, already ended here (their
        documents removed): the session sends `nosub` with each error."""
        failed: dict[str, MeteorError] = {}
        for sub_id, (bell, bell_sub) in list(self._bells.items()):
            try:
                bell.check(caller, [sorted(bell_sub.types)])
            except MeteorError as error:
                failed[sub_id] = error
                self.unsubscribe(sub_id)
        self.box.hold()
        try:
            for sub_id, sub in list(self._subs.items()):
                try:
                    matcher = sub.publication.matcher(caller, sub.params)
                except MeteorError as error:
                    failed[sub_id] = error
                    del self._subs[sub_id]
                    sub.publication.source.subs.pop(sub, None)
                    self.box.drop_subscription(sub_id)
                    continue
                sub.matcher = matcher
                source = sub.publication.source
                docs = [] if matcher is None else source.read_matching(matcher)
                before = dict.fromkeys(self.box.documents(sub_id))
                for doc_id, fields in docs:
                    before.pop((source.collection, doc_id), None)
                    projected = matcher.project(fields) if matcher is not None else fields
                    self.box.added(sub_id, source.collection, doc_id, projected)
                for collection, doc_id in before:
                    self.box.removed(sub_id, collection, doc_id)
        finally:
            messages = self.box.release()
        self._send_all(messages)
        return failed

    async def flush(self) -> None:
        """Process every change published so far and send the resulting messages (the session
        awaits this after a method call, before `updated`)."""
        self.registry.flush()

    def close(self) -> None:
        """The connection ended: drop its subscriptions without sending anything."""
        self.closed = True
        for sub in self._subs.values():
            sub.publication.source.subs.pop(sub, None)
        self._subs.clear()
        for bell, bell_sub in self._bells.values():
            bell.unsubscribe(bell_sub)
        self._bells.clear()
        self.box = MergeBox()

    @property
    def subscriptions(self) -> list[str]:
        return list(self._subs)

    # -- internals ---------------------------------------------------------------------------

    def _apply(self, sub: _Sub, fresh: dict[str, Fields | None]) -> None:
        """Feed one subscription the re-read documents of a batch."""
        box, matcher, sub_id = self.box, sub.matcher, sub.id
        collection = sub.publication.source.collection
        for doc_id, fields in fresh.items():
            if fields is not None and matcher is not None and matcher.matches(doc_id, fields):
                self._send_all(box.changed(sub_id, collection, doc_id, matcher.project(fields)))
            elif box.has(sub_id, collection, doc_id):
                self._send_all(box.removed(sub_id, collection, doc_id))

    def _send_all(self, messages: list[Message]) -> None:
        if self.closed:
            return
        for message in messages:
            self.send(message)
