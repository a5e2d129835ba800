"""The network server: DDP over websocket, login, permissions, publications, HTTP API."""

from .app import Server
from .limits import Limits

__all__ = ["Limits", "Server"]
