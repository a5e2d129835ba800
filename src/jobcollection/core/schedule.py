"""later.js schedules: validation, cron parsing and the next-occurrence search.

A schedule object is ``{"schedules": [S, ...], "exceptions": [S, ...]}``; each S maps constraint
keys to lists of integers and holds at an instant when all its constraints hold. All times are
UTC, in integer milliseconds since the epoch.

Occurrences of S are the starts of the periods of its *tick* constraint at which S holds. As in
later.js the tick is the constraint with the smallest "range": the key's period length, or for
a modifier ``X_a: [v]`` ``(max(X) - v)`` periods and for ``X_b: [v]`` ``(v - 1)`` periods. So
``{"m": [0, 5], "t_a": [61200]}`` ticks per minute, while ``{"t_a": [61200]}`` alone ticks per
second. Ties go to the finer key. Later.js takes ``max(X)`` for the current date; we use fixed
typical maxima (31 days, 5 weeks of month, 52 ISO weeks...), which only matters for rare ties.

The search is field by field (year, month, day, then hour, minute, second), jumping to the next
allowed value at each level, and stops at the end of 2099 (later.js's last year). An occurrence
inside an exception is skipped by jumping to the end of the run of time the exception covers.
"""

from __future__ import annotations

import calendar
import math
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TypeAlias

from jobcollection.core.cron import parse_cron
from jobcollection.errors import JobValidationError

__all__ = ["ScheduleDict", "is_schedule", "next_occurrence", "parse_cron", "validate_schedule"]

ScheduleDict: TypeAlias = dict[str, list[dict[str, list[int]]]]
_Ints: TypeAlias = tuple[int, ...]
_Frozen: TypeAlias = tuple[tuple[str, _Ints], ...]

_DAY = 86_400
_END_S = 4_102_444_800  # 2100-01-01T00:00:00Z
_END_MS = _END_S * 1000
_EPOCH = date(1970, 1, 1).toordinal()
_MAX_ROUNDS = 2_000  # exception skips per search; beyond that we report "no occurrence"

# Occurrence units, finest first. _INSTANT: a plain ``fd`` tick (exact millisecond).
_INSTANT, _SEC, _MIN, _HOUR, _DAY_U, _WEEK_M, _WEEK_Y, _MONTH, _YEAR = range(-1, 8)
# key -> (unit, later.js range in seconds, typical maximum value)
_KEYS: dict[str, tuple[int, int, int]] = {
    "s": (_SEC, 1, 59),
    "t": (_SEC, 1, 86_399),
    "fd": (_SEC, 1, 32_503_680_000_000),
    "m": (_MIN, 60, 59),
    "h": (_HOUR, 3600, 23),
    "D": (_DAY_U, _DAY, 31),
    "d": (_DAY_U, _DAY, 7),
    "dc": (_DAY_U, _DAY, 5),
    "dy": (_DAY_U, _DAY, 366),
    "wm": (_WEEK_M, 7 * _DAY, 5),
    "wy": (_WEEK_Y, 7 * _DAY, 52),
    "M": (_MONTH, 2_629_740, 12),
    "Y": (_YEAR, 31_556_900, 2099),
}
_ALIASES = {"dw": "d"}
_DAY_KEYS = ("D", "d", "dc", "dy", "wm", "wy")
# time-of-day key -> (seconds per value, seconds per enclosing period)
_TIME_KEYS = {"s": (1, 60), "m": (60, 3600), "h": (3600, _DAY), "t": (1, _DAY)}


def is_schedule(value: object) -> bool:
    """True for a later.js schedule object (cheap shape check, no validation)."""
    return isinstance(value, dict) and "schedules" in value


def validate_schedule(value: object, field: str = "repeatWait") -> ScheduleDict:
    """Check a later.js schedule object; return a normalized copy.

    ``dw`` becomes ``d``, integral floats become ints, later.js's ``error`` key is dropped and
    ``exceptions`` is always present. Raises ``JobValidationError`` naming the bad field.
    """
    if not isinstance(value, dict):
        raise JobValidationError(field, "must be a schedule object with a 'schedules' list")
    for key in value:
        if key not in ("schedules", "exceptions", "error"):
            raise JobValidationError(
                f"{field}.{key}", "unknown key (allowed: schedules, exceptions)"
            )
    if "schedules" not in value:
        raise JobValidationError(f"{field}.schedules", "is required")
    exceptions = value.get("exceptions")
    return {
        "schedules": _check_list(value["schedules"], f"{field}.schedules"),
        "exceptions": [] if exceptions is None else _check_list(exceptions, f"{field}.exceptions"),
    }


def next_occurrence(schedule: Mapping[str, object], after_ms: int) -> int | None:
    """Earliest occurrence strictly after ``after_ms`` (ms), or None if none before 2100."""
    scheds, excepts = _compile_all(_freeze(validate_schedule(schedule)))
    after = int(after_ms)
    for _ in range(_MAX_ROUNDS):
        found = [x for x in (_search(s, after) for s in scheds) if x is not None]
        if not found:
            return None
        first = min(found)
        covers = [e for e in (_hold_end(cons, first) for cons in excepts) if e is not None]
        if not covers:
            return first
        after = max(covers) - 1
    return None


# --- validation -------------------------------------------------------------------------------


def _check_list(items: object, where: str) -> list[dict[str, list[int]]]:
    if not isinstance(items, list):
        raise JobValidationError(where, "must be a list of constraint objects")
    return [_check_one(item, f"{where}[{i}]") for i, item in enumerate(items)]


def _check_one(item: object, where: str) -> dict[str, list[int]]:
    if not isinstance(item, dict):
        raise JobValidationError(where, "must be an object mapping constraint keys to lists")
    out: dict[str, list[int]] = {}
    for raw, values in item.items():
        key = _check_key(raw, f"{where}.{raw}")
        if key in out:
            raise JobValidationError(f"{where}.{raw}", f"repeats constraint {key!r}")
        out[key] = _check_ints(values, f"{where}.{raw}")
    return out


def _check_key(raw: object, where: str) -> str:
    base, sep, mod = raw.partition("_") if isinstance(raw, str) else ("", "", "")
    base = _ALIASES.get(base, base)
    if base not in _KEYS or (sep and mod not in ("a", "b")):
        raise JobValidationError(where, "unknown constraint key")
    return base + sep + mod


def _check_ints(values: object, where: str) -> list[int]:
    if not isinstance(values, list | tuple) or not values:
        raise JobValidationError(where, "must be a non-empty list of integers")
    out: list[int] = []
    for i, v in enumerate(values):
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise JobValidationError(f"{where}[{i}]", "must be an integer")
        out.append(v)
    return out


# --- constraints --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Constraint:
    key: str  # base key, e.g. "D"
    mod: str  # "", "a" (value >= bound) or "b" (value < bound)
    values: frozenset[int]
    bound: int  # first listed value for "a", last for "b"

    def test(self, value: int, is_last: bool) -> bool:
        """Whether ``value`` is allowed; ``is_last`` marks the maximum, which ``0`` stands for."""
        if self.mod == "a":
            return value >= self.bound
        if self.mod == "b":
            return value < self.bound
        return value in self.values or (is_last and 0 in self.values)

    def tick_order(self) -> tuple[int, int]:
        unit, span, top = _KEYS[self.key]
        if self.mod == "a":
            return (top - self.bound) * span, unit
        if self.mod == "b":
            return (self.bound - 1) * span, unit
        return span, unit

    def run_last(self, value: int, top: int) -> int:
        """Largest w <= top such that all of value..w are allowed (value itself is)."""
        if self.mod == "a":
            return top
        if self.mod == "b":
            return min(top, self.bound - 1)
        w = value
        while w < top and self.test(w + 1, self.key == "M" and w + 1 == 12):
            w += 1
        return w


def _constraint(key: str, values: _Ints) -> _Constraint:
    base, _, mod = key.partition("_")
    return _Constraint(base, mod, frozenset(values), values[0] if mod == "a" else values[-1])


def _dim(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _day_value(key: str, day: date) -> tuple[int, bool]:
    """(value, is-last) of a day-level key on ``day``; is-last gives ``0`` its meaning."""
    if key == "D":
        return day.day, day.day == _dim(day.year, day.month)
    if key == "d":
        dw = day.isoweekday() % 7 + 1  # 1 = Sunday ... 7 = Saturday
        return dw, dw == 7
    if key == "dc":
        return (day.day - 1) // 7 + 1, day.day > _dim(day.year, day.month) - 7
    if key == "dy":
        n = day.toordinal() - date(day.year, 1, 1).toordinal() + 1
        return n, n == (366 if calendar.isleap(day.year) else 365)
    if key == "wm":  # weeks start on Sunday; week 1 holds the 1st
        lead = date(day.year, day.month, 1).isoweekday() % 7
        week = (day.day - 1 + lead) // 7 + 1
        return week, week == (_dim(day.year, day.month) - 1 + lead) // 7 + 1
    if key == "wy":
        iso = day.isocalendar()
        return iso.week, iso.week == date(iso.year, 12, 28).isocalendar().week
    if key == "M":
        return day.month, day.month == 12
    return day.year, False


def _hold_end(cons: tuple[_Constraint, ...], x_ms: int) -> int | None:
    """None unless all ``cons`` hold at ``x_ms``; else a later time up to which they all hold."""
    end = _END_MS
    for c in cons:
        e = _constraint_end(c, x_ms)
        if e is None:
            return None
        end = min(end, e)
    return end


def _constraint_end(c: _Constraint, x_ms: int) -> int | None:
    secs = x_ms // 1000
    if c.key == "fd":
        if not c.test(x_ms, False):
            return None
        return x_ms + 1 if not c.mod else _END_MS if c.mod == "a" else c.bound
    if c.key in _TIME_KEYS:
        span, period = _TIME_KEYS[c.key]
        value = secs % period // span
        if not c.test(value, False):
            return None
        return (secs - secs % period + (c.run_last(value, period // span - 1) + 1) * span) * 1000
    day = date.fromordinal(_EPOCH + secs // _DAY)
    if not c.test(*_day_value(c.key, day)):
        return None
    if c.key == "M":
        last = c.run_last(day.month, 12)
        after = date(day.year + 1, 1, 1) if last == 12 else date(day.year, last + 1, 1)
    elif c.key == "Y":
        after = date(c.run_last(day.year, 2099) + 1, 1, 1)
    else:  # other day-level keys: the end of the run of days (up to a year) where c holds
        nxt = day.toordinal() + 1
        while nxt - day.toordinal() < 366 and c.test(*_day_value(c.key, date.fromordinal(nxt))):
            nxt += 1
        after = date.fromordinal(nxt)
    return (after.toordinal() - _EPOCH) * _DAY * 1000


def _is_period_start(unit: int, x_ms: int) -> bool:
    if unit == _INSTANT:
        return True
    step = {_SEC: 1, _MIN: 60, _HOUR: 3600}.get(unit, _DAY)
    if x_ms % (step * 1000):
        return False
    day = date.fromordinal(_EPOCH + x_ms // 1000 // _DAY)
    if unit == _WEEK_M:
        return day.day == 1 or day.isoweekday() == 7
    if unit == _WEEK_Y:
        return day.isoweekday() == 1
    return unit < _MONTH or (day.day == 1 and (unit == _MONTH or day.month == 1))


# --- compiled schedules and the search ----------------------------------------------------------


def _allowed(cons: tuple[_Constraint, ...], key: str, lo: int, hi: int) -> _Ints:
    """Values lo..hi allowed by the (context-free) constraints on ``key``."""
    mine = [c for c in cons if c.key == key]
    return tuple(
        v for v in range(lo, hi + 1) if all(c.test(v, v == 12 and key == "M") for c in mine)
    )


def _next_hms(lo: int, hours: _Ints, mins: _Ints, secs: _Ints) -> int | None:
    """Smallest second of day >= lo whose hour, minute and second are all allowed."""
    h0, m0, s0 = lo // 3600, lo // 60 % 60, lo % 60
    for h in hours[bisect_left(hours, h0) :]:
        for m in mins[bisect_left(mins, m0 if h == h0 else 0) :]:
            k = bisect_left(secs, s0 if (h, m) == (h0, m0) else 0)
            if k < len(secs):
                return h * 3600 + m * 60 + secs[k]
    return None


@dataclass(frozen=True, slots=True)
class _Compiled:
    cons: tuple[_Constraint, ...]
    unit: int
    instants: _Ints | None  # plain fd values, when present (the only candidates)
    years: _Ints
    months: _Ints
    hours: _Ints
    minutes: _Ints
    seconds: _Ints
    tods: _Ints | None  # plain t values that fit hours/minutes/seconds
    tod_lo: int  # from t_a
    tod_hi: int  # from t_b (exclusive)
    lo_s: int  # from fd_a
    hi_s: int  # from fd_b (exclusive)

    def first_tod(self, lo: int) -> int | None:
        lo = max(lo, self.tod_lo)
        if self.tods is not None:
            i = bisect_left(self.tods, lo)
            tod = self.tods[i] if i < len(self.tods) else None
        else:
            tod = _next_hms(lo, self.hours, self.minutes, self.seconds)
        return tod if tod is not None and tod < self.tod_hi else None

    def day_ok(self, day: date) -> bool:
        if self.unit == _WEEK_M and day.day != 1 and day.isoweekday() != 7:
            return False
        if self.unit == _WEEK_Y and day.isoweekday() != 1:
            return False
        return all(c.test(*_day_value(c.key, day)) for c in self.cons if c.key in _DAY_KEYS)

    def days(self, year: int, month: int, first: int) -> Iterator[int]:
        """Candidate days of a month from ``first`` on; a plain ``D`` lists them directly."""
        dim = _dim(year, month)
        plain_d = [c for c in self.cons if c.key == "D" and not c.mod]
        if self.unit >= _MONTH:
            cands: list[int] | range = [1]
        elif plain_d:
            cands = sorted({dim if v == 0 else v for v in plain_d[0].values if 0 <= v <= dim})
        else:
            cands = range(1, dim + 1)
        return (d for d in cands if d >= first)


def _compile(sched: _Frozen) -> _Compiled:
    cons = tuple(_constraint(k, v) for k, v in sched)
    tick = min(cons, key=_Constraint.tick_order, default=None)
    unit = _SEC if tick is None else _KEYS[tick.key][0]
    if tick is not None and tick.key == "fd" and not tick.mod:
        unit = _INSTANT
    by_key = {c.key + ("_" + c.mod if c.mod else ""): c for c in cons}
    hours = _allowed(cons, "h", 0, 23 if unit <= _HOUR else 0)
    minutes = _allowed(cons, "m", 0, 59 if unit <= _MIN else 0)
    seconds = _allowed(cons, "s", 0, 59 if unit <= _SEC else 0)
    tods = None
    if "t" in by_key:  # keep the t values whose hour, minute and second are allowed too
        hms = (hours, minutes, seconds)
        tods = tuple(
            sorted(v for v in by_key["t"].values if 0 <= v < _DAY and _next_hms(v, *hms) == v)
        )
    fd_a, fd_b = by_key.get("fd_a"), by_key.get("fd_b")
    return _Compiled(
        cons=cons,
        unit=unit,
        instants=tuple(sorted(by_key["fd"].values)) if "fd" in by_key else None,
        years=_allowed(cons, "Y", 1970, 2099),
        months=_allowed(cons, "M", 1, 12 if unit < _YEAR else 1),
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        tods=tods,
        tod_lo=by_key["t_a"].bound if "t_a" in by_key else 0,
        tod_hi=by_key["t_b"].bound if "t_b" in by_key else _DAY,
        lo_s=-(-fd_a.bound // 1000) if fd_a else 0,
        hi_s=-(-fd_b.bound // 1000) if fd_b else _END_S,
    )


def _freeze(norm: ScheduleDict) -> tuple[tuple[_Frozen, ...], tuple[_Frozen, ...]]:
    def one(s: dict[str, list[int]]) -> _Frozen:
        return tuple((k, tuple(v)) for k, v in s.items())

    return tuple(map(one, norm["schedules"])), tuple(map(one, norm["exceptions"]))


@lru_cache(maxsize=512)
def _compile_all(
    key: tuple[tuple[_Frozen, ...], tuple[_Frozen, ...]],
) -> tuple[tuple[_Compiled, ...], tuple[tuple[_Constraint, ...], ...]]:
    scheds, excepts = key
    return tuple(map(_compile, scheds)), tuple(tuple(_constraint(*kv) for kv in e) for e in excepts)


def _search(c: _Compiled, after_ms: int) -> int | None:
    """Earliest occurrence of one schedule strictly after ``after_ms``, or None."""
    if c.instants is not None:
        for x in c.instants[bisect_left(c.instants, after_ms + 1) :]:
            if x >= _END_MS:
                break
            if x >= 0 and _is_period_start(c.unit, x) and _hold_end(c.cons, x) is not None:
                return x
        return None
    start = max(after_ms // 1000 + 1, c.lo_s, 0)
    limit = min(_END_S, c.hi_s)
    if start >= limit or not c.years or not c.months or c.first_tod(0) is None:
        return None
    first_day = date.fromordinal(_EPOCH + start // _DAY)
    for day in _candidate_days(c, first_day):
        day_s = (day.toordinal() - _EPOCH) * _DAY
        if day_s >= limit:
            return None
        tod = c.first_tod(start - day_s if day == first_day else 0)
        if tod is not None:
            return (day_s + tod) * 1000 if day_s + tod < limit else None
    return None


def _candidate_days(c: _Compiled, first: date) -> Iterator[date]:
    """Days from ``first`` on, in order, whose year, month and day constraints hold."""
    for year in c.years[bisect_left(c.years, first.year) :]:
        for month in c.months:
            if (year, month) < (first.year, first.month):
                continue
            start = first.day if (year, month) == (first.year, first.month) else 1
            for d in c.days(year, month, start):
                day = date(year, month, d)
                if c.day_ok(day):
                    yield day
