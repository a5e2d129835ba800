"""`ConnectionGuard`: the server's open connections, capped, with a deadline for each request.

Every accepted connection is *admitted* (or refused at the cap) and is, at any moment:

- **waiting**: we wait for the peer to finish saying what it wants (an HTTP request's headers
  and body; after a websocket upgrade, the DDP `connect` message). The whole of it must
  arrive within ``handshake_timeout`` seconds, else the connection is closed (slow or
  silent peers, slowloris);
- **idle**: a kept-alive HTTP connection between requests (uvicorn closes it after its
  keep-alive timeout);
- **busy**: a request is being answered, or a DDP session is open.

At ``max_connections`` a new connection takes the place of the oldest waiting or idle one,
if that one has been so for at least ``EVICTABLE_AFTER_S`` (a real client sends its request
as soon as it connects; a connection still silent by then is slow, idle or hostile). Only
when every connection is busy, or just arrived, is the new one refused (503). So connections
that hold a slot without asking for anything cannot lock real clients out (a newcomer is
the last to be taken for another), and the file descriptors in use stay bounded.

Nothing here knows HTTP: the uvicorn protocols (`uvicorn_server.py`) report each connection's
state; the guard runs the timers and picks whom to drop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

log = logging.getLogger(__name__)

EVICTABLE_AFTER_S: Final = 0.1
MAX_LINGERING_REFUSALS: Final = 64  # refused connections kept open for their 503 to be read


class Closable(Protocol):
    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...


@dataclass(eq=False, slots=True)
class _Entry:
    on_deadline: Callable[[], None]
    since: float = field(default_factory=time.monotonic)  # in its present state
    timer: asyncio.TimerHandle | None = None


class ConnectionGuard:
    """The open connections of one server (see the module doc). Loop thread only."""

    def __init__(self, max_connections: int, handshake_timeout: float) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self._open: dict[Closable, _Entry] = {}
        self._evictable: dict[Closable, None] = {}  # waiting or idle, oldest first
        self.lingering = 0  # refused connections still open (see `may_linger`)
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self._refusals_logged = 0.0  # when a refusal was last logged

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, conn: Closable, on_deadline: Callable[[], None]) -> bool:
        """Count a new connection in (waiting for its first request); False at the cap when
        no slow connection can make room (the caller refuses it)."""
        while len(self._open) >= self.max_connections:
            if not self._evict_one():
                self.refused += 1
                return False
        self._open[conn] = _Entry(on_deadline)
        self.waiting(conn)
        return True

    def _evict_one(self) -> bool:
        now = time.monotonic()
        for conn in self._evictable:
            if now - self._open[conn].since < EVICTABLE_AFTER_S:
                return False  # the oldest is fresh: so are the others
            self.evicted += 1
            self.closed(conn)
            conn.abort()
            return True
        return False

    def waiting(self, conn: Closable) -> None:
        """The peer owes us a request (or the DDP handshake): start its deadline, unless
        one runs already."""
        entry = self._open.get(conn)
        if entry is None or entry.timer is not None:
            return
        entry.since = time.monotonic()
        entry.timer = asyncio.get_running_loop().call_later(
            self.handshake_timeout, self._expired, conn
        )
        self._evictable.pop(conn, None)
        self._evictable[conn] = None

    def idle(self, conn: Closable) -> None:
        """Between two requests of a kept-alive connection."""
        entry = self._open.get(conn)
        if entry is None:
            return
        self._cancel(entry)
        entry.since = time.monotonic()
        self._evictable.pop(conn, None)
        self._evictable[conn] = None

    def busy(self, conn: Closable) -> None:
        """A request is being answered, or the DDP session is open: no deadline, kept."""
        entry = self._open.get(conn)
        if entry is not None:
            self._cancel(entry)
            self._evictable.pop(conn, None)

    def closed(self, conn: Closable) -> None:
        entry = self._open.pop(conn, None)
        if entry is not None:
            self._cancel(entry)
        self._evictable.pop(conn, None)

    def log_refusal(self) -> None:
        """One warning per 10 s at most, with the count so far: an attack must not flood the
        log."""
        now = time.monotonic()
        if now - self._refusals_logged >= 10:
            self._refusals_logged = now
            log.warning(
                "refusing connections: %d are open (max_connections); %d refused so far",
                len(self._open),
                self.refused,
            )

    def may_linger(self) -> bool:
        """Whether a refused connection may stay open a moment so its 503 can be read."""
        return self.lingering < MAX_LINGERING_REFUSALS

    def _expired(self, conn: Closable) -> None:
        entry = self._open.get(conn)
        if entry is None:
            return
        entry.timer = None
        self.timed_out += 1
        self.closed(conn)
        if not conn.is_closing():
            entry.on_deadline()

    @staticmethod
    def _cancel(entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
