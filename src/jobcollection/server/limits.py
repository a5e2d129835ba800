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
    """

    max_message_size: int = 1 << 20
    max_subscriptions: int = 100
    max_pending_calls: int = 100
    outgoing_soft_limit: int = 1 << 20
    outgoing_hard_limit: int = 16 << 20
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 15.0
