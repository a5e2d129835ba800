"""One websocket text frame ↔ one DDP message, in EJSON (`core.ejson`).

The server parses strictly (as Meteor's `JSON.parse`: no bare NaN) and tells a malformed frame
(`BadMessage`) from a well-formed call whose params no method can use (`BadParams`); the client
decodes leniently and ignores what is not a message.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from ..core import ejson
from .messages import BadMessage, BadParams, method_call, sub_request


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


def decode(text: str | bytes) -> dict[str, Any] | None:
    """A frame as a client reads it: the message, or None when it is not a JSON object."""
    if not isinstance(text, str):
        text = text.decode("utf-8", "replace")
    message = ejson.loads(text)
    return message if isinstance(message, dict) else None


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


def offending(text: str) -> object:
    """The offending message for an error reply: the parsed frame when it is JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None
