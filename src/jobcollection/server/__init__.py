"""The network server: DDP over websocket, login, permissions, publications, HTTP API."""

from .app import Server
from .session import Limits

__all__ = ["Limits", "Server"]
