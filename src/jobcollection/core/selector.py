"""Selectors: which jobs a query, a live query or a publication means (pure).

A selector is a small Mongo-style object on `_id`, `status` and `type`, each a value or
``{"$in": [...]}``; `parse_selector` checks it and turns it into the lists the storage
filters by.
"""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError
from . import ejson
from .constants import JOB_STATUSES

_SELECTOR_KEYS = {"_id": "ids", "status": "statuses", "type": "types"}


def parse_selector(selector: dict[str, Any]) -> dict[str, list[str]]:
    """`{"status": "ready", "type": {"$in": [...]}, "_id": ...}` → find() keyword arguments."""
    if not isinstance(selector, dict):
        raise ValidationError(
            f"selector must be a dict (an object), got {ejson.json_type(selector)}"
        )
    query: dict[str, list[str]] = {}
    for key, value in selector.items():
        if key not in _SELECTOR_KEYS:
            raise ValidationError(f"selector key {key!r} is not supported (use _id, status, type)")
        if isinstance(value, dict):
            if set(value) != {"$in"} or not isinstance(value["$in"], list):
                raise ValidationError(f"selector.{key}: only a value or {{'$in': [...]}} works")
            values = value["$in"]
        else:
            values = [value]
        if not all(isinstance(v, str) for v in values):
            raise ValidationError(f"selector.{key}: values must be strings")
        if key == "status" and not set(values) <= set(JOB_STATUSES):
            raise ValidationError(f"selector.status: unknown status in {values!r}")
        query[_SELECTOR_KEYS[key]] = values
    return query
