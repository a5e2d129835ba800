"""The HTTP JSON API: the DDP job methods for clients without DDP, as a plain ASGI application.

Routes (relative to the app's ``root_path``; ``prefix`` defaults to ``/api``):

- ``POST <prefix>/<root>/<method>``: the body is the EJSON array of the DDP method's positional
  params (an empty body means ``[]``); the reply is ``{"result": <EJSON>}`` or
  ``{"error": <Meteor error>}``. ``Authorization: Bearer <token>`` makes the call as the token's
  user; without the header the caller is anonymous.
- ``POST <prefix>/login`` (body: Meteor login options) and ``POST <prefix>/logout`` (bearer).
- ``GET <prefix>/openapi.json``: the OpenAPI document (see :mod:`.openapi`).

HTTP status: 200 on success; a Meteor error's code when it is 400, 403 or 404, else 500; 401
for a bad or unknown token, and for a call refused to a caller who sent none (with a hint to
log in); 405 for a wrong HTTP method; 400 for a body that is not a JSON
array (or has the wrong Content-Type) and 413 for one over ``max_body`` bytes. A request
refused before the dispatcher runs writes nothing. Job methods, token checks and login run off
the event loop (a database lock held by another process stalls only the requests that need it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from ..core import ejson
from ..core.constants import DDP_METHODS
from ..core.permissions import ANONYMOUS, Caller
from ..ddp.framing import has_surrogate_escape, lone_surrogate
from .dispatch import Dispatcher
from .meteor_error import MeteorError, Refused, as_meteor_error
from .openapi import build_openapi

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Login = Callable[[object, str], Awaitable[Mapping[str, object]]]
Authenticate = Callable[[str], Caller | None]
Logout = Callable[[str], object]

DEFAULT_MAX_BODY: Final = 1 << 20
_STATUS_OF_CODE: Final = frozenset((400, 403, 404))
_METHODS: Final = frozenset(DDP_METHODS)


@dataclass(frozen=True, slots=True)
class HttpConnection:
    """The ``connection`` of an HTTP call as events and the call log see it (one per request)."""

    client: str | None  # "host:port" of the peer, when the server knows it


class _Refusal(Exception):
    """An error reply decided before or instead of running the method."""

    def __init__(
        self, status: int, error: MeteorError, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error
        self.headers = headers


class _Disconnected(Exception):
    """The client went away while sending its request: there is nobody to answer."""


def _refuse(status: int, reason: str, details: str | None = None) -> _Refusal:
    return _Refusal(status, MeteorError(status, reason, details))


def _status_for(error: MeteorError) -> int:
    code = error.code
    return code if isinstance(code, int) and code in _STATUS_OF_CODE else 500


def _unauthorized(reason: str) -> _Refusal:
    challenge = 'Bearer error="invalid_token"'
    return _Refusal(401, MeteorError(401, reason), (("www-authenticate", challenge),))


class HttpApi:
    """ASGI application serving the job methods of ``dispatcher`` over HTTP.

    Args:
        dispatcher: the collections served, with their permission rules.
        login: ``await login(options, host) -> result`` (Meteor's login result, e.g.
            ``{"id", "token", "tokenExpires", "type"}``) for a login from the peer ``host``;
            must not block the event loop. Raises :class:`MeteorError` to refuse. ``None``:
            no login route.
        authenticate: ``authenticate(token) -> Caller | None`` for bearer tokens (``None`` for
            an unknown or expired token). ``None``: every bearer token is refused.
        logout: ``logout(token)`` revokes a token; ``None``: no logout route.
        max_body: the largest request body accepted, in bytes.
        prefix: the path the routes live under, relative to the ASGI ``root_path``.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        login: Login | None = None,
        authenticate: Authenticate | None = None,
        logout: Logout | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        prefix: str = "/api",
    ) -> None:
        self.dispatcher = dispatcher
        self.login = login
        self.authenticate = authenticate
        self.logout = logout
        self.max_body = max_body
        self.prefix = prefix.rstrip("/")
        self._document: dict[str, Any] | None = None

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: tuple[tuple[str, str], ...] = ()
        try:
            status, payload, headers = await self._route(scope, receive)
        except _Disconnected:
            return
        except _Refusal as refusal:
            status, payload, headers = refusal.status, _error_body(refusal.error), refusal.headers
        except Exception as error:  # never let a request take the server down
            status, payload = 500, _error_body(as_meteor_error(error))
        await _respond(send, status, payload, headers)

    # -- routing -------------------------------------------------------------------------------

    async def _route(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        path = _route_path(scope)
        if not path.startswith(self.prefix + "/"):
            raise _refuse(404, "Not found", f"no route for {path!r}")
        rest = path[len(self.prefix) + 1 :]
        method = scope["method"]
        if rest == "openapi.json":
            _allow(method, "GET")
            return 200, self._openapi(scope), ()
        if rest == "login" and self.login is not None:
            _allow(method, "POST")
            return 200, await self._login(scope, receive), (("cache-control", "no-store"),)
        if rest == "logout" and self.logout is not None:
            _allow(method, "POST")
            return 200, await self._logout(scope), ()
        root, _, name = rest.rpartition("/")
        if root not in self.dispatcher.managers or name not in _METHODS:
            served = ", ".join(self.dispatcher.managers) or "none"
            where = f"no collection method at {path!r}; this server serves collections: {served}"
            raise _refuse(404, "Not found", where)
        _allow(method, "POST")
        return 200, await self._call(scope, receive, root, name), ()

    def _openapi(self, scope: Scope) -> bytes:
        if self._document is None:
            self._document = build_openapi(
                list(self.dispatcher.managers),
                prefix=self.prefix,
                login=self.login is not None,
                logout=self.logout is not None,
            )
        document = self._document
        root_path = scope.get("root_path") or ""
        if root_path:
            document = {**document, "servers": [{"url": root_path}]}
        return json.dumps(document, separators=(",", ":")).encode()

    # -- operations ----------------------------------------------------------------------------

    async def _call(self, scope: Scope, receive: Receive, root: str, method: str) -> bytes:
        caller = await self._caller(scope)
        params = await self._read_json(scope, receive, empty=[])
        if not isinstance(params, list):
            raise _refuse(
                400,
                "Request body must be a JSON array of the method's positional params",
                f"got {ejson.json_type(params)}",
            )
        connection = HttpConnection(_peer(scope))
        try:
            result = await self.dispatcher.call_async(
                f"{root}_{method}", params, caller, connection
            )
        except Refused as refusal:
            if refusal.anonymous and self.login is not None:
                raise self._login_required(scope, refusal) from refusal
            raise _Refusal(403, refusal) from refusal
        except MeteorError as error:
            raise _Refusal(_status_for(error), error) from error
        return _encode({"result": result})

    def _login_required(self, scope: Scope, refusal: Refused) -> _Refusal:
        """401 for a call refused to a caller who sent no token, saying how to log in."""
        login = f"{scope.get('root_path') or ''}{self.prefix}/login"
        hint = (
            f"{refusal.details}. Log in with POST {login} and send the token it returns as"
            " 'Authorization: Bearer <token>'."
        )
        challenge = (("www-authenticate", 'Bearer realm="jobcollection"'),)
        return _Refusal(401, MeteorError(401, refusal.reason, hint), challenge)

    async def _login(self, scope: Scope, receive: Receive) -> bytes:
        assert self.login is not None
        options = await self._read_json(scope, receive, empty=None)
        if not isinstance(options, dict):
            got = f"got {ejson.json_type(options)}"
            raise _refuse(400, "Login options must be a JSON object", got)
        client = scope.get("client")
        host = str(client[0]) if client else ""
        try:
            result = await self.login(options, host)
        except Exception as error:
            meteor = as_meteor_error(error)
            raise _Refusal(_status_for(meteor), meteor) from error
        return _encode_plain({"result": result})

    async def _logout(self, scope: Scope) -> bytes:
        assert self.logout is not None
        token = _bearer(scope)
        if token is None:
            raise _unauthorized("Logging out needs the session's bearer token")
        if await self._resolve(token) is None:
            raise _unauthorized("Unknown or expired token")
        try:
            await asyncio.to_thread(self.logout, token)
        except Exception as error:
            meteor = as_meteor_error(error)
            raise _Refusal(_status_for(meteor), meteor) from error
        return _encode({"result": None})

    # -- request parts -------------------------------------------------------------------------

    async def _caller(self, scope: Scope) -> Caller:
        token = _bearer(scope)
        if token is None:
            return ANONYMOUS
        caller = await self._resolve(token)
        if caller is None:
            raise _unauthorized("Unknown or expired token; log in again")
        return caller

    async def _resolve(self, token: str) -> Caller | None:
        if self.authenticate is None:
            return None
        return await asyncio.to_thread(self.authenticate, token)

    async def _read_json(self, scope: Scope, receive: Receive, *, empty: object) -> object:
        """The request body as decoded EJSON (``empty`` for an empty body)."""
        declared = _header(scope, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        body = await self._read_body(receive)
        if not body.strip():
            return empty
        content_type = _header(scope, "content-type")
        if content_type is None or not _is_json_type(content_type):
            raise _refuse(
                400,
                "Request body must be JSON (Content-Type: application/json)",
                "no Content-Type header" if content_type is None else f"got {content_type!r}",
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _refuse(400, "Request body is not UTF-8", str(error)) from error
        try:
            value = ejson.loads(text, strict=True)  # no bare NaN/Infinity: not JSON
        except RecursionError as error:
            raise _refuse(400, "Request body is not valid JSON", "nested too deeply") from error
        except ejson.FormError as error:
            raise _refuse(400, f"Invalid EJSON in the request body: {error}") from None
        except (ValueError, OverflowError) as error:
            raise _refuse(400, "Request body is not valid JSON", str(error)) from error
        if has_surrogate_escape(text):
            where = lone_surrogate(value, "body")
            if where is not None:
                raise _refuse(400, f"Invalid string in the request body: {where}")
        return value

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> _Refusal:
        return _refuse(413, "Request body too large", f"the limit is {self.max_body} bytes")


# -- helpers -----------------------------------------------------------------------------------


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (``root_path``), per the ASGI spec."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        error = MeteorError(405, "Method not allowed", f"{method} is not allowed; use {allowed}")
        raise _Refusal(405, error, (("allow", allowed),))


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            text: str = value.decode("latin-1").strip()
            return text
    return None


def _bearer(scope: Scope) -> str | None:
    """The bearer token of the request; None without an Authorization header."""
    header = _header(scope, "authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("The Authorization header must be 'Bearer <token>'")
    return token


def _is_json_type(content_type: str) -> bool:
    mime = content_type.partition(";")[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    host, port = client[0], client[1]
    return f"{host}:{port}"


def _encode(value: object) -> bytes:
    """EJSON reply text: Python values (dates, bytes, ...) become EJSON forms."""
    return ejson.dumps(value).encode()


def _encode_plain(value: object) -> bytes:
    """Reply text for a value that may already hold EJSON forms: only non-JSON values (dates,
    bytes, custom types) are converted; objects are sent as they are."""
    return json.dumps(
        value, separators=(",", ":"), allow_nan=False, default=ejson.to_ejson
    ).encode()


def _error_body(error: MeteorError) -> bytes:
    return _encode({"error": error.to_wire()})


async def _respond(
    send: Send, status: int, payload: bytes, headers: tuple[tuple[str, str], ...]
) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
