"""Slowing down password guessing without locking anyone out.

Failed logins are counted twice, per source address and per account, as scores that halve
every `Backoff.half_life` seconds (so nothing needs a timer to be forgotten). A score past
`Backoff.free` failures buys a delay that doubles with each further failure, up to
`Backoff.longest`:

- **per address**, an attempt waits that long (after the address's previous attempt began)
  before it is checked at all. A client that waits for each answer is only ever slowed; only
  attempts piling up from one address beyond `LoginThrottle.max_wait` are refused, with the
  time to wait.
- **per account**, a *failed* attempt is answered that much later. A correct password is
  never delayed by the account's score, so guesses from elsewhere cannot keep the owner out.

An attempt counts as failed from the moment it is admitted and is withdrawn if it succeeds, so
concurrent guesses cannot slip past the count while bcrypt runs. Accounts are keyed by the
name or address the client typed (case-folded), whether or not such a user exists, so the
throttle's behaviour does not reveal who exists either.

The state is bounded: at most `capacity` keys per table; past that the key touched least
recently is forgotten. Pure logic with an injected clock; call it from one thread (the server
calls it on its event loop).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..errors import ValidationError
from .meteor_error import MeteorError

TOO_MANY_REQUESTS_CODE: Final = 403  # Meteor's rate limiter answers a 403 too
_MAX_DOUBLINGS: Final = 60  # 2**60 seconds is forever; keeps the float arithmetic finite


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays for one kind of key: none for the first `free` failures, then `first` seconds,
    doubling with each failure up to `longest`; failures are half forgotten after
    `half_life` seconds."""

    free: int
    first: float
    longest: float
    half_life: float

    def __post_init__(self) -> None:
        if self.free < 0 or not 0 < self.first <= self.longest or self.half_life <= 0:
            raise ValidationError(
                "login backoff: needs free >= 0, 0 < first <= longest and half_life > 0, "
                f"got {self}"
            )

    def delay(self, failures: float) -> float:
        """Seconds of delay after `failures` recent failures (a decayed score counts as the
        nearest whole number: a failure a few seconds old still counts as one)."""
        over = math.floor(failures + 0.5) - self.free
        if over < 0:
            return 0.0
        return min(self.longest, self.first * 2.0 ** min(over, _MAX_DOUBLINGS))

    def decayed(self, score: float, elapsed: float) -> float:
        return score * math.pow(0.5, max(elapsed, 0.0) / self.half_life)


# Meteor allows 5 logins per 10 s per connection. Ours: 10 failures free per address and per
# account, then 1 s, 2 s, 4 s ... up to 30 s; a score halves every 10 minutes, so a guesser at
# the longest delay stays there (about 120 guesses an hour from one address).
ADDRESS_BACKOFF: Final = Backoff(free=10, first=1.0, longest=30.0, half_life=600.0)
ACCOUNT_BACKOFF: Final = Backoff(free=10, first=1.0, longest=30.0, half_life=600.0)
CAPACITY: Final = 10_000  # keys remembered per table (about 2 MB each at most)


def too_many_requests(wait: float) -> MeteorError:
    """Meteor's rate-limiter error, telling how many seconds to wait."""
    seconds = max(1, math.ceil(wait))
    return MeteorError(
        TOO_MANY_REQUESTS_CODE,
        "Error, too many requests. Please slow down. "
        f"You must wait {seconds} seconds before trying again.",
    )


def source_key(host: str) -> str:
    """Who an attempt comes from: the IP address, except that an IPv6 host counts as its /64
    network (one machine usually has all of it); anything else (a Unix socket) as given."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def host_of(client: str) -> str:
    """The host part of a ``host:port`` peer name (IPv6 hosts contain colons too)."""
    host, colon, port = client.rpartition(":")
    return host if colon and port.isdigit() else client


def account_key(options: object) -> str | None:
    """The account a password login names (the name, address or id as typed, case-folded),
    or None for other logins (resume tokens, malformed options)."""
    if not isinstance(options, dict) or "password" not in options:
        return None
    user = options.get("user")
    if not isinstance(user, dict) or len(user) != 1:
        return None
    ((kind, value),) = user.items()
    if not isinstance(value, str):
        return None
    return f"{kind}:{value.casefold()}"


@dataclass(slots=True)
class _Score:
    failures: float  # decayed to `stamp`
    stamp: float
    last_start: float = -math.inf  # when the key's previous attempt was let through


class _Scores:
    """Decaying failure scores by key; at most `capacity` keys (least recently touched go)."""

    def __init__(self, backoff: Backoff, capacity: int) -> None:
        self.backoff = backoff
        self.capacity = capacity
        self._scores: OrderedDict[str, _Score] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scores)

    def touch(self, key: str, now: float) -> _Score:
        """The key's score, decayed to `now` (a new key starts at zero)."""
        score = self._scores.get(key)
        if score is None:
            score = self._scores[key] = _Score(0.0, now)
            while len(self._scores) > self.capacity:
                self._scores.popitem(last=False)
        else:
            self._scores.move_to_end(key)
            score.failures = self.backoff.decayed(score.failures, now - score.stamp)
            score.stamp = now
        return score

    def withdraw(self, key: str, counted_at: float, now: float) -> None:
        """Take back one failure counted at `counted_at` (it had decayed since)."""
        score = self._scores.get(key)
        if score is None:
            return  # forgotten meanwhile
        score.failures = self.backoff.decayed(score.failures, now - score.stamp)
        score.stamp = now
        score.failures = max(0.0, score.failures - self.backoff.decayed(1.0, now - counted_at))


@dataclass(frozen=True, slots=True)
class Attempt:
    """An admitted login attempt: where it came from, which account it named, when."""

    source: str
    account: str | None
    admitted: float
    wait: float  # seconds to wait before checking it


class LoginThrottle:
    """Per-address and per-account login backoff (see the module docstring)."""

    def __init__(
        self,
        *,
        per_address: Backoff = ADDRESS_BACKOFF,
        per_account: Backoff = ACCOUNT_BACKOFF,
        capacity: int = CAPACITY,
        max_wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValidationError(f"login throttle: capacity must be >= 1, got {capacity}")
        self._sources = _Scores(per_address, capacity)
        self._accounts = _Scores(per_account, capacity)
        # A client waiting for each answer never waits more than one longest delay.
        self.max_wait = 2 * per_address.longest if max_wait is None else max_wait
        self._clock = clock

    @property
    def sizes(self) -> tuple[int, int]:
        """How many addresses and accounts are remembered."""
        return len(self._sources), len(self._accounts)

    def admit(self, source: str, account: str | None) -> Attempt:
        """Count an attempt as failed until it succeeds; `Attempt.wait` says how long it must
        wait before being checked. Raises `MeteorError` when that would exceed `max_wait`."""
        now = self._clock()
        score = self._sources.touch(source, now)
        start = max(now, score.last_start + self._sources.backoff.delay(score.failures))
        if start - now > self.max_wait:
            raise too_many_requests(start - now - self.max_wait)
        score.last_start = start
        score.failures += 1.0
        if account is not None:
            self._accounts.touch(account, now).failures += 1.0
        return Attempt(source, account, now, start - now)

    def succeeded(self, attempt: Attempt) -> None:
        """The attempt was right (or never checked): it does not count as a failure."""
        now = self._clock()
        self._sources.withdraw(attempt.source, attempt.admitted, now)
        if attempt.account is not None:
            self._accounts.withdraw(attempt.account, attempt.admitted, now)

    def failed(self, attempt: Attempt) -> float:
        """The attempt failed (it stays counted); seconds to wait before answering it."""
        if attempt.account is None:
            return 0.0
        score = self._accounts.touch(attempt.account, self._clock())
        return self._accounts.backoff.delay(max(0.0, score.failures - 1.0))
