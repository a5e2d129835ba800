"""The DDP client's reconnect and resume: backoff, the resumed login, the subscriptions sent
again, the cache brought up to date, and the calls that may be sent again.

A call is sent again only when it provably was not applied: the server answered it with the
"not applied" error of a graceful restart, or closed with code 1012 (service restart) before
answering it. Any other loss leaves its outcome unknown: it fails with `ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections import defaultdict
from typing import TYPE_CHECKING, Final

from ..ddp.cache import Collections
from ..ddp.client import MethodState
from ..errors import ConnectionClosed, ProtocolError, RemoteError
from .changes import run_callback
from .connection import Connection, Pending

if TYPE_CHECKING:
    from .ddp import DdpClient

log = logging.getLogger("jobcollection.client.ddp")

_MAX_BACKOFF_EXPONENT: Final = 30


class NotSent(Exception):
    """The call never reached the wire; it may safely be sent on the next connection."""


class NotApplied(Exception):
    """The server says the call was not applied (it is restarting), or closed for a restart
    (code 1012) before answering it: it may safely be sent on the next connection."""


def backoff_delay(attempt: int, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait before reconnect ``attempt`` (0, 1, ...): doubling from ``initial`` up
    to ``maximum``, times ``jitter`` (drawn from [0.5, 1])."""
    exponent = min(attempt, _MAX_BACKOFF_EXPONENT)
    delay: float = min(maximum, initial * 2**exponent)
    return delay * jitter


def settle_lost_calls(conn: Connection, client_closed: bool) -> None:
    """The connection is gone: complete or fail each of its waiting calls."""
    states = {state.id: state for state in conn.ddp.lost()}
    waiters, conn.waiters = conn.waiters, {}
    for call_id, pending in waiters.items():
        state = states.get(call_id)
        if state is not None and state.result is not None:
            pending.finish(state)  # only `updated` was missing: the outcome is known
        elif pending.future.done():
            continue
        elif conn.restarting and not client_closed:
            pending.future.set_exception(NotApplied())  # unanswered at a clean 1012
        else:
            cause = "the client was closed" if client_closed else "the connection was lost"
            pending.future.set_exception(
                ConnectionClosed(
                    f"{cause} before the result of {pending.method!r} (call {call_id}) "
                    "arrived: its outcome is unknown, it may or may not have been applied "
                    "(it is not resent)"
                )
            )


def complete(conn: Connection, state: MethodState) -> None:
    """A call is done (`ddp.ClientConnection` said so): wake its waiter."""
    pending: Pending | None = conn.waiters.pop(state.id, None)
    if pending is None:
        return
    if state.not_applied:
        if not pending.future.done():
            pending.future.set_exception(NotApplied())
        return
    pending.finish(state)


async def resync(client: DdpClient, conn: Connection) -> None:
    """Log in again, resubscribe, and bring the cache up to date; then `connected`."""
    shadow: Collections = defaultdict(dict)
    client._shadow = shadow
    try:
        if client.token is not None:
            await _resume(client, conn, client.token)
        while unsent := [s for s in client._subs.values() if s.active and s._conn is not conn]:
            for sub in unsent:
                await client._send_sub(conn, sub)
            await client._wait_until(
                lambda: conn.closed or all(s.ready or not s.active for s in unsent)
            )
            if conn.closed:
                raise ConnectionClosed("connection lost while resubscribing")
        client._shadow = None
        for change in client._cache.reconcile(shadow):
            client._changes.emit(change)
        client._connected = True
        client._pulse()
    finally:
        client._shadow = None


async def _resume(client: DdpClient, conn: Connection, token: str) -> None:
    try:
        result = await client._invoke(conn, "login", [{"resume": token}], False)
    except RemoteError as error:
        log.warning("DDP client: resuming the login failed (%s); now logged out", error)
        client.resume_error = error
        client.user_id = client.token = None
    except (NotSent, NotApplied):
        raise ConnectionClosed("connection lost while logging in again") from None
    else:
        client._logged_in(result)


async def reconnect_loop(client: DdpClient) -> None:
    """Connect again with backoff until connected and resynchronized (or closed)."""
    attempt = 0
    try:
        while not client._closed:
            jitter = random.uniform(0.5, 1.0)
            await asyncio.sleep(
                backoff_delay(attempt, client.backoff_initial, client.backoff_max, jitter)
            )
            attempt += 1
            try:
                conn = await client._open()
            except ProtocolError as error:
                client._terminate(error)
                return
            except ConnectionClosed as error:
                log.info("DDP client: reconnect attempt %d failed: %s", attempt, error)
                continue
            except Exception:
                log.exception("DDP client: reconnect attempt %d failed", attempt)
                continue
            try:
                await resync(client, conn)
            except ConnectionClosed as error:
                log.info("DDP client: connection lost while resynchronizing: %s", error)
                conn.ws.transport.abort()
                continue
            except Exception:
                log.exception("DDP client: resynchronizing failed; reconnecting")
                conn.ws.transport.abort()
                continue
            break
    finally:
        client._reconnecting = False
    if client._connected:
        client.reconnects += 1
        log.info("DDP client: reconnected to %s (session %s)", client.url, client.session)
        for callback in list(client.on_reconnect):
            outcome = run_callback(callback, (), "on_reconnect")
            if inspect.isawaitable(outcome):
                try:
                    await outcome
                except Exception:
                    log.exception("DDP client: on_reconnect callback failed")
