"""DDP messages, sans I/O (SPEC.md section 8): parsing, version negotiation, message shapes.

Everything here is pure: the session feeds it text and dicts and sends what it returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ..core import ejson

SERVER_VERSIONS: Final = ("1", "pre2", "pre1")
SERVER_ID_MESSAGE: Final = '{"server_id":"0"}'


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


def parse(text: str) -> dict[str, Any]:
    """Decode one frame; a frame that is not a JSON object with a string `msg` is refused."""
    try:
        message = ejson.loads(text, strict=True)  # as Meteor's JSON.parse: no bare NaN
    except (ValueError, RecursionError) as error:
        raise BadMessage("Parse error") from error
    if not isinstance(message, dict):
        raise BadMessage("Bad request", message)
    if not isinstance(message.get("msg"), str):
        raise BadMessage("Bad request", message)
    return message


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
    """Pick the protocol version for a `connect` message (SPEC 8, Handshake)."""
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
