"""DDP messages, sans I/O (docs/protocol.md): parsing, version negotiation, message shapes.

Everything here is pure: the session feeds it text and dicts and sends what it returns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from ..core import ejson
from .meteor_error import MeteorError

SERVER_VERSIONS: Final = ("1", "pre2", "pre1")
SERVER_ID_MESSAGE: Final = '{"server_id":"0"}'
CLOSE_SERVICE_RESTART: Final = 1012  # websocket close code: the server restarts
# The reason of error 503 for a call read after the server began to stop: it was not run.
NOT_APPLIED_REASON: Final = "Server is restarting; the call was not applied"


class BadMessage(Exception):
    """A message the server answers with `{"msg":"error"}` instead of acting on it."""

    def __init__(self, reason: str, offending: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offending = offending

    def reply(self) -> dict[str, Any]:
        message: dict[str, Any] = {"msg": "error", "reason": self.reason}
        if self.offending is not None:
            message["offendingMessage"] = self.offending
        return message


class BadParams(Exception):
    """A method call or subscription whose params hold a value no method can use (a `$binary`
    that is not base64, a lone surrogate): answered as that call's result (a subscription's
    `nosub`) with a 400 naming the problem, so the caller is not left waiting."""

    def __init__(self, kind: str, id_: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind  # "method" or "sub"
        self.id = id_
        self.error = MeteorError(400, reason)

    def replies(self) -> list[dict[str, Any]]:
        if self.kind == "sub":
            return [{"msg": "nosub", "id": self.id, "error": self.error.to_wire()}]
        return [error_result(self.id, self.error.to_wire()), updated(self.id)]


def parse(text: str) -> dict[str, Any]:
    """Decode one frame; a frame that is not a JSON object with a string `msg` is refused.

    Raises `BadMessage`, or `BadParams` for a well-formed call or subscription whose params
    cannot be used.
    """
    try:
        message = ejson.loads(text, strict=True)  # as Meteor's JSON.parse: no bare NaN
    except ejson.FormError as error:
        raw = _json_only(text)
        if not isinstance(raw, dict) or raw.get("msg") not in ("method", "sub"):
            raise BadMessage("Parse error") from None
        message = raw  # a malformed call is answered as such; a well-formed one below
        problem: str | None = f"Invalid EJSON in params: {error}"
    except (ValueError, RecursionError) as error:
        raise BadMessage("Parse error") from error
    else:
        if not isinstance(message, dict):
            raise BadMessage("Bad request", message)
        if not isinstance(message.get("msg"), str):
            raise BadMessage("Bad request", message)
        problem = None
        if message["msg"] in ("method", "sub") and _SURROGATE_ESCAPE.search(text):
            where = lone_surrogate(message.get("params"), "params")
            problem = None if where is None else f"Invalid string in params: {where}"
    if problem is not None and _well_formed(message):
        raise BadParams(message["msg"], message["id"], problem)
    return message


def _json_only(text: str) -> object:
    """The frame as plain JSON (its EJSON forms left undecoded), or None."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _well_formed(message: dict[str, Any]) -> bool:
    """A method call or subscription whose fields have the right types (its params aside)."""
    try:
        if message["msg"] == "method":
            method_call(message)
        else:
            sub_request(message)
    except BadMessage:
        return False
    return True


# A JSON escape of a UTF-16 surrogate: the only way a lone surrogate gets into a decoded string
# (UTF-8 text cannot hold one). Only a frame with such an escape is walked for lone ones.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def has_surrogate_escape(text: str) -> bool:
    return _SURROGATE_ESCAPE.search(text) is not None


def lone_surrogate(value: object, path: str) -> str | None:
    """Where in ``value`` a string holds a lone surrogate (no storage or UTF-8 text can keep
    one), e.g. ``"params[0].type holds a lone surrogate"``; None when there is none."""
    if isinstance(value, str):
        if _is_text(value):
            return None
        return f"{path} holds a lone surrogate (not Unicode text)"
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _is_text(key):
                return f"a key in {path} holds a lone surrogate (not Unicode text)"
            found = lone_surrogate(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = lone_surrogate(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif isinstance(value, ejson.CustomType):
        return lone_surrogate(value.value, f"{path}.$value")
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode(message: dict[str, Any]) -> str:
    try:
        return ejson.dumps(message)
    except (RecursionError, ValueError):
        # What we echo of a client's frame, `offendingMessage` or a ping's `id`, may not encode
        # again: nested just shallowly enough to parse, but too deep for the encoder further
        # down the stack, or an escaped user object the encoder chokes on (an invalid base64
        # `{"$binary": ...}`). Leave the echo out rather than let the connection die unanswered.
        if message.get("msg") == "error" and "offendingMessage" in message:
            return ejson.dumps({k: v for k, v in message.items() if k != "offendingMessage"})
        if message.get("msg") == "pong" and "id" in message:
            return ejson.dumps({"msg": "pong"})
        raise


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome of `connect`: `connected` when ``ok``, else `failed` with ``version``."""

    ok: bool
    version: str


def negotiate(message: dict[str, Any]) -> Negotiated:
    """Pick the protocol version for a `connect` message (as Meteor's server picks it)."""
    version, support = message.get("version"), message.get("support")
    if (
        not isinstance(version, str)
        or not isinstance(support, list)
        or not all(isinstance(v, str) for v in support)
        or version not in support
    ):
        return Negotiated(False, SERVER_VERSIONS[0])
    chosen = next((v for v in support if v in SERVER_VERSIONS), SERVER_VERSIONS[0])
    return Negotiated(chosen == version, chosen)


def has_heartbeat(version: str | None) -> bool:
    """Whether a session of this DDP version is pinged: `pre1` has no ping/pong messages."""
    return version != "pre1"


@dataclass(frozen=True, slots=True)
class MethodCall:
    id: str
    method: str
    params: list[Any]


def method_call(message: dict[str, Any]) -> MethodCall:
    id_, method, params = message.get("id"), message.get("method"), message.get("params", [])
    seed = message.get("randomSeed")
    if (
        not isinstance(id_, str)
        or not isinstance(method, str)
        or not isinstance(params, list)
        or (seed is not None and not isinstance(seed, str))
    ):
        raise BadMessage("Malformed method invocation", message)
    return MethodCall(id_, method, params)


@dataclass(frozen=True, slots=True)
class SubRequest:
    id: str
    name: str
    params: list[Any]


def sub_request(message: dict[str, Any]) -> SubRequest:
    id_, name, params = message.get("id"), message.get("name"), message.get("params", [])
    if not isinstance(id_, str) or not isinstance(name, str) or not isinstance(params, list):
        raise BadMessage("Malformed subscription", message)
    return SubRequest(id_, name, params)


def unsub_id(message: dict[str, Any]) -> str:
    id_ = message.get("id")
    if not isinstance(id_, str):
        raise BadMessage("Malformed subscription", message)
    return id_


def result(id_: str, value: object, *, has_value: bool = True) -> dict[str, Any]:
    message: dict[str, Any] = {"msg": "result", "id": id_}
    if has_value:
        message["result"] = value
    return message


def error_result(id_: str, error: dict[str, Any]) -> dict[str, Any]:
    return {"msg": "result", "id": id_, "error": error}


def updated(*ids: str) -> dict[str, Any]:
    return {"msg": "updated", "methods": list(ids)}


def pong(message: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"msg": "pong"}
    if "id" in message:
        reply["id"] = message["id"]
    return reply


def offending(text: str) -> object:
    """The offending message for an error reply: the parsed frame when it is JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None
