"""What a DDP `Session` needs from the rest of the server, as small protocols: its transport,
its view of the publications, the accounts, and the bundle `SessionServices`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.permissions import Caller
from .dispatch import Dispatcher
from .limits import Limits


class Transport(Protocol):
    async def receive_text(self) -> str | None:
        """The next text frame, or None once the peer has gone."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int = 1000) -> None:
        """A close frame after what was sent before (dropping the connection if it cannot
        be written in time)."""

    def abort(self) -> None:
        """Drop the connection now."""

    def settled(self) -> None:
        """The DDP handshake is done (the server's handshake deadline no longer applies)."""


class ConnectionView(Protocol):
    """What the session needs from the publications (see `publications.py`)."""

    async def subscribe(self, sub_id: str, name: str, params: list[Any], caller: Caller) -> None:
        """Send the subscription's initial documents; raises MeteorError if refused."""

    def unsubscribe(self, sub_id: str) -> None: ...

    async def rerun(self, caller: Caller) -> dict[str, Exception]:
        """Re-run every subscription for a new user; returns those that now fail (ended)."""

    async def flush(self) -> None: ...

    def close(self) -> None: ...


class ClosedView:
    """The view of a finished session: it holds nothing (in particular not the session)."""

    async def subscribe(self, sub_id: str, name: str, params: list[Any], caller: Caller) -> None:
        return None

    def unsubscribe(self, sub_id: str) -> None:
        return None

    async def rerun(self, caller: Caller) -> dict[str, Exception]:
        return {}

    async def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class LoginService(Protocol):
    """What the session needs from the accounts (see `accounts.py`)."""

    async def login(self, options: object, *, address: str) -> Any:
        """A login from host `address`; returns an object with user_id, username, token,
        to_wire()."""

    def logout(self, token: str | None) -> None: ...


ViewFactory = Callable[[Callable[[dict[str, Any]], None]], ConnectionView]


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What a session serves: job methods, accounts (optional) and publications."""

    dispatcher: Dispatcher
    accounts: LoginService | None
    views: ViewFactory
    limits: Limits
