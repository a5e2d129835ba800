"""Cron expressions to later.js schedule objects (docs/jobs.md, "Schedules").

The output matches ``later.parse.cron`` of later.js 1.2.0 for the syntax accepted here: fields
``[sec] min hour dom month dow [year]`` become the constraints ``s m h D M d Y`` (in that key
order: ``s m h D M Y d``), a 5-field expression gets ``s: [0]``, ``*`` and ``?`` add no
constraint, and cron day-of-week ``0-6`` (Sunday = 0, 7 accepted as Sunday too) becomes later's
``d`` = dow + 1. Like later.js (and unlike Vixie cron), a day-of-month and a day-of-week in the
same expression must *both* hold. Anything later.js would silently clamp or drop is an error here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jobcollection.errors import JobValidationError

_SHORTCUTS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {n: i for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {n: i for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split())}


@dataclass(frozen=True)
class _Field:
    key: str
    label: str
    lo: int
    hi: int
    star_hi: int  # upper end of "*" (day-of-week: 6, so that "*/2" never adds 7)
    names: Mapping[str, int] = field(default_factory=dict)


_FIELDS = (
    _Field("s", "second", 0, 59, 59),
    _Field("m", "minute", 0, 59, 59),
    _Field("h", "hour", 0, 23, 23),
    _Field("D", "day-of-month", 1, 31, 31),
    _Field("M", "month", 1, 12, 12, _MONTHS),
    _Field("d", "day-of-week", 0, 7, 6, _DAYS),
    _Field("Y", "year", 1970, 2099, 2099),
)
_KEY_ORDER = ("s", "m", "h", "D", "M", "Y", "d")  # later.parse.cron's output order


def parse_cron(expr: str) -> dict[str, list[dict[str, list[int]]]]:
    """Translate a cron expression into a later.js schedule object.

    Raises ``JobValidationError("cron", reason)`` naming the offending field.
    """
    tokens, has_seconds = _tokens(expr)
    sched: dict[str, list[int]] = {}
    for spec, token in zip(_FIELDS[: len(tokens)], tokens, strict=True):
        if token not in ("*", "?"):
            sched[spec.key] = sorted(_parse_field(spec, token))
    if has_seconds and not sched:
        sched = {"s": list(range(60))}  # later.js rewrites "* * * * * *" as "0/1 * * * * *"
    ordered = {key: sched[key] for key in _KEY_ORDER if key in sched}
    return {"schedules": [ordered], "exceptions": []}


def _tokens(expr: object) -> tuple[list[str], bool]:
    """The 6 or 7 field tokens (seconds first) and whether the input had a seconds field."""
    if not isinstance(expr, str):
        raise JobValidationError("cron", "must be a string")
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in _SHORTCUTS:
            known = ", ".join(_SHORTCUTS)
            raise JobValidationError("cron", f"unknown shortcut {text!r} (known: {known})")
        text = _SHORTCUTS[text.lower()]
    tokens = text.split()
    if len(tokens) == 5:
        return ["0", *tokens], False
    if len(tokens) in (6, 7):
        return tokens, True
    raise JobValidationError("cron", f"expected 5, 6 or 7 fields, got {len(tokens)} in {expr!r}")


def _parse_field(spec: _Field, token: str) -> set[int]:
    values: set[int] = set()
    for item in token.split(","):
        try:
            values.update(_parse_item(spec, item))
        except ValueError as exc:
            raise JobValidationError("cron", f"bad {spec.label} field {token!r}: {exc}") from None
    if spec.key == "d":
        return {v % 7 + 1 for v in values}
    return values


def _parse_item(spec: _Field, item: str) -> range:
    """Expand one list item: ``*``, ``a``, ``a-b``, each optionally ``/step``; ``L`` = last day."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise ValueError(f"step {step_text!r} is not a positive integer")
        step = int(step_text)
    if base in ("*", "?"):
        return range(spec.lo, spec.star_hi + 1, step)
    if base == "L" and spec.key == "D" and not slash:
        return range(0, 1)  # later.js: D = 0 means the last day of the month
    if "-" in base:
        first, _, last = base.partition("-")
        lo, hi = _value(spec, first), _value(spec, last)
        if lo > hi:
            raise ValueError(f"range {base!r} runs backwards")
        return range(lo, hi + 1, step)
    lo = _value(spec, base)
    return range(lo, (spec.star_hi if slash else lo) + 1, step)


def _value(spec: _Field, text: str) -> int:
    name = text.upper()
    if name in spec.names:
        return spec.names[name]
    if not (text.isascii() and text.isdigit()):
        kind = "a number or name" if spec.names else "a number"
        raise ValueError(f"{text!r} is not {kind}")
    value = int(text)
    if not spec.lo <= value <= spec.hi:
        raise ValueError(f"{value} is outside {spec.lo}-{spec.hi}")
    return value
