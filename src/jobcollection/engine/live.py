"""Live queries: the one engine behind publications, `observe`/`watch` and the doorbell.

A live query is a parsed selector over one collection's jobs, the top-level fields it reports
(None: all) and a `Shape` (how its documents look: as stored, or a server's wire form). Every
consumer watching the same (query, fields, shape) shares one query: its current result and the
diff that turns each batch of changes into added/changed/removed (`core.live.LiveQuery`).

One `LiveQueries` per collection (`JobManager.live`) follows the storage's change feed. Its
listener (any thread, possibly inside a write) only notes the changed ids; the hub's own thread
then re-reads them ONCE per batch for all its queries — whatever the number of queries and
consumers — shapes each document once per shape, and hands each consumer its query's changes
as one `LiveBatch`. Re-reading (rather than trusting the change entry) makes the feed
level-triggered: a change seen twice, late, or after its effect reports nothing twice.

Threading: reads and consumer calls run on the hub's thread — never the caller's, never a
server's event loop; a consumer that must act elsewhere posts the batch there. A new consumer's
initial result is computed on that thread too, between batches, so it is ordered with the
changes that follow it. Consumers must not change the documents they get (they are shared).
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from ..core.live import JobChange, LiveQuery, Query
from ..core.selector import parse_selector
from ..errors import StorageError
from ..storage.port import Change, JobDoc, Storage
from .reader import JobReader
from .ready_types import ReadyNews, ReadyTypes

log = logging.getLogger(__name__)

RETRY_AFTER_S: Final = 0.05  # a failed re-read (database busy) is tried again this much later


def _merged(older: dict[str, ReadyNews], newer: dict[str, ReadyNews]) -> dict[str, ReadyNews]:
    """News of two batches of changes, as if they were one."""
    merged = dict(older)
    for job_type, seen in newer.items():
        before = merged.get(job_type)
        merged[job_type] = (
            seen
            if before is None
            else ReadyNews(before.gained or seen.gained, before.lost or seen.lost)
        )
    return merged


@dataclass(frozen=True, eq=False)
class Shape:
    """How a live query's documents look. Compared by identity: consumers share a query only
    when they use the same shape object. ``transform`` gets a document of its own to change
    (with its log when ``with_logs``) and returns the shaped one; ``same`` compares the
    shaped values."""

    name: str
    transform: Callable[[JobDoc], JobDoc]
    with_logs: bool = False
    same: Callable[[Any, Any], bool] = operator.eq  # whether a field's value is unchanged


def _as_stored(doc: JobDoc) -> JobDoc:
    doc.pop("log", None)
    return doc


STORED: Final = Shape("stored", _as_stored)  # documents as `find` returns them (no log)


@dataclass(frozen=True, slots=True)
class LiveBatch:
    """What one consumer is told at once: its query's result when it joined (``initial``:
    every change is `added`), then each batch of changes. ``error``: the initial read failed
    and the consumer is not watching."""

    changes: Sequence[JobChange]
    initial: bool = False
    error: Exception | None = None


Consumer = Callable[[LiveBatch], None]


@dataclass(frozen=True, slots=True)
class _Key:
    query: Query
    fields: frozenset[str] | None
    shape: Shape


class _Query:
    """One shared live query: its result and its consumers."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.consumers: dict[LiveHandle, None] = {}
        self._out: list[JobChange] = []
        self.live = LiveQuery(key.query, self._out.append, fields=key.fields, same=key.shape.same)

    def take(self) -> list[JobChange]:
        out = list(self._out)
        self._out.clear()
        return out

    def result(self) -> list[JobChange]:
        """The current result, as `added` changes."""
        return [JobChange("added", job_id, doc) for job_id, doc in self.live.docs.items()]


class LiveHandle:
    """One consumer's watch of a live query (or of the ready types); `stop` ends it."""

    def __init__(self, hub: LiveQueries, key: _Key | frozenset[str], consumer: Consumer) -> None:
        self._hub = hub
        self.key = key
        self.consumer = consumer
        self.active = True

    def stop(self) -> None:
        """Stop watching (any thread; idempotent). A batch being delivered may still arrive."""
        self._hub._leave(self)

    def deliver(self, batch: LiveBatch) -> None:
        if not self.active:
            return
        try:
            self.consumer(batch)
        except Exception:
            log.exception("live query consumer %r failed", self.consumer)


class LiveQueries:
    """The live queries of one collection (see the module docstring)."""

    def __init__(self, storage: Storage, root: str, reader: JobReader) -> None:
        self.storage = storage
        self.root = root
        self.reader = reader
        self.ready_types = ReadyTypes(storage, root)
        self._cond = threading.Condition(threading.Lock())
        self._feed_lock = threading.Lock()
        self._queries: dict[_Key, _Query] = {}
        self._bells: dict[LiveHandle, None] = {}  # ready-types watchers that joined
        self._joining: list[LiveHandle] = []
        self._watchers = 0  # handles not stopped: changes are only noted while there are some
        self._pending: dict[str, None] = {}  # ids changed since the last batch
        self._news: dict[str, ReadyNews] = {}  # what the changes say about ready types
        self._settling: list[Callable[[], None]] = []
        self._ready_callbacks: tuple[tuple[frozenset[str], Callable[[], None]], ...] = ()
        self._busy = False
        self._closed = False
        self._failing = False  # the last read failed (see `_failed`)
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- consumers -----------------------------------------------------------------------------

    def watch(
        self,
        selector: dict[str, Any] | None,
        consumer: Consumer,
        *,
        fields: frozenset[str] | None = None,
        shape: Shape = STORED,
    ) -> LiveHandle:
        """Start (or join) the live query: ``consumer`` first gets its result as an initial
        batch, then every batch of changes, on the hub's thread. Raises `ValidationError` for
        a selector `parse_selector` refuses."""
        query = Query.of(parse_selector(selector or {}))
        return self._join(LiveHandle(self, _Key(query, fields, shape), consumer))

    def watch_ready_types(self, types: frozenset[str], consumer: Consumer) -> LiveHandle:
        """Follow which of ``types`` have ready jobs: `added` (id = the type) when a type gets
        one, `removed` when its last one goes; the initial batch adds the types ready now."""
        return self._join(LiveHandle(self, frozenset(types), consumer))

    def on_ready(self, types: Sequence[str], callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from the writer's thread, at once, without a read) whenever a job
        of ``types`` becomes ready; returns a function that stops."""
        entry = (frozenset(types), callback)
        self._follow_feed()
        with self._cond:
            self._ready_callbacks += (entry,)

        def stop() -> None:
            with self._cond:
                self._ready_callbacks = tuple(e for e in self._ready_callbacks if e is not entry)

        return stop

    def observe(
        self, selector: dict[str, Any] | None, callback: Callable[[JobChange], None]
    ) -> Callable[[], None]:
        """`callback` gets `added` for every matching job now (before this returns, unless
        called from the hub's own thread), then every change; returns a stop function."""
        started = threading.Event()
        failed: list[Exception] = []

        def consume(batch: LiveBatch) -> None:
            if batch.error is not None:
                failed.append(batch.error)
            try:
                for change in batch.changes:
                    callback(change)
            finally:
                if batch.initial:
                    started.set()

        handle = self.watch(selector, consume)
        if threading.current_thread() is not self._thread:
            started.wait()
        if failed:
            handle.stop()
            raise failed[0]
        return handle.stop

    def settle(self, callback: Callable[[], None]) -> bool:
        """Whether changes noted so far, or committed by this process and still on their way
        from the storage, are being handled; if so, ``callback`` is called (on another thread)
        once every consumer got them. False: nothing is in flight."""
        if self._unsubscribe is not None and self.storage.settle(
            partial(self._settle_after_feed, callback)
        ):
            return True
        return self._settle_noted(callback)

    def _settle_after_feed(self, callback: Callable[[], None]) -> None:
        if not self._settle_noted(callback):
            callback()

    def _settle_noted(self, callback: Callable[[], None]) -> bool:
        with self._cond:
            if self._closed or not (self._busy or self._pending or self._news or self._joining):
                return False
            self._settling.append(callback)
            self._cond.notify()
            return True

    def close(self) -> None:
        """Stop following the feed and end the hub's thread (consumers hear nothing more)."""
        with self._feed_lock, self._cond:
            self._closed = True
            self._cond.notify()
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            thread = self._thread
        if unsubscribe is not None:
            unsubscribe()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _join(self, handle: LiveHandle) -> LiveHandle:
        self._follow_feed()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.root}: the collection is closed")
            self._watchers += 1
            self._joining.append(handle)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"jobcollection-live-{self.root}", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handle

    def _follow_feed(self) -> None:
        """Listen to the change feed from the first watcher on (until `close`)."""
        with self._feed_lock:  # never held by a storage thread calling us: no lock cycle
            if self._unsubscribe is None and not self._closed:
                self._unsubscribe = self.storage.subscribe(self._on_changes)

    def _leave(self, handle: LiveHandle) -> None:
        with self._cond:
            if not handle.active:
                return
            handle.active = False
            self._watchers -= 1
            if handle in self._joining:
                self._joining.remove(handle)
            elif isinstance(handle.key, frozenset):
                self._bells.pop(handle, None)
            else:
                query = self._queries.get(handle.key)
                if query is not None:
                    query.consumers.pop(handle, None)
                    if not query.consumers:  # the last consumer: the query stops
                        del self._queries[handle.key]

    def _on_changes(self, changes: Sequence[Change]) -> None:
        """The storage listener (any thread, possibly inside a write): note, wake the thread."""
        root = self.root
        for types, callback in self._ready_callbacks:
            if any(
                c.status == "ready" and c.type in types and c.collection == root for c in changes
            ):
                try:
                    callback()
                except Exception:
                    log.exception("%s: ready callback %r failed", root, callback)
        if not self._watchers:
            return
        with self._cond:
            bells = bool(self._bells) or any(isinstance(h.key, frozenset) for h in self._joining)
            pending, news = self._pending, self._news
            for change in changes:
                if change.collection != root:
                    continue
                pending[change.job_id] = None
                if bells:
                    seen = news.get(change.type)
                    if seen is None:
                        seen = news[change.type] = ReadyNews()
                    seen.note(change.status)
            if pending or news:
                self._cond.notify()

    # -- the hub's thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._pending or self._news or self._joining or self._settling or self._closed
                ):
                    self._cond.wait()
                if self._closed:
                    settling, self._settling = self._settling, []
                    break
                pending, self._pending = self._pending, {}
                news, self._news = self._news, {}
                joining, self._joining = self._joining, []
                settling, self._settling = self._settling, []
                queries = list(self._queries.values())
                bells = list(self._bells)
                self._busy = True
            try:
                retry = False
                if news and bells and not self._ring(news, bells):
                    with self._cond:  # try again a little later (the database is unavailable)
                        self._news = _merged(news, self._news)
                    retry = True
                if pending and queries and not self._apply(list(pending), queries):
                    with self._cond:  # try again a little later (the database is busy)
                        self._pending = {**pending, **self._pending}
                    retry = True
                if retry:
                    time.sleep(RETRY_AFTER_S)
                for handle in joining:
                    self._start(handle)
            except Exception:  # a bug: keep the hub alive for the other consumers
                log.exception("%s: live queries failed", self.root)
            finally:
                with self._cond:
                    self._busy = False
                self._settled(settling)
        self._settled(settling)  # closed: nothing more will come

    def _settled(self, callbacks: list[Callable[[], None]]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("%s: settle callback %r failed", self.root, callback)

    def _failed(self, what: str, error: Exception) -> None:
        """Report a read that failed (it is tried again): the first failure of a series with
        its reason, the next ones quietly (a database that is down fails every retry)."""
        if isinstance(error, StorageError):
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "%s: %s failed (retrying): %s", self.root, what, error)
        else:
            log.exception("%s: %s failed; retrying", self.root, what)
        self._failing = True

    def _ring(self, news: dict[str, ReadyNews], bells: list[LiveHandle]) -> bool:
        """Ring the bells of the types whose state flipped; False if the read failed."""
        watched: dict[LiveHandle, frozenset[str]] = {}
        for handle in bells:
            assert isinstance(handle.key, frozenset)
            watched[handle] = handle.key
        try:
            flipped = self.ready_types.recheck(news, set().union(*watched.values()))
        except StorageError as error:
            self._failed("looking for ready jobs", error)
            return False
        self._failing = False
        for handle, types in watched.items():
            changes = [
                JobChange("added", t, {}) if flipped[t] else JobChange("removed", t, None)
                for t in sorted(flipped.keys() & types)
            ]
            if changes:
                handle.deliver(LiveBatch(changes))
        return True

    def _apply(self, ids: list[str], queries: list[_Query]) -> bool:
        """Re-read the changed jobs once and feed every query; False if the read failed."""
        shapes = list(dict.fromkeys(query.key.shape for query in queries))
        try:
            fresh = self._read_changed(ids, any(shape.with_logs for shape in shapes))
        except Exception as error:
            self._failed(f"re-reading {len(ids)} changed jobs", error)
            return False
        self._failing = False
        shaped = {shape: self._shaped(shape, fresh, len(shapes) > 1) for shape in shapes}
        for query in queries:
            docs = shaped[query.key.shape]
            for job_id in ids:
                query.live.update(job_id, docs.get(job_id))
            changes = query.take()
            if changes:
                batch = LiveBatch(changes)
                for handle in list(query.consumers):
                    handle.deliver(batch)
        return True

    def _read_changed(self, ids: list[str], with_logs: bool) -> dict[str, JobDoc]:
        """The current documents of these jobs (those gone are left out): ONE read per batch."""
        return {
            doc["_id"]: doc
            for docs in self.reader.read_chunks({"_id": {"$in": ids}}, with_logs=with_logs)
            for doc in docs
        }

    @staticmethod
    def _shaped(shape: Shape, docs: dict[str, JobDoc], copy: bool) -> dict[str, JobDoc]:
        return {job_id: shape.transform(dict(doc) if copy else doc) for job_id, doc in docs.items()}

    def _start(self, handle: LiveHandle) -> None:
        """A new consumer: join its query (started by a first read if it is new)."""
        key = handle.key
        if isinstance(key, frozenset):
            self._start_bell(handle, key)
            return
        with self._cond:
            query = self._queries.get(key)
        if query is None:
            query = _Query(key)
            try:
                for docs in self.reader.read_chunks(
                    key.query.selector(), with_logs=key.shape.with_logs
                ):
                    for doc in docs:
                        query.live.update(doc["_id"], key.shape.transform(doc))
            except Exception as error:
                self._refuse(handle, error)
                return
            query.take()
        with self._cond:
            if not handle.active:
                return
            query = self._queries.setdefault(key, query)
            query.consumers[handle] = None
        handle.deliver(LiveBatch(query.result(), initial=True))

    def _start_bell(self, handle: LiveHandle, types: frozenset[str]) -> None:
        try:
            ready = self.ready_types.look(types)
        except Exception as error:
            self._refuse(handle, error)
            return
        with self._cond:
            if not handle.active:
                return
            self._bells[handle] = None
        changes = [JobChange("added", t, {}) for t in sorted(types) if ready[t]]
        handle.deliver(LiveBatch(changes, initial=True))

    def _refuse(self, handle: LiveHandle, error: Exception) -> None:
        handle.deliver(LiveBatch((), initial=True, error=error))
        self._leave(handle)
