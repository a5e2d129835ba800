"""The network server: DDP over websocket, login, permissions, publications, HTTP API.

`Server` and `Limits` are imported on first use, so that a module of this package (the
accounts, for the `users` command) can be used without loading the server itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Server
    from .limits import Limits

_HOMES = {"Server": ".app", "Limits": ".limits"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


__all__ = ["Limits", "Server"]
