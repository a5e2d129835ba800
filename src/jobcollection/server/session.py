"""One DDP connection: handshake, heartbeats, methods and subscriptions, in order.

The transport is abstract (`transport.py` provides it over an ASGI websocket). Four tasks per
connection:

- the *reader* answers what needs no ordering at once (pings, the handshake, malformed
  frames) and queues methods and subscriptions;
- the *processor* runs the queued messages one at a time, in order (as DDP requires): each
  method's
  `result`, then the data messages it caused, then its `updated` (`session_requests.py`);
- the *writer* sends every outgoing message in the order it was produced;
- a *heartbeat* watchdog pings a quiet client and closes a connection that stays silent,
  once the handshake has chosen a DDP version that has heartbeats (every version but `pre1`,
  as Meteor). Before that, it closes a connection whose `connect` does not come within the
  handshake timeout.

Backpressure, not refusals: a client may pipeline any number of calls. The reader stops
reading while `max_pending_calls` calls wait, or while the outgoing queue holds
`outgoing_soft_limit` bytes (a client that does not read its answers), and resumes as they go
down; the processor starts the next request only below that soft limit. A client that stops
reading thus stalls its own connection and holds a bounded amount of memory; while we are not
reading, the heartbeat does not count the client as silent. Data pushed by subscriptions is
not an answer and is not held back: a subscriber more than `outgoing_hard_limit` bytes behind
is disconnected (it reconnects and resubscribes). When the connection ends, everything it
held is dropped at once (the session keeps no reference cycle alive).

`stop` closes the connection for a server restart without losing an outcome (`drain.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from ..core.ids import random_id
from ..core.permissions import ANONYMOUS, Caller
from ..ddp import framing
from ..ddp import server as ddp
from ..ddp.heartbeat import Heartbeat, has_heartbeat
from ..ddp.messages import SERVER_ID_MESSAGE, connected, error_result, ping
from .limits import Limits as Limits  # re-exported: `Limits` was defined here
from .meteor_error import MeteorError
from .outbox import Close, Outbox
from .session_ports import ClosedView, ConnectionView, SessionServices, Transport
from .session_requests import InOrder
from .updates import PendingUpdates

log = logging.getLogger(__name__)


class Session(InOrder):
    """The server side of one DDP connection; also the `connection` handle events carry."""

    def __init__(self, services: SessionServices, transport: Transport, client: str = "") -> None:
        self.services = services
        self.limits = limits = services.limits
        self.transport = transport
        self.client_address = client
        self.id = random_id()
        self.caller: Caller = ANONYMOUS
        self.token: str | None = None
        self._ddp = ddp.ServerConnection(limits.max_message_size)  # the protocol's state
        self._room = asyncio.Event()  # wakes a paused reader (calls done, bytes written)
        self._outbox = Outbox(
            limits.outgoing_soft_limit, limits.outgoing_hard_limit, on_room=self._room.set
        )
        self._writer_busy = False
        self._answering = 0  # > 0 while the processor answers a request (see `send`)
        self._work: deque[dict[str, Any]] = deque()
        self._work_ready = asyncio.Event()
        self._pending_calls = 0
        self._subs: set[str] = set()
        self._view: ConnectionView = services.views(self.send)
        self._updates = PendingUpdates(lambda: self._view.flush(), self._send_updated)
        self._heartbeat_state = Heartbeat(
            limits.heartbeat_interval, limits.heartbeat_timeout, time.monotonic()
        )
        self._paused = False  # the reader waits for room (backpressure)
        self._closing = False
        self._ended = asyncio.Event()
        self._handshaken = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connected(self) -> bool:
        return self._ddp.connected

    @property
    def version(self) -> str | None:
        """The DDP version the handshake chose."""
        return self._ddp.version

    # -- outgoing ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the client (any code on the loop may call this).

        Messages queued while a request is answered count as its answer; the others (data
        pushed by subscriptions) may not pile up past the hard limit while the client is not
        reading (the writer is stuck on a full socket: seen from here, it is "busy"). A burst
        for a client that reads is not held against it.
        """
        self._outbox.put(framing.encode(message), answer=self._answering > 0, may_hold=True)
        if self._outbox.over_hard and self._writer_busy and not self._closing:
            self._fell_behind()

    def _answer(self, message: dict[str, Any]) -> None:
        """Queue a reply the reader makes at once (pong, error): an answer, like results."""
        self._outbox.put(framing.encode(message), answer=True)

    def _fell_behind(self) -> None:
        log.warning(
            "closing DDP connection %s (%s): it fell %d bytes behind on published data "
            "(the limit is %d)",
            self.id,
            self.client_address or "?",
            self._outbox.size,
            self._outbox.hard,
        )
        self._closing = True
        self._outbox.clear()
        self.transport.abort()
        self._ended.set()

    async def _writer(self) -> None:
        while True:
            item = await self._outbox.next()
            if isinstance(item, Close):
                await self.transport.close(item.code)
                self._ended.set()
                return
            self._writer_busy = True
            try:
                await self.transport.send_text(item)
            finally:
                self._writer_busy = False
                self._outbox.sent(item)

    async def _reply(self, message: dict[str, Any], now: bool = True) -> None:
        """Send a method's result now when nothing is queued before it (it then overtakes
        the re-reads a change just scheduled, so a waiting worker starts sooner); else, or
        unless ``now``, queue it behind what is waiting, keeping the order."""
        try:
            text = framing.encode(message)
        except (TypeError, ValueError, RecursionError):  # a result JSON cannot carry
            log.exception("DDP method %s: its result cannot be sent", message.get("id"))
            failure = MeteorError(500, "Internal server error").to_wire()
            text = framing.encode(error_result(message["id"], failure))
        if now and self._outbox.empty() and not self._writer_busy:
            await self.transport.send_text(text)
        else:
            self._outbox.put(text, answer=True)

    # -- the connection's life --------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client leaves or the heartbeat gives up."""
        self._outbox.put(SERVER_ID_MESSAGE, answer=True)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._writer(), name=f"ddp-writer-{self.id}"),
            loop.create_task(self._processor(), name=f"ddp-processor-{self.id}"),
            loop.create_task(self._heartbeat(), name=f"ddp-heartbeat-{self.id}"),
            loop.create_task(self._reader(), name=f"ddp-reader-{self.id}"),
        ]
        try:
            await self._ended.wait()
        finally:
            await self._finish()

    async def stop(self, timeout: float) -> None:
        """Close for a server restart, losing no outcome: calls read so far are run and
        answered; calls read from now on are answered as not applied; then a close frame
        1012 follows every answer. Drops the connection if that takes over ``timeout`` s."""
        if self._ddp.stopping or self._ended.is_set():
            return
        self._ddp.stop()
        self._queue_work({"msg": "stop"})  # behind every request read so far
        try:
            async with asyncio.timeout(timeout):
                await self._ended.wait()
        except TimeoutError:
            log.warning("DDP connection %s did not close in time for the restart", self.id)
            self.transport.abort()
            self._ended.set()

    async def _finish(self) -> None:
        """Stop every task and drop everything the connection held, at once: the view (which
        refers back to `send`), the queued messages and requests."""
        self._closing = True
        self.services.dispatcher.connection_closed(self)
        self._updates.cancel()
        self._view.close()
        self._view = ClosedView()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._outbox.clear()
        self._work.clear()

    def _close_soon(self) -> None:
        """Close once what is queued has been sent (after `failed`)."""
        self._closing = True
        self._outbox.close(1000)

    async def _reader(self) -> None:
        try:
            while not self._closing:
                await self._wait_for_room()
                text = await self.transport.receive_text()
                if text is None:
                    return
                self._heartbeat_state.heard(time.monotonic())
                self._on_frame(text)
        finally:
            self._ended.set()

    async def _wait_for_room(self) -> None:
        """Backpressure: read no more while the client has `max_pending_calls` calls waiting
        or has not read `outgoing_soft_limit` bytes of our answers."""
        limit = self.limits.max_pending_calls
        while self._pending_calls >= limit or not self._outbox.below_soft:
            self._paused = True
            self._room.clear()
            await self._room.wait()
        if self._paused:
            self._paused = False
            self._heartbeat_state.heard(time.monotonic())  # not listening: no silence to count

    def _on_frame(self, text: str) -> None:
        """Act on one frame as `ddp.ServerConnection` reads it."""
        event = self._ddp.receive(text)
        if isinstance(event, ddp.Call):
            self._pending_calls += 1
            self._queue_work({"msg": "method", "call": event.call})
        elif isinstance(event, ddp.Request):
            self._queue_work(event.message)
        elif isinstance(event, ddp.Reply):
            for message in event.messages:
                self._answer(message)
        elif isinstance(event, ddp.Refused):
            self._queue_work({"msg": "refused", "replies": event.replies})  # answered in turn
        elif isinstance(event, ddp.Connected):
            self._handshaken.set()
            self.transport.settled()
            self._answer(connected(self.id))
        elif isinstance(event, ddp.Failed):
            self._answer(event.reply)
            self._close_soon()

    def _queue_work(self, message: dict[str, Any]) -> None:
        self._work.append(message)
        self._work_ready.set()

    async def _heartbeat(self) -> None:
        """Before the handshake: close if `connect` does not come within the handshake
        timeout. After it: ping a quiet client and close if it stays silent (unless its DDP
        version has no heartbeat)."""
        try:
            async with asyncio.timeout(self.limits.handshake_timeout):
                await self._handshaken.wait()
        except TimeoutError:
            log.info("closing DDP connection %s: no connect message in time", self.id)
            await self.transport.close(1008)
            self._ended.set()
            return
        if not has_heartbeat(self.version):
            return  # pre1 knows no ping: its clients would not answer one
        beat = self._heartbeat_state
        while True:
            await asyncio.sleep(max(beat.until_ping(time.monotonic()), 0.01))
            if self._paused or not beat.ping_due(time.monotonic()):
                continue
            self._answer(ping())
            beat.pinged(time.monotonic())
            await asyncio.sleep(beat.timeout)
            if beat.unanswered() and not self._paused:
                log.info("closing DDP connection %s: no answer to ping", self.id)
                await self.transport.close()
                self._ended.set()
                return
