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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from ..engine.manager import JobManager

log = logging.getLogger(__name__)

DEFAULT_DRAIN_TIMEOUT_S: Final = 10.0
CLOSE_TIMEOUT_S: Final = 5.0  # for the sessions to answer what they read and close
_RECHECK_S: Final = 0.25  # how often storage is asked whether the jobs still run


class Claims:
    """The jobs handed out through DDP connections and not yet seen ending, by connection.

    Fed where a session's results pass (`Session._note`); asked by the drain. A job may also
    end another way (cancelled, expired, completed over HTTP): `prune` asks storage.
    """

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], tuple[str, str]] = {}  # (root, id) -> run, conn

    def __len__(self) -> int:
        return len(self._running)

    def handed_out(self, connection: str, root: str, docs: object) -> None:
        """``docs``: a `getWork` result (wire documents with ``_id`` and ``runId``)."""
        if not isinstance(docs, list):
            return
        for doc in docs:
            if isinstance(doc, dict) and isinstance(doc.get("_id"), str):
                self._running[(root, doc["_id"])] = (str(doc.get("runId")), connection)

    def ended(self, root: str, job_id: object) -> None:
        if isinstance(job_id, str):
            self._running.pop((root, job_id), None)

    def forget(self, connection: str) -> None:
        """The connection closed: its worker cannot report through this server any more."""
        for key in [k for k, (_, conn) in self._running.items() if conn == connection]:
            del self._running[key]

    def prune(self, managers: Mapping[str, JobManager]) -> None:
        """Drop the jobs that no longer run with the run they were handed out with."""
        by_root: dict[str, list[str]] = {}
        for root, job_id in self._running:
            by_root.setdefault(root, []).append(job_id)
        for root, ids in by_root.items():
            manager = managers.get(root)
            if manager is None:
                continue
            with manager.storage.read(root) as tx:
                docs = {doc["_id"]: doc for doc in tx.get(ids)}
            for job_id in ids:
                doc = docs.get(job_id)
                run_id, _ = self._running[(root, job_id)]
                if doc is None or doc.get("status") != "running" or doc.get("runId") != run_id:
                    del self._running[(root, job_id)]


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
    claims: Claims,
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
    await _drain(claims, dispatcher.managers, drain_timeout, forced)
    stopping = [session.stop(CLOSE_TIMEOUT_S) for session in sessions()]
    if stopping:
        log.info("closing %d DDP connection(s) for the restart", len(stopping))
        await asyncio.gather(*stopping, return_exceptions=True)


async def _drain(
    claims: Claims,
    managers: Mapping[str, JobManager],
    timeout: float,
    forced: Callable[[], bool],
) -> None:
    started = time.monotonic()
    checked = 0.0
    if claims:
        log.info("draining: waiting for %d job(s) running on remote workers", len(claims))
    while claims and not forced():
        now = time.monotonic()
        if now - started >= timeout:
            log.warning(
                "stopping with %d job(s) still running on remote workers (drain timeout %g s)",
                len(claims),
                timeout,
            )
            return
        if now - checked >= _RECHECK_S:
            checked = now
            try:
                claims.prune(managers)
            except Exception:  # the database is busy: look again at the next check
                log.debug("checking the running jobs failed", exc_info=True)
            if not claims:
                break
        await asyncio.sleep(0.02)
