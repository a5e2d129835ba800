"""`Server`: the ASGI application that serves job collections over DDP and HTTP.

Routes: `/websocket` (DDP), `GET /sockjs/info` (so SockJS-minded clients fall back to the plain
websocket), `/api/...` (the HTTP JSON API and its OpenAPI document). A `Server` is itself an
ASGI application, so it mounts into Starlette/FastAPI; `run()` serves it with uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from datetime import timedelta
from types import FrameType
from typing import Any

from ..api._portal import new_event_loop
from ..api.collection import JobCollection
from ..core.permissions import Caller
from ..core.workers import check_lost_after
from .connection_workers import ConnectionWorkers
from .dispatch import Dispatcher
from .login_throttle import LoginThrottle
from .logins import Logins
from .session import Limits, Session, SessionServices

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
SelectorFunction = Callable[..., object]
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _AsgiWebSocket:
    """The session's transport over an ASGI websocket."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive, self._send = receive, send
        self.closed = False

    async def receive_text(self) -> str | None:
        while not self.closed:
            event = await self._receive()
            kind = event["type"]
            if kind == "websocket.receive":
                text = event.get("text")
                if text is None:
                    data = event.get("bytes") or b""
                    text = data.decode("utf-8", errors="replace")
                return str(text)
            if kind == "websocket.disconnect":
                self.closed = True
        return None

    async def send_text(self, text: str) -> None:
        if not self.closed:
            try:
                await self._send({"type": "websocket.send", "text": text})
            except Exception:  # the peer went away mid-send (uvicorn raises on a dead socket)
                self.closed = True

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                await self._send({"type": "websocket.close", "code": 1000})
            except Exception:
                log.debug("websocket already closed", exc_info=True)


class Server:
    """Serve job collections to remote clients: ``Server(jc1, jc2).run(port=3000)``.

    Remote calls are denied until the collections' rules allow them (``jc.allow(...)``).
    Accounts (users and login tokens) live in the first collection's database; failed logins
    are slowed by ``login_throttle`` (default: `LoginThrottle()`, see `login_throttle.py`).
    """

    def __init__(
        self,
        *collections: JobCollection,
        limits: Limits | None = None,
        accounts: bool = True,
        login_throttle: LoginThrottle | None = None,
        lost_after: int | timedelta | None = None,
    ) -> None:
        """`lost_after`: how long a remote worker's connection may be gone (or a worker
        silent) before its running jobs are failed and retried; default: each collection's
        (30 s unless set). A client may ask for its own (`process_jobs(lost_after=...)`)."""
        if not collections:
            raise ValueError("Server needs at least one JobCollection")
        self.collections: tuple[JobCollection, ...] = collections
        self.limits = limits or Limits()
        managers = [jc.manager for jc in collections]
        lapse = None if lost_after is None else check_lost_after(lost_after)
        self.dispatcher = Dispatcher(managers, ConnectionWorkers(lapse))
        self.accounts = _open_accounts(collections[0]) if accounts else None
        self.logins = None if self.accounts is None else Logins(self.accounts, login_throttle)
        self._published: list[tuple[str, SelectorFunction, str]] = []
        self._registry: Any = None
        self._http: Any = None
        self._uvicorn: Any = None

    # -- configuration ----------------------------------------------------------------------

    def publish(self, name: str, selector: SelectorFunction, collection: str | None = None) -> None:
        """Add a publication: ``selector(user_id, *params)`` returns the selector of the jobs
        the subscriber sees (of ``collection``, default the first), or None for none."""
        if not isinstance(name, str) or not name:
            raise ValueError("publication name must be a non-empty string")
        root = collection or self.collections[0].root
        if root not in self.dispatcher.managers:
            raise ValueError(f"publish({name!r}): collection {root!r} is not served")
        if self._registry is not None:
            self._registry.publish(name, selector, collection=root)
        self._published.append((name, selector, root))

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, path = scope["type"], _relative_path(scope)
        if kind == "websocket":
            if path.rstrip("/") == "/websocket":
                await self._websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
        elif kind == "http":
            if path.rstrip("/") == "/sockjs/info":
                await _json(send, 200, _sockjs_info())
            elif path == "/api" or path.startswith("/api/"):
                await self._http_api()(scope, receive, send)
            else:
                await _json(send, 404, {"error": f"not found: {path}"})
        elif kind == "lifespan":
            await _lifespan(receive, send)

    def _views(self) -> Any:
        if self._registry is None:
            from .publications import PublicationRegistry

            self._registry = PublicationRegistry(
                self.dispatcher.managers.values(), asyncio.get_running_loop()
            )
            for name, selector, root in self._published:
                self._registry.publish(name, selector, collection=root)
        return self._registry.connection

    def _http_api(self) -> Any:
        if self._http is None:
            from .http_api import HttpApi

            accounts, logins = self.accounts, self.logins
            self._http = HttpApi(
                self.dispatcher,
                login=None if logins is None else logins.login_wire,
                authenticate=None if accounts is None else accounts.resume,
                logout=None if accounts is None else accounts.logout,
                max_body=self.limits.max_message_size,
            )
        return self._http

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        client = scope.get("client") or ("", 0)
        services = SessionServices(self.dispatcher, self.logins, self._views(), self.limits)
        transport = _AsgiWebSocket(receive, send)
        await Session(services, transport, f"{client[0]}:{client[1]}").run()
        await transport.close()

    # -- running ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask a running `serve()` to finish (thread-safe; what SIGINT/SIGTERM do)."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def start_job_servers(self) -> None:
        for jc in self.collections:
            jc.start_job_server()

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 3000,
        *,
        ready: Callable[[str], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        """Start every collection's job server and serve until SIGINT/SIGTERM (on uvloop
        when it is installed: its transports cut the per-message overhead)."""
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(self.serve(host, port, ready=ready, log_level=log_level))

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 3000,
        *,
        ready: Callable[[str], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        """Serve until SIGINT/SIGTERM; ``ready(url)`` is called once listening (port 0 picks a
        free port, and the URL tells which)."""
        import uvicorn

        self.start_job_servers()
        if self.accounts is not None:
            self.accounts.expire_tokens()  # expired tokens are refused anyway; this tidies
        server = self._uvicorn = _new_uvicorn_server(
            uvicorn.Config(self, **uvicorn_options(host, port, self.limits, log_level))
        )
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.005)
        if server.started and ready is not None:
            bound = server.servers[0].sockets[0].getsockname()
            ready(f"http://{bound[0]}:{bound[1]}")
        await serving


def _uvicorn_server_class() -> type:
    import uvicorn

    class QuietStopServer(uvicorn.Server):
        """uvicorn's server, except that SIGINT/SIGTERM end `serve()` normally.

        uvicorn re-raises the captured signal once it has shut down, which kills the process
        before the caller's cleanup (closing the collections) can run.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def _on_signal(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit:  # a second signal: stop waiting for connections
                self.force_exit = True
            self.should_exit = True

    return QuietStopServer


def _new_uvicorn_server(config: Any) -> Any:
    return _uvicorn_server_class()(config)


def uvicorn_options(host: str, port: int, limits: Limits, log_level: str) -> dict[str, Any]:
    """uvicorn settings for a DDP server: the websocket frame limit sits above ours, so an
    oversized message gets a DDP error reply rather than a dropped connection."""
    return {
        "host": host,
        "port": port,
        "log_level": log_level,
        "ws": "websockets-sansio",
        "ws_max_size": max(limits.max_message_size * 4, 1 << 20),
        "ws_ping_interval": None,  # DDP has its own heartbeat
        # DDP messages are small JSON: compressing each costs both ends more time than the
        # bytes it saves (jobSave round trip 1.44 -> 1.31 ms with a deflate-offering client).
        "ws_per_message_deflate": False,
        "lifespan": "off",
        "access_log": False,
    }


def _open_accounts(jc: JobCollection) -> Any:
    from .accounts import Accounts

    return Accounts(jc.manager.storage.users)  # type: ignore[attr-defined]


def _relative_path(scope: Scope) -> str:
    """The path below where we are mounted (Starlette's Mount keeps the full `path` and
    extends `root_path`)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _sockjs_info() -> dict[str, Any]:
    # No `base_url`: node ddp then uses the plain /websocket path.
    return {
        "websocket": True,
        "origins": ["*:*"],
        "cookie_needed": False,
        "entropy": secrets.randbits(31),
    }


async def _json(send: Send, status: int, body: object) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__: Sequence[str] = ["Caller", "Limits", "Server"]
