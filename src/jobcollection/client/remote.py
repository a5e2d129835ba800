"""Collections on a remote server: the same `JobCollection`/`Job`/`JobQueue`, another transport.

`RemoteBackend` is a `Backend` (api/backend.py), as the local engine's `LocalBackend` is: the
same operations (`call`, `find`, `count`, `save_many`, `complete_many`, `complete_and_claim`,
`stats`, `observe`, `watch_ready`, the worker registry), carried out over DDP by a `DdpClient`
running on its own event-loop thread. The collection classes and their job logic are not
duplicated: `connect()` is a `JobCollection` standing on a remote backend. What only the
server can do (allow/deny, the call log, events, the promote sweep) a remote backend does not
offer: its `engine` is None.

Batches (`save_jobs`, a worker's completions and its next claim) travel as one call each
(`jobSaveMany`, `jobDoneAndGetWork`: our server's batch methods) and run in one transaction.
Queries go a page at a time (`jobFind`, `jobCount`, `jobStats`: our server's read methods).
Readiness is pushed: a queue follows the server's `<root>.readyTypes` doorbell for its types
and is triggered when one gets ready jobs, so it does not depend on polling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from ..api._portal import Portal, running_on
from ..api.backend import ChildSpec, Run
from ..api.collection import AsyncJobCollection, JobCollection
from ..core.constants import DEFAULT_LOST_AFTER_MS
from ..core.ids import random_id
from ..core.live import JobChange, LiveQuery, Query
from ..core.params import in_batch, parse_params
from ..core.selector import parse_selector
from ..core.storable import naming_unstorable, unstorable_param, unstorable_value
from ..core.wire import doc_from_wire, result_from_wire
from ..core.workers import WorkerRecord, check_lost_after
from ..errors import JobCollectionError, PermissionDenied, RemoteError, ValidationError
from .ddp import DdpClient

log = logging.getLogger(__name__)
JobDoc = dict[str, Any]
CLOSING_RECONNECT_WAIT_S = 1.0
PAGE = 500  # documents per `jobFind` call


def _local_error(error: RemoteError) -> JobCollectionError:
    """A server's refusal as the exception the in-process API raises for the same problem."""
    if error.error == 400:
        return ValidationError(error.details or error.reason or "Match failed")
    if error.error == 403:
        reason = error.reason or "Method not authorized"
        return PermissionDenied(f"{reason}; {error.details}" if error.details else reason)
    return error


class RemoteBackend:
    """A collection's backend on the far side of a DDP connection (see the module doc)."""

    engine: None = None  # the engine (rules, call log, events, sweep) is the server's

    def __init__(
        self,
        url: str,
        root: str = "queue",
        *,
        username: str | None = None,
        email: str | None = None,
        password: str | None = None,
        token: str | None = None,
        lost_after: int | timedelta | None = None,
        **client_options: Any,
    ) -> None:
        if not isinstance(root, str) or not root:
            raise ValidationError("collection name must be a non-empty string")
        self.lost_after = DEFAULT_LOST_AFTER_MS
        if lost_after is not None:
            self.lost_after = check_lost_after(lost_after)
        # The worker the server knows this client's queues as: one id for the client's life,
        # so that after a reconnect the server gives it back its running jobs.
        self.worker_id = random_id()
        self._queues: dict[str, tuple[WorkerRecord, Callable[[], list[str]] | None]] = {}
        self.root = root
        self.url = url
        self.portal = Portal(f"jobcollection-ddp-{root}")
        self.client = DdpClient(url, **client_options)
        self._publication = f"{root}.jobs"
        # How long a call waits for a lost connection to come back (None: as long as it
        # takes); short once the collection is closing, so a close never hangs on a dead server.
        self._reconnect_wait: float | None = None
        self.client.on_reconnect.append(self._hello_again)
        try:
            self.portal.run(self._open(username, email, password, token))
        except BaseException:
            self.portal.run(self.client.close())
            self.portal.close()
            raise

    async def _open(
        self, username: str | None, email: str | None, password: str | None, token: str | None
    ) -> None:
        await self.client.connect()
        if token is not None:
            await self.client.login(token=token)
        elif password is not None:
            await self.client.login(username=username, email=email, password=password)
        elif username is not None or email is not None:
            raise ValidationError("a password (or a token) is needed to log in")

    def now_ms(self) -> int:
        """This machine's clock (the server's jobs are timed by the server's)."""
        return time.time_ns() // 1_000_000

    # -- calls ------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        params: Sequence[object],
        unstorable: Callable[[], JobCollectionError | None] | None = None,
    ) -> Any:
        """One method on the server. A param the wire cannot carry (a `set`...) raises the
        validation error a local collection raises (`unstorable` names it, by default the
        param it is in); nothing was sent."""

        def named() -> JobCollectionError | None:
            return unstorable_param(method, params) if unstorable is None else unstorable()

        try:
            with naming_unstorable(named):
                result = await self.client.call(
                    f"{self.root}_{method}", *params, timeout=self._reconnect_wait
                )
        except RemoteError as error:
            raise _local_error(error) from error
        return result_from_wire(method, result)

    async def acall(
        self, method: str, params: Sequence[object] = (), *, worker_id: str | None = None
    ) -> Any:
        """One method on the server, on this client's loop (`worker_id` is not sent: the
        server knows the connection's worker)."""
        return await self._call(method, params)

    def call(
        self, method: str, params: Sequence[object] = (), *, worker_id: str | None = None
    ) -> Any:
        """One method on the server (validated there; the same errors as locally)."""
        return self.portal.run(self._call(method, list(params)))

    async def _pipelined(self, calls: Sequence[tuple[str, list[object]]]) -> list[Any]:
        """Calls sent back to back: the server runs such a run in one transaction."""
        return list(await asyncio.gather(*(self._call(m, p) for m, p in calls)))

    def save_many(self, docs: Sequence[object]) -> list[str | None]:
        """Validated here first, as locally: a bad document saves nothing. One message."""
        for number, doc in enumerate(docs):
            try:
                parse_params("jobSave", [doc])
            except ValidationError as error:
                raise in_batch(error, number) from error
        ids: list[str | None] = self.call("jobSaveMany", [list(docs)])
        return ids

    def complete_many(self, runs: Sequence[Run]) -> list[bool | str]:
        return self.complete_and_claim(runs, None)[0]

    async def acomplete_many(self, runs: Sequence[Run]) -> list[bool | str]:
        return (await self.acomplete_and_claim(runs, None))[0]

    def complete_and_claim(
        self, runs: Sequence[Run], get_work: list[object] | None, *, worker_id: str | None = None
    ) -> tuple[list[bool | str], list[JobDoc]]:
        """Completions and the next claim in one message and one server transaction."""
        return self.portal.run(self.acomplete_and_claim(runs, get_work))

    async def acomplete_and_claim(
        self, runs: Sequence[Run], get_work: list[object] | None, *, worker_id: str | None = None
    ) -> tuple[list[bool | str], list[JobDoc]]:
        wire_runs = [[job_id, run_id, result] for job_id, run_id, result in runs]

        def unstorable() -> JobCollectionError | None:
            found = (unstorable_value("result", result) for _, _, result in runs)
            return next((error for error in found if error is not None), None)

        outcomes, docs = await self._call("jobDoneAndGetWork", [wire_runs, get_work], unstorable)
        return outcomes, [doc_from_wire(doc) for doc in docs]

    # -- queries, a page at a time ---------------------------------------------------------

    def find(
        self,
        selector: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[JobDoc]:
        """Jobs matching the selector, a page (`jobFind`, one short read on the server) at a
        time until `limit` or the last page."""
        selector = selector or {}
        parse_selector(selector)  # raises ValidationError naming the bad part, as locally
        docs: list[JobDoc] = []
        after: int | None = None
        while limit is None or len(docs) < limit:
            want = PAGE if limit is None else min(PAGE, limit - len(docs))
            options = {"limit": want, "newestFirst": newest_first, "after": after}
            page = self.call("jobFind", [selector, options])
            docs.extend(doc_from_wire(doc) for doc in page["docs"])
            after = page["next"]
            if after is None:
                break
        return docs

    def count(self, selector: dict[str, Any] | None = None, at_most: int | None = None) -> int:
        selector = selector or {}
        parse_selector(selector)
        number: int = self.call("jobCount", [selector, {"atMost": at_most}])
        return number

    def stats(self) -> list[tuple[str, str, int]]:
        return [(status, kind, n) for status, kind, n in self.call("jobStats", [])]

    def watch_ready(self, types: Sequence[str], callback: Callable[[], None]) -> Callable[[], None]:
        """Follow the server's `<root>.readyTypes` doorbell: `callback` runs (on the client's
        thread) whenever one of `types` goes from no ready job to some."""
        bell = f"{self.root}.readyTypes"

        def start() -> Any:
            return self._follow(bell, [list(types)], added=lambda *_: callback())

        # A queue on this client's own loop (see JobCollection.process_jobs) may not block
        # it: subscribe in the background (the queue asks for work once at its start anyway).
        inline = self._on_portal()
        started = self.portal.loop.create_task(start()) if inline else None
        subscribed = None if inline else self.portal.run(start())

        def look_again() -> None:
            # After a reconnect: a getWork lost in the cut, or jobs readied while away under a
            # bell that rang before, would otherwise wait for the poll (forever without one).
            callback()

        self.client.on_reconnect.append(look_again)

        def stop() -> None:
            if look_again in self.client.on_reconnect:
                self.client.on_reconnect.remove(look_again)
            if started is not None and not started.done():
                started.cancel()
                return
            try:
                pair = subscribed if started is None else started.result()
            except Exception:  # the background subscription failed: nothing to undo
                return
            assert pair is not None
            self._unfollow(*pair)

        return stop

    async def _follow(self, name: str, params: list[Any], **callbacks: Any) -> tuple[Any, Any]:
        """Observe DDP collection ``name`` with ``callbacks``, then subscribe to it."""
        handle = self.client.observe(name, **callbacks)
        try:
            return handle, await self.client.subscribe(name, *params)
        except BaseException:
            handle.stop()
            raise

    def _unfollow(self, handle: Any, sub: Any) -> None:
        """Undo `_follow`, from any thread (this client's loop included)."""
        handle.stop()
        if not self.portal.loop.is_running():
            return
        if self._on_portal():
            self.portal.loop.create_task(sub.stop())
        else:
            self.portal.run(sub.stop())

    def _on_portal(self) -> bool:
        """Whether the caller runs on this client's own loop."""
        return running_on(self.portal.loop)

    def observe(
        self, selector: dict[str, Any] | None, callback: Callable[[JobChange], None]
    ) -> Callable[[], None]:
        """A live query over the `<root>.jobs` publication; ``callback`` runs on the client's
        thread (keep it short). Returns a stop function."""
        selector = selector or {}
        live = LiveQuery(Query.of(parse_selector(selector)), callback)
        publication = self._publication

        def feed(job_id: str, *_: object) -> None:
            fields = self.client.collections.get(publication, {}).get(job_id)
            doc = None if fields is None else doc_from_wire({"_id": job_id, **fields})
            live.update(job_id, doc)

        async def start() -> tuple[Any, Any]:
            followed = await self._follow(
                publication, [selector], added=feed, changed=feed, removed=feed
            )
            for job_id in list(self.client.collections.get(publication, {})):
                feed(job_id)
            return followed

        try:
            handle, sub = self.portal.run(start())
        except RemoteError as error:
            raise _local_error(error) from error
        return lambda: self._unfollow(handle, sub)

    # -- the worker registry ----------------------------------------------------------------

    async def aregister_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None:
        """A queue starts on this connection: tell the server who works here (and, after a
        reconnect, which jobs its queues hold: `known_jobs`)."""
        self._queues[record.id] = (record, known_jobs)
        await self._hello()

    async def aunregister_worker(self, worker_id: str) -> None:
        self._queues.pop(worker_id, None)
        await self._hello()

    def register_worker(
        self, record: WorkerRecord, known_jobs: Callable[[], list[str]] | None = None
    ) -> None:
        self.portal.run(self.aregister_worker(record, known_jobs))

    def unregister_worker(self, worker_id: str) -> None:
        self.portal.run(self.aunregister_worker(worker_id))

    async def _hello(self, reconnected: bool = False) -> None:
        """`<root>_registerWorker`: this client's worker (its queues together), or null once
        no queue works here. A server that refuses it still registers the connection at its
        first claim, only without our id, host and pid. After a reconnect it also lists the
        jobs the queues hold: the server fails the worker's other running jobs, claimed by
        calls whose replies were lost with the old connection."""
        queues = [record for record, _ in self._queues.values()]
        hello: dict[str, Any] | None = None
        if queues:
            hello = {
                "workerId": self.worker_id,
                "host": socket.gethostname()[:200],
                "pid": os.getpid(),
                "types": sorted({t for q in queues for t in q.types}),
                "concurrency": sum(q.concurrency or 0 for q in queues),
                "lostAfter": min(q.lost_after for q in queues),
            }
            knowns = [known for _, known in self._queues.values()]
            if reconnected and all(known is not None for known in knowns):
                hello["jobs"] = sorted({job for known in knowns if known for job in known()})
        try:
            await self._call("registerWorker", [hello])
        except JobCollectionError as error:
            log.warning("%s: the server did not register this worker: %s", self.root, error)

    def _hello_again(self) -> Awaitable[None] | None:
        """After a reconnect: the new connection is the same worker."""
        return self._hello(reconnected=True) if self._queues else None

    def workers(self) -> list[WorkerRecord]:
        """The server's worker registry for this collection (admin and manager groups)."""
        found = self.call("workers", [])
        return [WorkerRecord.from_wire(entry) for entry in found]

    def child_spec(self) -> ChildSpec:
        """How a worker's pool process reaches this collection: the same server, logged in
        with this connection's resume token."""
        return ChildSpec(self.url, self.root, open_child, token=self.client.token)

    def begin_close(self) -> None:
        """The collection is closing: calls still to come (failing a closing queue's jobs)
        wait at most a second for a lost connection."""
        self._reconnect_wait = CLOSING_RECONNECT_WAIT_S

    def close(self) -> None:
        if self.portal.loop.is_running():
            self.portal.run(self.client.close())
            self.portal.close()


def connect(url: str, name: str = "queue", **login: Any) -> JobCollection:
    """A `JobCollection` served by `jobcollection serve` at ``url`` (ws:// or http://), e.g.
    ``connect("ws://host:3000", username="ada", password=pw)`` or ``token=...``;
    ``lost_after=`` sets its queues' default heartbeat lapse."""
    return JobCollection(_backend=RemoteBackend(url, name, **login))


def connect_async(url: str, name: str = "queue", **login: Any) -> AsyncJobCollection:
    """The `AsyncJobCollection` form of :func:`connect` (blocking while it connects)."""
    return AsyncJobCollection(_backend=RemoteBackend(url, name, **login))


def open_child(spec: ChildSpec) -> RemoteBackend:
    """A pool process' backend: the parent's server, logged in with the parent's token (the
    server runs its own job server)."""
    return RemoteBackend(spec.url, spec.root, token=spec.token)
