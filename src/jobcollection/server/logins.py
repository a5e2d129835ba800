"""The server's login entry point, shared by DDP sessions and the HTTP API.

`Logins.login` runs `Accounts.login` (bcrypt: in a worker thread) inside the `LoginThrottle`:
the throttle's delays are awaited on the event loop, so a slowed guesser holds neither the
loop nor a thread, only its own pending call. Only refused credentials (403: a wrong password,
an unknown user or token) count as failures; malformed options (400) cost no check and are
answered at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from .accounts import Accounts, LoginResult
from .login_throttle import LoginThrottle, account_key, source_key
from .meteor_error import MeteorError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[object]]
CREDENTIALS_REFUSED: Final = 403  # a wrong password, unknown user or unknown token


class Logins:
    """`login` / `logout` for remote callers, over one `Accounts`."""

    def __init__(
        self,
        accounts: Accounts,
        throttle: LoginThrottle | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.accounts = accounts
        self.throttle = throttle or LoginThrottle()
        self._sleep = sleep

    async def login(self, options: object, *, address: str) -> LoginResult:
        """Meteor's `login` from the host `address`; raises `MeteorError` when refused."""
        attempt = self.throttle.admit(source_key(address), account_key(options))
        if attempt.wait > 0:
            try:
                await self._sleep(attempt.wait)
            except BaseException:  # the caller went away before anything was checked
                self.throttle.succeeded(attempt)
                raise
        try:
            result = await asyncio.to_thread(self.accounts.login, options)
        except MeteorError as error:
            if error.code != CREDENTIALS_REFUSED:  # malformed options: no credential checked
                self.throttle.succeeded(attempt)
                raise
            delay = self.throttle.failed(attempt)
            if delay > 0:
                log.info("login from %s refused; answering in %.1f s", address, delay)
                await self._sleep(delay)
            raise
        except Exception:  # ours (e.g. the database), not the caller's
            self.throttle.succeeded(attempt)
            raise
        self.throttle.succeeded(attempt)
        return result

    async def login_wire(self, options: object, address: str) -> Mapping[str, object]:
        """`login`'s result as the wire shows it (for the HTTP API)."""
        return (await self.login(options, address=address)).to_wire()

    def logout(self, token: str | None) -> None:
        """Forget a connection's token (blocking: a database write)."""
        self.accounts.logout(token)
