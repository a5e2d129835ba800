"""The connections of one `PgStorage`: a `psycopg_pool.ConnectionPool`, and what is done while
the server cannot be reached and once it can be again.

A pool alone serves a server that went away badly: a caller waits its whole `POOL_WAIT_S` for
a connection the pool cannot make, then learns only that it "couldn't get a connection"; and
the pool's own reconnection backs off (1 s, 2 s, 4 s, ... for minutes), so after a long outage
it may come back long after the server did. So here:

- When a pooled connection turns out broken (the server restarted, or went away), or the pool
  cannot hand one out in time, the storage becomes *suspect*: callers wait only `QUICK_S` for
  a pooled connection, then connect by themselves (a *probe*).
- A probe that fails marks an *outage*, with its reason (e.g. "connection refused"). During an
  outage, a call fails at once with `StorageUnavailable` naming the reason and how long it has
  lasted; one call in `PROBE_INTERVAL_S` probes again.
- A probe that succeeds ends the outage: its connection serves its caller (then is closed),
  and the pool is replaced by a fresh one, which connects at once instead of at the end of a
  backoff. The storage stays suspect until the pool hands out a connection again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import StorageUnavailable

log = logging.getLogger(__name__)

POOL_SIZE = 8
CONNECT_TIMEOUT_S = 5
POOL_WAIT_S = 5.0  # how long a caller waits for a pooled connection before probing the server
QUICK_S = 0.05  # ... and how long while the storage is suspect
PROBE_INTERVAL_S = 0.25  # during an outage, one call in this interval tries to connect


def configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET synchronous_commit = on")


def first_line(error: BaseException) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]


class Connections:
    """Hands out connections to one database (see the module doc)."""

    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo = conninfo
        self._name = name
        self._suspect = False
        self._outage: str | None = None  # why the server cannot be reached, while it cannot
        self._outage_since = 0.0
        self._next_probe = 0.0
        self._probe_lock = threading.Lock()
        self._closed = False
        self.pool = self._new_pool()

    def _new_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            configure=configure,
            timeout=POOL_WAIT_S,
            name=f"jobcollection {self._name}",
            open=False,
        )
        pool.open(wait=False)
        return pool

    @property
    def outage(self) -> str | None:
        """Why the server cannot be reached now (None: it can, as far as is known)."""
        return self._outage

    def get(self) -> tuple[psycopg.Connection[Any], ConnectionPool | None]:
        """A connection and the pool to give it back to (None: close it after use)."""
        pool = self.pool
        try:
            conn = pool.getconn(timeout=QUICK_S if self._suspect else POOL_WAIT_S)
        except PoolTimeout:
            # (A closed pool, replaced meanwhile, raises PoolClosed: a probe serves this call.)
            pass
        except psycopg.OperationalError:
            if not pool.closed:
                raise
        else:
            self._suspect = False
            return conn, pool
        self._suspect = True
        return self._probe(), None

    def give_back(self, conn: psycopg.Connection[Any], pool: ConnectionPool | None) -> None:
        if pool is not None:
            pool.putconn(conn)  # (a broken one is discarded and replaced by the pool)
        else:
            conn.close()

    def broken(self) -> None:
        """A pooled connection was found broken: from now on, do not wait long for another."""
        self._suspect = True

    def _probe(self) -> psycopg.Connection[Any]:
        """A connection made now, outside the pool; or, during an outage and between two
        probes, `StorageUnavailable` at once."""
        with self._probe_lock:
            now = time.monotonic()
            if self._outage is not None and now < self._next_probe:
                raise self._unavailable(now)
            try:
                conn = psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                )
                configure(conn)
            except psycopg.Error as error:
                now = time.monotonic()
                if self._outage is None:
                    self._outage_since = now
                    log.warning("PostgreSQL database %s is unreachable: %s", self._name, error)
                self._outage = first_line(error)
                self._next_probe = now + PROBE_INTERVAL_S
                raise self._unavailable(now) from error
            if self._outage is not None:
                log.warning(
                    "PostgreSQL database %s is reachable again (after %.1f s)",
                    self._name,
                    time.monotonic() - self._outage_since,
                )
                self._outage = None
                self._replace_pool()
            return conn

    def _unavailable(self, now: float) -> StorageUnavailable:
        return StorageUnavailable(
            f"PostgreSQL database {self._name} is unavailable: {self._outage} "
            f"(for {now - self._outage_since:.1f} s)",
            transient=True,
        )

    def _replace_pool(self) -> None:
        """A fresh pool, connecting now; the old one (reconnecting with a backoff) is closed
        in the background (a connection still out of it is closed when given back)."""
        if self._closed:
            return
        old, self.pool = self.pool, self._new_pool()
        threading.Thread(target=old.close, name="jobcollection-pg-old-pool", daemon=True).start()

    def close(self) -> None:
        with self._probe_lock:
            self._closed = True
        self.pool.close()
