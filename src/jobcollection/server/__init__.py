"""The network server: DDP over websocket, login, permissions, publications, HTTP API."""
