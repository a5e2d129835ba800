"""A subscription of the DDP client (`DdpClient.subscribe` returns it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import websockets.exceptions as wsexc

from ..core import ejson
from ..ddp.messages import unsub
from ..errors import RemoteError
from .connection import Connection

if TYPE_CHECKING:
    from .ddp import DdpClient


class Subscription:
    """An active subscription; `DdpClient.subscribe` returns it once the server is ready.

    ``ready`` is True while the current connection has delivered its documents; after a
    reconnect the client subscribes again by itself. ``error`` is set when the server ended it.
    """

    def __init__(self, client: DdpClient, sub_id: str, name: str, params: list[Any]) -> None:
        self.client = client
        self.id = sub_id
        self.name = name
        self.params = params
        self.ready = False
        self.active = True  # False once stopped (by us or by the server)
        self.error: RemoteError | None = None
        self._conn: Connection | None = None  # the connection it was last sent on
        self._ended = False  # the server's `nosub` arrived

    async def stop(self) -> None:
        """Unsubscribe and wait for the server to confirm (its documents are removed)."""
        if not self.active:
            return
        self.active = False
        self.ready = False
        conn = self._conn
        if conn is None or not conn.can_send():
            self.client._subs.pop(self.id, None)
            return
        try:
            await conn.ws.send(ejson.dumps(unsub(self.id)))
        except wsexc.ConnectionClosed:
            self.client._subs.pop(self.id, None)
            return
        await self.client._wait_until(lambda: self._ended or conn.closed)
        self.client._subs.pop(self.id, None)

    def __repr__(self) -> str:
        state = "ready" if self.ready else ("active" if self.active else "stopped")
        return f"<Subscription {self.name!r} {self.id} {state}>"
