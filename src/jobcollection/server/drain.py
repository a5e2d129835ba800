"""A graceful stop that loses no outcome: drain, then close every DDP session cleanly.

On the first SIGINT/SIGTERM (or `Server.stop()`), before uvicorn closes anything:

1. **Stop accepting** connections (the listening sockets close; open ones stay).
2. **Drain**: hand out no new work (`getWork` answers ``[]``, `jobDoneAndGetWork` claims
   nothing, the ``readyTypes`` doorbell stays quiet) while every other call is served, until
   no job handed out through this server's DDP connections is still running, or
   ``drain_timeout`` seconds pass (a second signal ends the wait). Workers that never resend
   anything (the original's node clients) thus finish and report their jobs first.
3. **Close the sessions**: each answers the calls it has already read, answers later ones
   with error 503 "Server is restarting; the call was not applied", then sends a close frame
   with code 1012 (service restart). Every call a client sent before that frame reached us
   has been answered before it, so a call still unanswered when a client sees the 1012 was
   not applied, and our client sends it again after reconnecting.

Only then does uvicorn finish its own shutdown. A session that cannot take its close frame
in time (a client that does not read) is dropped: its client sees no close frame and treats
its calls as of unknown outcome, as after any lost connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

DEFAULT_DRAIN_TIMEOUT_S: Final = 10.0
CLOSE_TIMEOUT_S: Final = 5.0  # for the sessions to answer what they read and close
_RECHECK_S: Final = 0.25  # how often storage is asked whether the jobs still run


class Stoppable(Protocol):
    async def stop(self, timeout: float) -> None: ...


class Listener(Protocol):
    def close(self) -> None: ...


class Hushable(Protocol):
    def hush(self) -> None: ...


async def graceful_stop(
    *,
    listeners: Iterable[Listener],
    dispatcher: Any,
    doorbells: Hushable | None,
    sessions: Callable[[], Sequence[Stoppable]],
    drain_timeout: float,
    forced: Callable[[], bool],
) -> None:
    """Steps 1-3 of the module doc."""
    for listener in listeners:
        listener.close()
    dispatcher.draining = True
    if doorbells is not None:
        doorbells.hush()
    await _drain(dispatcher.running_on_connections, drain_timeout, forced)
    stopping = [session.stop(CLOSE_TIMEOUT_S) for session in sessions()]
    if stopping:
        log.info("closing %d DDP connection(s) for the restart", len(stopping))
        await asyncio.gather(*stopping, return_exceptions=True)


async def _drain(
    running: Callable[[], Awaitable[int]], timeout: float, forced: Callable[[], bool]
) -> None:
    """Wait until `running()` is 0 (asked every `_RECHECK_S`), the timeout passes or the
    stop is forced."""
    started = time.monotonic()
    left = await _count(running)
    if left > 0:
        log.info("draining: waiting for %d job(s) running on remote workers", left)
    while left and not forced():
        if time.monotonic() - started >= timeout:
            count = str(left) if left > 0 else "some"  # unknown: the database was busy
            log.warning(
                "stopping with %s job(s) still running on remote workers (drain timeout %g s)",
                count,
                timeout,
            )
            return
        await asyncio.sleep(_RECHECK_S)
        left = await _count(running, left)


async def _count(running: Callable[[], Awaitable[int]], previous: int = -1) -> int:
    """`running()` (read off the event loop: `Dispatcher.running_on_connections`), or
    `previous` when the database is busy (look again at the next check; -1: not known yet)."""
    try:
        return await running()
    except Exception:
        log.debug("checking the running jobs failed", exc_info=True)
        return previous
