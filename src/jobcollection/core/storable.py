"""Which values a job can store, and a clear error for those it cannot.

User data (a job's `data`, a worker's result, a failure's error object, log `data`) is stored
and sent as EJSON: JSON values plus dates (`ejson.Date`), bytes, non-finite floats and EJSON
custom types. Anything else (a `set`, a `datetime`, an arbitrary object) makes the encoder
raise a bare `TypeError` deep inside a write. Checking every value up front would cost the hot
path a walk of every document, so callers encode first and only when that fails ask
`unstorable_param` / `unstorable_value` where the culprit is, for an error that names it:
``result.value[1]: cannot store a set ...``. Pure: standard library, `errors` and `core`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from ..errors import JobCollectionError, JobValidationError
from .ejson import CustomType, Date

# Positional param names of the methods that carry user data, as the params checks name them.
_PARAM_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "jobSave": ("doc", "options"),
    "jobLog": ("id", "runId", "message", "options"),
    "jobDone": ("id", "runId", "result", "options"),
    "jobFail": ("id", "runId", "err", "options"),
    "jobSaveMany": ("jobs",),
    "jobDoneAndGetWork": ("runs", "getWorkParams"),
}
_LEAVES: Final = (str, int, float, bool, type(None), Date, bytes, bytearray, CustomType)
_KEYS: Final = (str, int, float, bool, type(None))  # what a JSON encoder turns into a key
_MAX_DEPTH: Final = 500  # deeper than this, the encoder gives up (RecursionError)
HINT: Final = "a job stores JSON values, bytes and jobcollection.Date"


def _find(value: object, path: str, depth: int, seen: set[int]) -> tuple[str, str] | None:
    """(path, what) of the first part of `value` the EJSON encoder cannot write."""
    if isinstance(value, _LEAVES):
        return None
    if depth > _MAX_DEPTH:
        return path, f"a value nested more than {_MAX_DEPTH} levels deep"
    if not isinstance(value, dict | list | tuple):
        name = type(value).__qualname__
        return path, f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
    if id(value) in seen:
        return path, "a value that contains itself"
    seen.add(id(value))
    try:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, _KEYS):
                    return path, f"a {type(key).__qualname__} key, {key!r:.40}"
                found = _find(item, f"{path}.{key}", depth + 1, seen)
                if found is not None:
                    return found
            return None
        for index, item in enumerate(value):
            found = _find(item, f"{path}[{index}]", depth + 1, seen)
            if found is not None:
                return found
        return None
    finally:
        seen.discard(id(value))


def unstorable_value(field: str, value: object) -> JobValidationError | None:
    """The error naming what in `value` (the field `field`) cannot be stored; None if all can."""
    found = _find(value, field, 0, set())
    if found is None:
        return None
    where, what = found
    return JobValidationError(where, f"cannot store {what} ({HINT})")


def unstorable_param(method: str, params: Sequence[object]) -> JobValidationError | None:
    """`unstorable_value` over a method call's params, each named as the params checks name
    it (`result`, `err`, `doc`, `options`...); None if every param can be stored."""
    names = _PARAM_NAMES.get(method, ())
    for index, param in enumerate(params):
        name = names[index] if index < len(names) else f"params[{index}]"
        error = unstorable_value(name, param)
        if error is not None:
            return error
    return None


ENCODING_ERRORS: Final = (TypeError, ValueError, RecursionError)
"""What the JSON encoder raises for a value it cannot write."""


@contextmanager
def naming_unstorable(find: Callable[[], JobCollectionError | None]) -> Iterator[None]:
    """Turn the encoder's bare error for a value that cannot be stored (or sent) into the
    validation error `find` returns, naming where and what it is. Other errors pass as
    they are, and so does an encoder error `find` cannot explain."""
    try:
        yield
    except JobCollectionError:
        raise
    except ENCODING_ERRORS as error:
        named = find()
        if named is None:
            raise
        raise named from error
