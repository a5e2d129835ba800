"""The DDP client's reader: every frame of a connection through `ddp.ClientConnection`, and
the events acted on (calls completed, subscriptions ready or ended, the cache updated)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import websockets.exceptions as wsexc

from ..core import ejson
from ..ddp.cache import Cache
from ..ddp.client import Data, MethodsDone, SendPong, ServerError, SubEnded, SubsReady
from ..ddp.messages import CLOSE_SERVICE_RESTART
from . import reconnect
from .connection import Connection, remote_error

if TYPE_CHECKING:
    from .ddp import DdpClient

log = logging.getLogger("jobcollection.client.ddp")


async def read(client: DdpClient, conn: Connection) -> None:
    ws = conn.ws
    try:
        async for frame in ws:
            conn.last_heard = time.monotonic()
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            try:
                message = ejson.loads(text)
            except ValueError:
                log.warning("DDP client: ignoring a frame that is not JSON: %.200s", text)
                continue
            if not isinstance(message, dict):
                continue
            event = conn.ddp.receive(message)
            if isinstance(event, SendPong):
                await ws.send(ejson.dumps(event.message))
                continue
            try:
                if type(event) is Data:  # the most frequent: no detour
                    _on_data(client, event.message)
                else:
                    _on_event(client, conn, event)
            except Exception:
                log.exception("DDP client: failed to handle %.200s", text)
    except wsexc.ConnectionClosed:
        pass
    except Exception:
        log.exception("DDP client: the reader failed")
        conn.ws.transport.abort()
    finally:
        closing = conn.ws.protocol.close_rcvd
        if closing is not None and closing.code == CLOSE_SERVICE_RESTART:
            conn.restarting = True
            log.info("DDP client: %s is restarting; unanswered calls will be resent", client.url)
        client._connection_lost(conn)


def _on_event(client: DdpClient, conn: Connection, event: object) -> None:
    if isinstance(event, Data):  # the most frequent, first
        _on_data(client, event.message)
    elif isinstance(event, MethodsDone):
        for state in event.calls:
            reconnect.complete(conn, state)
    elif isinstance(event, SubsReady):
        for sub_id in event.ids:
            sub = client._subs.get(sub_id)
            if sub is not None and sub.active:
                sub.ready = True
        client._pulse()
    elif isinstance(event, SubEnded):
        _on_nosub(client, event)
    elif isinstance(event, ServerError):
        log.warning("DDP client: the server refused a message: %s", event.reason)
    # pong (hearing it is all that counts), server_id and unknown messages: nothing to do


def _on_nosub(client: DdpClient, event: SubEnded) -> None:
    sub = client._subs.pop(event.id, None)
    if sub is None:
        return
    sub._ended = True
    sub.active = False
    sub.ready = False
    if event.error is not None:
        sub.error = remote_error(event.error)
        log.warning("DDP client: subscription %r ended: %s", sub.name, sub.error)
    client._pulse()


# -- the local cache ----------------------------------------------------------------------


def _on_data(client: DdpClient, message: dict[str, Any]) -> None:
    if client._shadow is not None:
        Cache(client._shadow).apply(message)  # the resync emits the difference at the end
        return
    change = client._cache.apply(message)
    if change is not None:
        if client._changes.listening():
            client._changes.emit(change)
    elif message.get("msg") == "changed":
        log.debug(
            "DDP client: change of unknown document %s/%s",
            message.get("collection"),
            message.get("id"),
        )
