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

Liveness. Every subscription is a consumer of the engine's live query for its selector and
fields (`engine.live.LiveQueries`): subscriptions with the same query share it, and the engine
re-reads the jobs of each batch of changes ONCE per collection, off the event loop, shaping each
document here once (`_Source.shape`). Its batches come from the engine's thread and are posted
to the loop, where each subscription feeds its connection's `MergeBox`. Unchanged field values
are replaced by the objects sent before, so a merge box's diff is mostly identity checks.

Threading: every method of the registry and of a `ConnectionView` runs on the event loop
thread, which never reads storage: initial results and re-reads run on the engine's thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final

from ..core import ejson
from ..core.live import JobChange, Query
from ..core.permissions import Caller
from ..core.selector import parse_selector
from ..core.wire import times_to_wire
from ..engine.live import LiveBatch, LiveHandle, LiveQueries, Shape
from ..engine.manager import JobManager
from ..errors import JobCollectionError
from ..storage.port import JobDoc
from .doorbell import ReadyBell
from .mergebox import MergeBox, Message, same
from .meteor_error import MeteorError, as_meteor_error, not_subscribable

log = logging.getLogger(__name__)

PUBLISH_GROUPS: Final = ("admin", "manager")
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


# -- published documents -----------------------------------------------------------------------


class Fields(dict[str, Any]):
    """A published document's fields (no ``_id``); weak-referenceable so the per-collection
    cache of what was last sent lives exactly as long as some merge box holds it."""

    __slots__ = ("__weakref__",)


class _Source:
    """One served collection: its live queries, its doorbell, the last fields sent."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.live: LiveQueries = manager.live
        self.bell = ReadyBell(manager)  # `<root>.readyTypes`
        self.root = manager.root
        self.collection = f"{manager.root}.jobs"  # the DDP collection name
        # Documents as published (made on the engine's thread, once per change and source).
        self.shape = Shape(self.collection, self._publishable, with_logs=True, same=same)
        self._sent: weakref.WeakValueDictionary[str, Fields] = weakref.WeakValueDictionary()

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
    """One live subscription of one connection (hashed by identity): to a publication of
    jobs, or (``bell`` set) to a doorbell."""

    id: str
    view: ConnectionView
    collection: str  # the DDP collection of its documents
    params: list[Any]
    publication: _Publication | None = None
    matcher: Matcher | None = None  # None with a publication: it publishes nothing
    bell: ReadyBell | None = None
    types: frozenset[str] = frozenset()  # a doorbell's types
    handle: LiveHandle | None = None
    initial: asyncio.Future[Sequence[JobChange]] | None = None
    backlog: list[LiveBatch] | None = None  # batches that came before the initial result


class PublicationRegistry:
    """The publications of the served collections, fed by the engine's live queries."""

    def __init__(self, managers: Iterable[JobManager], loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._sources: dict[str, _Source] = {}
        self.bells: dict[str, ReadyBell] = {}  # `<root>.readyTypes`, by publication name
        self._publications: dict[str, _Publication] = {}
        hubs: dict[int, LiveQueries] = {}
        for manager in managers:
            if manager.root in self._sources:
                raise ValueError(f"collection {manager.root!r} is served twice")
            source = self._sources[manager.root] = _Source(manager)
            self._publications[source.collection] = _Publication(source.collection, source, None)
            self.bells[source.bell.name] = source.bell
            hubs[id(source.live)] = source.live
        self._hubs = list(hubs.values())
        self._handles: dict[LiveHandle, _Sub] = {}
        # Posted by the engine's thread, taken by the loop: batches, per subscription.
        self._lock = threading.Lock()
        self._inbox: list[tuple[_Sub, LiveBatch]] = []
        self._drain_scheduled = False
        self._closed = False

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
        """Stop every live query of every connection (their views receive no more changes)."""
        self._closed = True
        for handle, sub in list(self._handles.items()):
            handle.stop()
            if sub.initial is not None and not sub.initial.done():
                sub.initial.set_result(())  # the server is going away: nothing to publish
        self._handles.clear()

    # -- live queries (loop thread, but `_post`) ---------------------------------------------

    async def start(self, sub: _Sub) -> Sequence[JobChange]:
        """Start ``sub``'s live query; its initial result (`added` changes). Later batches
        wait in ``sub.backlog`` until `caught_up`. Raises what the first read raised."""
        if (sub.bell is None and sub.matcher is None) or self._closed:
            return ()
        sub.initial = self.loop.create_future()
        sub.backlog = []
        post = partial(self._post, sub)
        if sub.bell is not None:
            sub.handle = sub.bell.manager.live.watch_ready_types(sub.types, post)
        else:
            assert sub.publication is not None
            source, matcher = sub.publication.source, sub.matcher
            assert matcher is not None
            sub.handle = source.live.watch(
                matcher.selector(), post, fields=matcher.fields, shape=source.shape
            )
        self._handles[sub.handle] = sub
        return await sub.initial

    def stop(self, sub: _Sub) -> None:
        if sub.handle is not None:
            sub.handle.stop()
            self._handles.pop(sub.handle, None)

    def _post(self, sub: _Sub, batch: LiveBatch) -> None:
        """The engine's consumer (its thread): queue the batch, wake the loop once."""
        with self._lock:
            if self._closed:
                return
            self._inbox.append((sub, batch))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # the loop is closed: the server is going away
            pass

    def drain(self) -> None:
        """Feed every subscription the batches posted so far."""
        with self._lock:
            inbox, self._inbox = self._inbox, []
            self._drain_scheduled = False
        for sub, batch in inbox:
            if batch.initial:
                initial = sub.initial
                if initial is not None and not initial.done():
                    if batch.error is not None:
                        initial.set_exception(batch.error)
                    else:
                        initial.set_result(batch.changes)
            elif sub.backlog is not None:
                sub.backlog.append(batch)
            elif sub.view.current(sub):
                sub.view.apply(sub, batch)

    async def flush(self) -> None:
        """Wait until every change noted so far was handled, and feed it to the subscribers."""
        waiting: list[asyncio.Future[None]] = []
        for hub in self._hubs:
            done: asyncio.Future[None] = self.loop.create_future()
            if hub.settle(partial(self._resolve, done)):
                waiting.append(done)
        for done in waiting:
            await done
        self.drain()

    def _resolve(self, done: asyncio.Future[None]) -> None:
        try:
            self.loop.call_soon_threadsafe(_set_done, done)
        except RuntimeError:  # the loop is closed: the server is going away
            pass


def _set_done(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


@dataclass(eq=False)
class ConnectionView:
    """One DDP connection's subscriptions and merged view (created by
    `PublicationRegistry.connection`). Every method runs on the event loop thread."""

    registry: PublicationRegistry
    send: Send
    box: MergeBox = field(default_factory=MergeBox)
    _subs: dict[str, _Sub] = field(default_factory=dict)
    closed: bool = False

    async def subscribe(
        self, sub_id: str, name: str, params: Sequence[Any], caller: Caller
    ) -> None:
        """Start subscription ``sub_id`` and send its initial documents as `added`; the
        session then sends `ready`. Raises `MeteorError` (for `nosub`) when the publication is
        unknown (404), refuses ``caller`` (403) or the params are bad (400)."""
        bell = self.registry.bells.get(name)
        if bell is not None:
            types = bell.check(caller, list(params))
            if self.closed:
                return
            sub = _Sub(sub_id, self, bell.name, list(params), bell=bell, types=types)
        else:
            publication = self.registry._publications.get(name)
            if publication is None:
                raise MeteorError(404, f"Subscription '{name}' not found")
            if self.closed:
                return
            collection = publication.source.collection
            sub = _Sub(sub_id, self, collection, list(params), publication)
            sub.matcher = publication.matcher(caller, sub.params)
        self._subs[sub_id] = sub
        try:
            initial = await self.registry.start(sub)
        except Exception as error:
            self._end(sub)
            raise as_meteor_error(error) from error
        if not self.current(sub):
            return
        for change in initial:
            if sub.bell is None or not sub.bell.quiet:
                assert change.doc is not None
                self._send_all(self.box.added(sub_id, sub.collection, change.id, change.doc))
        self._caught_up(sub)

    def unsubscribe(self, sub_id: str) -> None:
        """End ``sub_id``: sends `removed` for documents no other subscription publishes (and
        `changed` where they differ); the session sends `nosub`. Unknown ids are ignored."""
        sub = self._subs.get(sub_id)
        if sub is None:
            return
        self._end(sub)
        self._send_all(self.box.drop_subscription(sub_id))

    async def rerun(self, caller: Caller) -> dict[str, MeteorError]:
        """The connection's user changed: re-run every subscription for ``caller`` and send
        only the difference. Returns the subscriptions that now fail, already ended here (their
        documents removed): the session sends `nosub` with each error."""
        failed: dict[str, MeteorError] = {}
        fresh: list[tuple[_Sub, _Sub]] = []
        for sub_id, sub in list(self._subs.items()):
            try:
                if sub.bell is not None:
                    sub.bell.check(caller, [sorted(sub.types)])
                    continue
                assert sub.publication is not None
                matcher = sub.publication.matcher(caller, sub.params)
            except MeteorError as error:
                failed[sub_id] = error
                self.unsubscribe(sub_id)
                continue
            new = _Sub(sub_id, self, sub.collection, sub.params, sub.publication, matcher)
            self._subs[sub_id] = new  # the old one's batches are no longer applied
            fresh.append((sub, new))
        try:
            initials = await asyncio.gather(*(self.registry.start(new) for _, new in fresh))
        finally:
            for old, _ in fresh:  # after the new query started: a shared one keeps running
                self.registry.stop(old)
        self.box.hold()
        try:
            for (_, new), initial in zip(fresh, initials, strict=True):
                if not self.current(new):
                    continue
                before = dict.fromkeys(self.box.documents(new.id))
                for change in initial:
                    before.pop((new.collection, change.id), None)
                    assert change.doc is not None
                    self.box.added(new.id, new.collection, change.id, change.doc)
                for collection, doc_id in before:
                    self.box.removed(new.id, collection, doc_id)
                self._caught_up(new)
        finally:
            messages = self.box.release()
        self._send_all(messages)
        return failed

    async def flush(self) -> None:
        """Process every change published so far and send the resulting messages (the session
        awaits this after a method call, before `updated`)."""
        await self.registry.flush()

    def close(self) -> None:
        """The connection ended: drop its subscriptions without sending anything."""
        self.closed = True
        for sub in self._subs.values():
            self.registry.stop(sub)
        self._subs.clear()
        self.box = MergeBox()

    @property
    def subscriptions(self) -> list[str]:
        return [sub_id for sub_id, sub in self._subs.items() if sub.bell is None]

    # -- internals ---------------------------------------------------------------------------

    def current(self, sub: _Sub) -> bool:
        """Whether ``sub`` is (still) this connection's subscription under its id."""
        return self._subs.get(sub.id) is sub

    def _end(self, sub: _Sub) -> None:
        if self.current(sub):
            del self._subs[sub.id]
        self.registry.stop(sub)

    def _caught_up(self, sub: _Sub) -> None:
        """The initial result is out: apply the batches that came meanwhile, then go live."""
        backlog, sub.backlog = sub.backlog or [], None
        for batch in backlog:
            self.apply(sub, batch)

    def apply(self, sub: _Sub, batch: LiveBatch) -> None:
        """Feed one subscription a batch of its live query's changes."""
        box, sub_id, collection = self.box, sub.id, sub.collection
        quiet = sub.bell is not None and sub.bell.quiet  # no new work is announced
        for change in batch.changes:
            if change.kind == "removed":
                self._send_all(box.removed(sub_id, collection, change.id))
            elif change.doc is not None and not quiet:
                self._send_all(box.changed(sub_id, collection, change.id, change.doc))

    def _send_all(self, messages: list[Message]) -> None:
        if self.closed:
            return
        for message in messages:
            self.send(message)
