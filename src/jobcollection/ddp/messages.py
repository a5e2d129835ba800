"""DDP message shapes: the versions we speak, the requests' parsers and the replies' builders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

VERSIONS: Final = ("1", "pre2", "pre1")  # preferred first, on both ends
SERVER_ID_MESSAGE: Final = '{"server_id":"0"}'
CLOSE_SERVICE_RESTART: Final = 1012  # websocket close code: the server restarts
# The reason of error 503 for a call read after the server began to stop: it was not run.
NOT_APPLIED_REASON: Final = "Server is restarting; the call was not applied"
# The client's `connect`, as it always went on the wire (stdlib JSON spacing, kept byte for byte).
CONNECT_MESSAGE: Final = json.dumps({"msg": "connect", "version": "1", "support": list(VERSIONS)})


def connect(version: str, support: tuple[str, ...] = VERSIONS) -> str:
    """The text of a client's `connect` proposing ``version``."""
    if version == VERSIONS[0] and support == VERSIONS:
        return CONNECT_MESSAGE
    return json.dumps({"msg": "connect", "version": version, "support": list(support)})


def meteor_error(
    code: int | str, reason: str | None = None, details: str | None = None
) -> dict[str, Any]:
    """A serialized Meteor.Error (`isClientSafe, error, reason, details?, message, ...`), as
    `server.meteor_error.MeteorError.to_wire` makes it."""
    wire: dict[str, Any] = {"isClientSafe": True, "error": code}
    if reason is not None:
        wire["reason"] = reason
    if details is not None:
        wire["details"] = details
    wire["message"] = f"{reason} [{code}]" if reason else f"[{code}]"
    wire["errorType"] = "Meteor.Error"
    return wire


NOT_APPLIED_ERROR: Final = meteor_error(
    503,
    NOT_APPLIED_REASON,
    "The server stopped taking calls before this one arrived; send it again once reconnected.",
)


def is_not_applied(error: object) -> bool:
    """Whether a call's error says that the server did not run it (a graceful restart)."""
    if not isinstance(error, dict) or error.get("error") != 503:
        return False
    reason = error.get("reason")
    return isinstance(reason, str) and "not applied" in reason


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
        self.error = meteor_error(400, reason)

    def replies(self) -> list[dict[str, Any]]:
        if self.kind == "sub":
            return [{"msg": "nosub", "id": self.id, "error": self.error}]
        return [error_result(self.id, self.error), updated(self.id)]


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


def sub(id_: str, name: str, params: list[Any]) -> dict[str, Any]:
    """A client's `sub` (without `params` when there are none, as it always went out)."""
    message: dict[str, Any] = {"msg": "sub", "id": id_, "name": name}
    if params:
        message["params"] = params
    return message


def unsub(id_: str) -> dict[str, Any]:
    return {"msg": "unsub", "id": id_}


def method(id_: str, name: str, params: list[Any]) -> dict[str, Any]:
    return {"msg": "method", "id": id_, "method": name, "params": params}


def ping(id_: str | None = None) -> dict[str, Any]:
    return {"msg": "ping"} if id_ is None else {"msg": "ping", "id": id_}


def added(collection: str, id_: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"msg": "added", "collection": collection, "id": id_, "fields": fields}


def changed(
    collection: str, id_: str, fields: dict[str, Any], cleared: list[str] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"msg": "changed", "collection": collection, "id": id_}
    if fields:
        message["fields"] = fields
    if cleared:
        message["cleared"] = cleared
    return message


def removed(collection: str, id_: str) -> dict[str, Any]:
    return {"msg": "removed", "collection": collection, "id": id_}


def connected(session: str) -> dict[str, Any]:
    return {"msg": "connected", "session": session}


def ready(*ids: str) -> dict[str, Any]:
    return {"msg": "ready", "subs": list(ids)}


def nosub(id_: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"msg": "nosub", "id": id_}
    if error is not None:
        message["error"] = error
    return message
