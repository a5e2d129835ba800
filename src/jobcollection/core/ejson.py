"""EJSON values and the JSON codec used for user data.

User data (`data`, `result`, failures, log `data`) may hold dates, bytes, non-finite numbers and
custom types. They are decoded to the value types below and encoded back unchanged, so a value
survives storage and the wire byte for byte. Plain JSON values pass through untouched.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from dataclasses import dataclass
from typing import Any

_FORMS = ("$date", "$binary", "$InfNaN", "$type", "$escape")
_FORM_KEYS = frozenset(
    frozenset(keys)
    for keys in (("$date",), ("$binary",), ("$InfNaN",), ("$type", "$value"), ("$escape",))
)
# One encoder for all calls: json.dumps with arguments builds a new encoder every time.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class FormError(ValueError):
    """Valid JSON holding an EJSON form whose value is unusable (a `$binary` that is not
    base64): the message names the form."""


@dataclass(frozen=True, slots=True)
class Date:
    """An EJSON date: integer milliseconds since the epoch (may exceed Python's datetime range)."""

    ms: int


@dataclass(frozen=True, slots=True)
class CustomType:
    """An EJSON custom type kept opaque (`{"$type": name, "$value": value}`), e.g. ObjectID."""

    name: str
    value: Any


def json_type(value: object) -> str:
    """What a decoded (E)JSON value is, in JSON's words, for error messages ("got null",
    "got an array"): never a Python type name."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, Date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, CustomType):
        return f"an EJSON {value.name}"
    return f"a {type(value).__name__}"


def _looks_special(obj: dict[str, Any]) -> bool:
    return 0 < len(obj) <= 2 and all(isinstance(k, str) and k.startswith("$") for k in obj)


def _is_ms(value: object) -> bool:
    """A date's milliseconds: a finite number, not a boolean (JSON `false` is no date)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _decode_special(obj: dict[str, Any]) -> tuple[bool, Any]:
    keys = set(obj)
    if keys == {"$date"} and _is_ms(obj["$date"]):
        return True, Date(int(obj["$date"]))
    if keys == {"$binary"} and isinstance(obj["$binary"], str):
        try:
            return True, base64.b64decode(obj["$binary"])
        except binascii.Error as error:
            raise FormError(f"$binary is not base64 ({error})") from None
    if keys == {"$InfNaN"} and type(obj["$InfNaN"]) is int and obj["$InfNaN"] in (1, -1, 0):
        return True, {1: math.inf, -1: -math.inf, 0: math.nan}[obj["$InfNaN"]]
    if keys == {"$type", "$value"} and isinstance(obj["$type"], str):
        return True, CustomType(obj["$type"], obj["$value"])
    if keys == {"$escape"} and isinstance(obj["$escape"], dict):
        return True, {k: from_ejson(v) for k, v in obj["$escape"].items()}
    return False, None


def from_ejson(value: Any) -> Any:
    """Turn a JSON-decoded EJSON value into Python values (dates, bytes, ...); raises
    `FormError` for a form whose value cannot be decoded."""
    if isinstance(value, dict):
        if _looks_special(value):
            matched, decoded = _decode_special(value)
            if matched:
                return decoded
        return {k: from_ejson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_ejson(v) for v in value]
    return value


def to_ejson(value: Any) -> Any:
    """Turn Python values into JSON-encodable EJSON (inverse of `from_ejson`)."""
    if isinstance(value, dict):
        encoded = {k: to_ejson(v) for k, v in value.items()}
        if _looks_special(value) and frozenset(value) in _FORM_KEYS:
            # Shaped like a form (even one whose value would not decode): escape it, so the
            # other side reads the user's object back, never a date or bytes.
            return {"$escape": encoded}
        return encoded
    if isinstance(value, list | tuple):
        return [to_ejson(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"$InfNaN": 0 if math.isnan(value) else (1 if value > 0 else -1)}
    if isinstance(value, Date):
        return {"$date": value.ms}
    if isinstance(value, bytes | bytearray):
        return {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, CustomType):
        return {"$type": value.name, "$value": value.value}
    return value


class _FormCount(threading.local):
    made = 0


_form_count = _FormCount()


def _form_of(value: object) -> dict[str, Any]:
    """The C encoder's hook for what JSON cannot hold: dates and bytes become their EJSON
    forms (counted, see `dumps`); anything else goes to the walk in Python."""
    if isinstance(value, Date):
        form: dict[str, Any] = {"$date": value.ms}
    elif isinstance(value, bytes | bytearray):
        form = {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    else:
        raise TypeError(f"{type(value).__name__} needs the EJSON walk")
    _form_count.made += 1
    return form


_encode_forms = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_form_of).encode


def dumps(value: Any) -> str:
    """Serialize a value to compact EJSON text.

    Fast path: one pass of the C encoder, dates and bytes written as their forms on the way.
    The text is right as it stands when each `"$` in it opens one of those forms: a `"$` can
    only start a key or a string (a quote inside a string is escaped), so no user object can
    look like a form and none needs `$escape`. Otherwise (and for non-finite floats and
    custom types) the value is walked in Python first.
    """
    if value == {} and type(value) is dict:  # the usual job result
        return "{}"
    _form_count.made = 0
    try:
        text = _encode_forms(value)
    except (TypeError, ValueError):
        return _encode(to_ejson(value))
    if text.count('"$') == _form_count.made:
        return text
    return _encode(to_ejson(value))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


_PLAIN = json.JSONDecoder()
# Strict JSON, as Meteor's JSON.parse: bare NaN/Infinity are no JSON ({"$InfNaN": ...} is).
_STRICT = json.JSONDecoder(parse_constant=_reject_constant)


def loads(text: str, *, strict: bool = False) -> Any:
    """Parse EJSON text; ``strict`` refuses bare NaN/Infinity. Only a text with a `"$` (or a
    `$` written `\\u0024`) can hold a form, so only such a text is walked for them."""
    value = (_STRICT if strict else _PLAIN).decode(text)
    if '"$' in text or "\\u0024" in text:
        return from_ejson(value)
    return value
