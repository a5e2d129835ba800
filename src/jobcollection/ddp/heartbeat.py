"""When to ping a quiet peer and when its silence means it is gone; the same rule on both ends.

Time is passed in (monotonic seconds); the driver sleeps and asks again. A peer is *quiet*
after ``interval`` seconds without a frame from it; once pinged, it is *gone* if nothing at
all (a pong or anything else) arrives within ``timeout`` seconds.
"""

from __future__ import annotations


def has_heartbeat(version: str | None) -> bool:
    """Whether a session of this DDP version is pinged: `pre1` has no ping/pong messages."""
    return version != "pre1"


class Heartbeat:
    __slots__ = ("interval", "last_heard", "pinged_at", "timeout")

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError(f"heartbeat interval and timeout must be > 0: {interval}, {timeout}")
        self.interval = interval
        self.timeout = timeout
        self.last_heard = now
        self.pinged_at: float | None = None

    def heard(self, now: float) -> None:
        """A frame arrived (or we were not listening: there is no silence to count)."""
        self.last_heard = now

    def until_ping(self, now: float) -> float:
        """Seconds until the peer is quiet enough to ping (<= 0: now)."""
        return self.interval - (now - self.last_heard)

    def ping_due(self, now: float) -> bool:
        return now - self.last_heard >= self.interval

    def pinged(self, now: float) -> None:
        self.pinged_at = now

    def unanswered(self) -> bool:
        """Whether nothing arrived since the last ping (ask ``timeout`` seconds after it)."""
        return self.pinged_at is not None and self.last_heard < self.pinged_at
