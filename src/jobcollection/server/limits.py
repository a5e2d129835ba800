"""`Limits`: what one connection (and the server as a whole) may take of the server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits. Going past one means backpressure (the client waits) or a clear
    error reply, never a crash or unbounded memory.

    Per connection:

    - ``max_message_size``: characters per DDP message (a larger one gets an error reply).
    - ``max_subscriptions``: subscriptions at once (more get `nosub` 429).
    - ``max_pending_calls``: method calls read ahead of their answers; while this many wait,
      the server reads no more from that client (it is never refused for pipelining).
    - ``outgoing_soft_limit``: bytes queued for a client before the server stops answering
      and reading it until it reads (a client that never reads just stalls).
    - ``outgoing_hard_limit``: bytes of published data a subscriber may fall behind before it
      is disconnected (it reconnects and resubscribes).
    - ``heartbeat_interval``: seconds of silence before the server pings (DDP versions
      with heartbeats); ``heartbeat_timeout``: seconds after that ping before it closes.
    - ``handshake_timeout``: seconds a client has, from connecting, to send a whole HTTP
      request (headers and body; each later request on a kept-alive connection has as
      long from its first byte), or to upgrade to a websocket and send DDP `connect`.

    For the server as a whole (when it runs on uvicorn, as `Server.run`/`serve` do):

    - ``max_connections``: open connections at most (HTTP and websocket). At the limit a new
      connection replaces the oldest one that has been idle or slow to send its request for
      a second or more; if there is none, it is refused with a 503. Never more than the
      process's file descriptor limit allows (less a reserve).
    """

    max_message_size: int = 1 << 20
    max_subscriptions: int = 100
    max_pending_calls: int = 100
    outgoing_soft_limit: int = 1 << 20
    outgoing_hard_limit: int = 16 << 20
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 15.0
    handshake_timeout: float = 10.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_message_size", "max_subscriptions", "max_pending_calls"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_connections < 1:
            raise ValueError(
                f"Limits.max_connections must be at least 1, got {self.max_connections}"
            )
        for name in ("heartbeat_interval", "heartbeat_timeout", "handshake_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.outgoing_soft_limit <= self.outgoing_hard_limit:
            raise ValueError(
                "Limits: outgoing_soft_limit must be positive and at most outgoing_hard_limit"
            )
