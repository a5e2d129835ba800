"""Tests of later.js schedules: validation, cron parsing and next_occurrence (SPEC §7)."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcollection.core.schedule import (
    is_schedule,
    next_occurrence,
    parse_cron,
    validate_schedule,
)
from jobcollection.errors import JobValidationError


def T(text: str) -> int:
    """ISO-8601 UTC text (no zone) to epoch milliseconds."""
    dt = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)
    return dt.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")


def S(*schedules: dict[str, Any], exceptions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"schedules": list(schedules), "exceptions": exceptions or []}


EVERY_5_MIN = S({"m": list(range(0, 60, 5))})
FD = T("2030-01-01T00:00:00.123")

# (id, schedule, after, expected next occurrence or None); times are UTC.
# 2024-02-01 is a Thursday; 2024 is a leap year; 2026 has 53 ISO weeks.
NEXT_CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    # SPEC §7 worked examples
    ("spec-5min-mid", EVERY_5_MIN, "2024-01-01T10:07:30", "2024-01-01T10:10:00"),
    ("spec-5min-exact", EVERY_5_MIN, "2024-01-01T10:10:00", "2024-01-01T10:15:00"),
    ("5min-1ms-before", EVERY_5_MIN, "2024-01-01T10:09:59.999", "2024-01-01T10:10:00"),
    ("spec-h10", S({"h": [10]}), "2024-01-01T09:59:59", "2024-01-01T10:00:00"),
    ("spec-h10-daily", S({"h": [10]}), "2024-01-01T10:00:00", "2024-01-02T10:00:00"),
    ("spec-exc-skip-11", S({"m": [0, 30]}, exceptions=[{"h": [11]}]),
     "2024-01-01T10:45", "2024-01-01T12:00:00"),
    ("spec-exc-before", S({"m": [0, 30]}, exceptions=[{"h": [11]}]),
     "2024-01-01T10:15", "2024-01-01T10:30:00"),
    # s, m, h, t
    ("s", S({"s": [15, 45]}), "2024-01-01T10:00:20", "2024-01-01T10:00:45"),
    ("s-wrap", S({"s": [15, 45]}), "2024-01-01T10:00:50", "2024-01-01T10:01:15"),
    ("s-zero", S({"s": [0]}), "2024-01-01T10:00:00", "2024-01-01T10:01:00"),
    ("m-year-rollover", S({"m": [59]}), "2024-12-31T23:59:00", "2025-01-01T00:59:00"),
    ("h-zero-rollover", S({"h": [0]}), "2024-12-31T12:00", "2025-01-01T00:00:00"),
    ("h-m-s", S({"h": [7], "m": [30], "s": [5]}), "2024-01-01T07:30:05", "2024-01-02T07:30:05"),
    ("t", S({"t": [36900]}), "2024-01-01T10:14:59.999", "2024-01-01T10:15:00"),
    ("t-next-day", S({"t": [36900]}), "2024-01-01T10:15:00", "2024-01-02T10:15:00"),
    ("t-zero", S({"t": [0]}), "2024-01-01T00:00:00", "2024-01-02T00:00:00"),
    ("t-with-h", S({"t": [3600, 7200], "h": [2]}), "2024-01-01T00:00", "2024-01-01T02:00:00"),
    # D (0 = last day of month), month ends and leap years
    ("D-31-skips-april", S({"D": [31]}), "2024-04-01", "2024-05-31T00:00:00"),
    ("D-30-skips-feb", S({"D": [30]}), "2024-01-31", "2024-03-30T00:00:00"),
    ("D-29-feb-leap", S({"D": [29], "M": [2]}), "2023-03-01", "2024-02-29T00:00:00"),
    ("D-31-feb-never", S({"D": [31], "M": [2]}), "2024-01-01", None),
    ("D-0-feb", S({"D": [0]}), "2023-02-01", "2023-02-28T00:00:00"),
    ("D-0-feb-leap", S({"D": [0]}), "2024-02-01", "2024-02-29T00:00:00"),
    ("D-0-after-last", S({"D": [0]}), "2024-02-29T00:00", "2024-03-31T00:00:00"),
    ("D-1-year-rollover", S({"D": [1], "h": [6]}), "2024-12-15", "2025-01-01T06:00:00"),
    # d / dw (1 = Sunday, 0 = Saturday)
    ("d-sunday", S({"d": [1]}), "2024-02-01", "2024-02-04T00:00:00"),
    ("d-0-saturday", S({"d": [0]}), "2024-02-01", "2024-02-03T00:00:00"),
    ("dw-alias", S({"dw": [2]}), "2024-02-01", "2024-02-05T00:00:00"),
    ("d-same-day-later", S({"d": [5], "h": [12]}), "2024-02-01T11:00", "2024-02-01T12:00:00"),
    # dc (0 = last 7 days)
    ("dc-2nd-tuesday", S({"dc": [2], "d": [3]}), "2024-02-01", "2024-02-13T00:00:00"),
    ("dc-0", S({"dc": [0]}), "2024-02-01", "2024-02-23T00:00:00"),
    ("dc-0-last-friday", S({"dc": [0], "d": [6]}), "2024-02-01", "2024-02-23T00:00:00"),
    ("dc-5-not-in-feb-2023", S({"dc": [5]}), "2023-02-01", "2023-03-29T00:00:00"),
    # dy (0 = last day of year)
    ("dy-60-leap", S({"dy": [60]}), "2024-01-01", "2024-02-29T00:00:00"),
    ("dy-60", S({"dy": [60]}), "2023-01-01", "2023-03-01T00:00:00"),
    ("dy-0", S({"dy": [0]}), "2024-06-01", "2024-12-31T00:00:00"),
    ("dy-366", S({"dy": [366]}), "2025-01-01", "2028-12-31T00:00:00"),
    # wm (weeks start Sunday, week 1 holds the 1st; 0 = last week)
    ("wm-1", S({"wm": [1]}), "2024-02-01", "2024-03-01T00:00:00"),
    ("wm-2", S({"wm": [2]}), "2024-02-01", "2024-02-04T00:00:00"),
    ("wm-0", S({"wm": [0]}), "2024-02-01", "2024-02-25T00:00:00"),
    ("wm-6", S({"wm": [6]}), "2024-02-01", "2024-03-31T00:00:00"),
    # wy (ISO weeks start Monday; 0 = last week of the ISO year)
    ("wy-1", S({"wy": [1]}), "2024-02-01", "2024-12-30T00:00:00"),
    ("wy-53", S({"wy": [53]}), "2024-01-01", "2026-12-28T00:00:00"),
    ("wy-0", S({"wy": [0]}), "2024-02-01", "2024-12-23T00:00:00"),
    # M (0 = December), Y
    ("M", S({"M": [2]}), "2024-02-01", "2025-02-01T00:00:00"),
    ("M-0", S({"M": [0]}), "2024-02-01", "2024-12-01T00:00:00"),
    ("Y", S({"Y": [2030]}), "2024-02-01", "2030-01-01T00:00:00"),
    ("Y-past", S({"Y": [2020]}), "2024-02-01", None),
    ("Y-2100", S({"Y": [2100]}), "2024-02-01", None),
    ("last-second", S({"Y": [2099], "M": [12], "D": [31], "t": [86399]}),
     "2024-01-01", "2099-12-31T23:59:59"),
    ("after-last-second", S({}), "2099-12-31T23:59:59", None),
    # fd (exact instant, ms)
    ("fd", S({"fd": [FD]}), "2024-01-01", "2030-01-01T00:00:00.123"),
    ("fd-passed", S({"fd": [FD]}), "2030-01-01T00:00:00.123", None),
    ("fd-many", S({"fd": [FD, T("2029-06-01")]}), "2024-01-01", "2029-06-01T00:00:00"),
    ("fd-and-h", S({"fd": [FD, T("2029-06-01T10:00")], "h": [10]}),
     "2024-01-01", "2029-06-01T10:00:00"),
    ("fd-beyond-2099", S({"fd": [T("2100-01-01")]}), "2024-01-01", None),
    # modifiers: _a = value >= first element, _b = value < last element
    ("h_a", S({"h_a": [20]}), "2024-01-01T10:00", "2024-01-01T20:00:00"),
    ("h_a-next", S({"h_a": [20]}), "2024-01-01T20:00", "2024-01-01T21:00:00"),
    ("h_b", S({"h_b": [3]}), "2024-01-01T10:00", "2024-01-02T00:00:00"),
    ("h_a-first-element", S({"h_a": [20, 5]}), "2024-01-01T10:00", "2024-01-01T20:00:00"),
    ("h_b-last-element", S({"h_b": [20, 3]}), "2024-01-01T10:00", "2024-01-02T00:00:00"),
    ("h_a-23-ticks-hourly", S({"m": [0, 30], "h_a": [23]}),
     "2024-01-01T23:00", "2024-01-02T23:00:00"),
    ("h_a-22-ticks-m", S({"m": [0, 30], "h_a": [22]}), "2024-01-01T22:00", "2024-01-01T22:30:00"),
    ("m_b", S({"m_b": [2]}), "2024-01-01T10:01", "2024-01-01T11:00:00"),
    ("s_a", S({"s_a": [58]}), "2024-01-01T10:00:58", "2024-01-01T10:00:59"),
    ("t_a", S({"t_a": [61200]}), "2024-01-01T16:00", "2024-01-01T17:00:00"),
    ("t_a-every-second", S({"t_a": [61200]}), "2024-01-01T17:30:00", "2024-01-01T17:30:01"),
    ("t_a-next-day", S({"t_a": [61200]}), "2024-01-01T23:59:59", "2024-01-02T17:00:00"),
    ("t_a-5min", S({"m": list(range(0, 60, 5)), "t_a": [61200]}),
     "2024-01-01T12:00", "2024-01-01T17:00:00"),
    ("t_b", S({"m": [0, 30], "t_b": [3600]}), "2024-01-01T00:30", "2024-01-02T00:00:00"),
    ("D_a", S({"D_a": [25]}), "2024-02-10", "2024-02-25T00:00:00"),
    ("D_b", S({"D_b": [3]}), "2024-02-10", "2024-03-01T00:00:00"),
    ("d_a", S({"d_a": [6]}), "2024-02-01T12:00", "2024-02-02T00:00:00"),
    ("dw_b-alias", S({"dw_b": [2]}), "2024-02-01T12:00", "2024-02-04T00:00:00"),
    ("dc_a", S({"dc_a": [5]}), "2024-02-01", "2024-02-29T00:00:00"),
    ("dy_b", S({"dy_b": [2]}), "2024-02-01", "2025-01-01T00:00:00"),
    ("wm_a", S({"wm_a": [5]}), "2024-02-01", "2024-02-25T00:00:00"),
    ("wy_b", S({"wy_b": [2], "h": [1]}), "2024-02-01", "2024-12-30T01:00:00"),
    ("M_a", S({"M_a": [11]}), "2024-02-01", "2024-11-01T00:00:00"),
    ("M_b", S({"M_b": [2]}), "2024-02-01", "2025-01-01T00:00:00"),
    ("Y_a", S({"Y_a": [2030]}), "2024-02-01", "2030-01-01T00:00:00"),
    ("Y_b", S({"Y_b": [2024]}), "2024-02-01", None),
    ("fd_a", S({"fd_a": [T("2030-01-01T00:00:00.500")], "h": [10]}),
     "2024-01-01", "2030-01-01T10:00:00"),
    ("fd_a-seconds", S({"fd_a": [T("2030-01-01T00:00:00.500")]}),
     "2024-01-01", "2030-01-01T00:00:01"),
    ("fd_b", S({"fd_b": [T("2030-01-01T00:00:01")], "m": [0]}),
     "2029-12-31T23:30", "2030-01-01T00:00:00"),
    ("fd_b-passed", S({"fd_b": [T("2030-01-01T00:00:01")], "m": [0]}), "2030-01-01T00:00", None),
    # no constraint = every second; OR of schedules; empty list of schedules
    ("empty-every-second", S({}), "2024-01-01T10:00:00.500", "2024-01-01T10:00:01"),
    ("or", S({"h": [10]}, {"h": [8]}), "2024-01-01T09:00", "2024-01-01T10:00:00"),
    ("or-next-day", S({"h": [10]}, {"h": [8]}), "2024-01-01T10:00", "2024-01-02T08:00:00"),
    ("no-schedules", S(), "2024-01-01", None),
    # exceptions
    ("exc-weekend", S({"h": [10]}, exceptions=[{"d": [1, 7]}]),
     "2024-02-02T10:00", "2024-02-05T10:00:00"),
    ("exc-months", S({"m": [0]}, exceptions=[{"M": list(range(1, 12))}]),
     "2024-02-01", "2024-12-01T00:00:00"),
    ("exc-two", S({"h": [10]}, exceptions=[{"d": [7]}, {"d": [1]}]),
     "2024-02-02T10:00", "2024-02-05T10:00:00"),
    ("exc-D-run", S({"s": [0]}, exceptions=[{"D": list(range(1, 29))}]),
     "2024-02-01", "2024-02-29T00:00:00"),
    ("exc-fd_a", S({"h": [10]}, exceptions=[{"fd_a": [T("2024-01-02")]}]),
     "2024-01-01T10:00", None),
    ("exc-fd_b", S({"h": [10]}, exceptions=[{"fd_b": [T("2024-03-01")]}]),
     "2024-01-01", "2024-03-01T10:00:00"),
    ("exc-fd", S({"h": [10]}, exceptions=[{"fd": [T("2024-01-02T10:00")]}]),
     "2024-01-01T10:00", "2024-01-03T10:00:00"),
    ("exc-t_a", S({}, exceptions=[{"t_a": [3600]}]), "2024-01-01T00:59:59", "2024-01-02T00:00:00"),
    ("exc-all", S({"s": [0]}, exceptions=[{"s": [0]}]), "2024-01-01", None),
    ("exc-empty", S({"h": [1]}, exceptions=[{}]), "2024-01-01", None),
    ("exc-other-schedule", S({"h": [10]}, {"h": [12]}, exceptions=[{"h": [10]}]),
     "2024-01-01", "2024-01-01T12:00:00"),
    # later.js 1.2.0 reference objects of SPEC §7 (as meteor-job stores them)
    ("text-every-5-mins", {**EVERY_5_MIN, "error": -1},
     "2024-01-01T10:07:30", "2024-01-01T10:10:00"),
    ("text-at-10:15", {"schedules": [{"t": [36900]}], "exceptions": [], "error": -1},
     "2024-01-01T12:00", "2024-01-02T10:15:00"),
    ("text-after-5pm", {"schedules": [{"t_a": [61200]}], "exceptions": [], "error": -1},
     "2024-01-01T12:00", "2024-01-01T17:00:00"),
    ("text-weekday-except-sat", S({"t": [28800], "d": [2, 3, 4, 5, 6]}, exceptions=[{"d": [7]}]),
     "2024-02-02T09:00", "2024-02-05T08:00:00"),
    ("cron-5min", S({"s": [0], "m": list(range(0, 60, 5))}),
     "2024-01-01T10:07:30", "2024-01-01T10:10:00"),
    ("cron-9-weekdays", S({"s": [0], "m": [0], "h": [9], "d": [2, 3, 4, 5, 6]}),
     "2024-02-02T09:00", "2024-02-05T09:00:00"),
    ("cron-daily", S({"s": [0], "m": [0], "h": [0]}), "2024-02-29T00:00", "2024-03-01T00:00:00"),
    # search bounds
    ("before-epoch", S({"h": [1]}), "1969-12-31T12:00", "1970-01-01T01:00:00"),
    ("missing-exceptions-key", {"schedules": [{"h": [10]}]}, "2024-01-01", "2024-01-01T10:00:00"),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "after", "expected"), [c[1:] for c in NEXT_CASES],
                         ids=[c[0] for c in NEXT_CASES])  # fmt: skip
def test_next_occurrence(schedule: dict[str, Any], after: str, expected: str | None) -> None:
    assert iso(next_occurrence(schedule, T(after))) == expected


@pytest.mark.parametrize("after", [T("2100-01-01"), 10**18, 8640000000000000])
def test_next_occurrence_far_future_is_none(after: int) -> None:
    assert next_occurrence(EVERY_5_MIN, after) is None


def test_next_occurrence_rejects_invalid_schedule() -> None:
    with pytest.raises(JobValidationError) as err:
        next_occurrence({"schedules": [{"q": [1]}]}, 0)
    assert err.value.field == "repeatWait.schedules[0].q"


def test_next_occurrence_is_fast() -> None:
    after = T("2024-01-01T10:07:30")
    next_occurrence(EVERY_5_MIN, after)
    start = time.perf_counter()
    for i in range(500):
        next_occurrence(EVERY_5_MIN, after + i * 997)
    assert (time.perf_counter() - start) / 500 < 0.001


def test_next_occurrence_never_is_bounded() -> None:
    start = time.perf_counter()
    assert next_occurrence(S({"D": [31], "d": [1], "M": [2]}), 0) is None
    assert next_occurrence(S({"m": [0]}, exceptions=[{"s": [0]}]), 0) is None
    assert time.perf_counter() - start < 2


# --- validate_schedule / is_schedule --------------------------------------------------------------


def test_validate_normalizes() -> None:
    raw = {"schedules": [{"dw": [1.0, 7], "h_a": [3], "dw_b": [4]}], "error": -1}
    assert validate_schedule(raw) == {
        "schedules": [{"d": [1, 7], "h_a": [3], "d_b": [4]}],
        "exceptions": [],
    }


def test_validate_returns_a_copy() -> None:
    raw = {"schedules": [{"h": [1]}], "exceptions": [{"d": [1]}]}
    out = validate_schedule(raw)
    out["schedules"][0]["h"].append(2)
    out["exceptions"].clear()
    assert raw == {"schedules": [{"h": [1]}], "exceptions": [{"d": [1]}]}


def test_validate_accepts_every_key() -> None:
    keys = ["s", "m", "h", "t", "D", "d", "dc", "dy", "wm", "wy", "M", "Y", "fd"]
    sched = {k + suffix: [1] for k in keys for suffix in ("", "_a", "_b")}
    assert validate_schedule({"schedules": [sched], "exceptions": None}) == {
        "schedules": [sched],
        "exceptions": [],
    }


INVALID: list[tuple[object, str]] = [
    (None, "repeatWait"),
    ([], "repeatWait"),
    ({}, "repeatWait.schedules"),
    ({"schedules": {}}, "repeatWait.schedules"),
    ({"schedules": None}, "repeatWait.schedules"),
    ({"schedules": [], "foo": 1}, "repeatWait.foo"),
    ({"schedules": [[]]}, "repeatWait.schedules[0]"),
    ({"schedules": [{"h": [1]}, {"xyz": [1]}]}, "repeatWait.schedules[1].xyz"),
    ({"schedules": [{"h_c": [1]}]}, "repeatWait.schedules[0].h_c"),
    ({"schedules": [{"h_": [1]}]}, "repeatWait.schedules[0].h_"),
    ({"schedules": [{"h_a_b": [1]}]}, "repeatWait.schedules[0].h_a_b"),
    ({"schedules": [{"H": [1]}]}, "repeatWait.schedules[0].H"),
    ({"schedules": [{1: [1]}]}, "repeatWait.schedules[0].1"),
    ({"schedules": [{"h": 1}]}, "repeatWait.schedules[0].h"),
    ({"schedules": [{"h": []}]}, "repeatWait.schedules[0].h"),
    ({"schedules": [{"h": "1"}]}, "repeatWait.schedules[0].h"),
    ({"schedules": [{"h": [True]}]}, "repeatWait.schedules[0].h[0]"),
    ({"schedules": [{"h": [1, 1.5]}]}, "repeatWait.schedules[0].h[1]"),
    ({"schedules": [{"h": ["1"]}]}, "repeatWait.schedules[0].h[0]"),
    ({"schedules": [{"h": [float("nan")]}]}, "repeatWait.schedules[0].h[0]"),
    ({"schedules": [{"h": [float("inf")]}]}, "repeatWait.schedules[0].h[0]"),
    ({"schedules": [{"d": [1], "dw": [2]}]}, "repeatWait.schedules[0].dw"),
    ({"schedules": [], "exceptions": {}}, "repeatWait.exceptions"),
    ({"schedules": [], "exceptions": [5]}, "repeatWait.exceptions[0]"),
    ({"schedules": [], "exceptions": [{"m": [1, None]}]}, "repeatWait.exceptions[0].m[1]"),
]


@pytest.mark.parametrize(("value", "field"), INVALID, ids=[f for _, f in INVALID])
def test_validate_rejects(value: object, field: str) -> None:
    with pytest.raises(JobValidationError) as err:
        validate_schedule(value)
    assert err.value.field == field


def test_validate_uses_given_field_name() -> None:
    with pytest.raises(JobValidationError) as err:
        validate_schedule({"schedules": [{"x": [1]}]}, "options.wait")
    assert err.value.field == "options.wait.schedules[0].x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"schedules": []}, True),
        ({"schedules": [{"x": 1}], "junk": 1}, True),
        ({}, False),
        ({"schedule": []}, False),
        (5000, False),
        (None, False),
        ([{"schedules": []}], False),
    ],
)
def test_is_schedule(value: object, expected: bool) -> None:
    assert is_schedule(value) is expected


# --- parse_cron -----------------------------------------------------------------------------------


def C(**sched: list[int]) -> dict[str, Any]:
    return {"schedules": [sched], "exceptions": []}


CRON_CASES: list[tuple[str, dict[str, Any]]] = [
    # later.js 1.2.0 reference outputs (SPEC §7)
    ("*/5 * * * *", C(s=[0], m=list(range(0, 60, 5)))),
    ("0 9 * * 1-5", C(s=[0], m=[0], h=[9], d=[2, 3, 4, 5, 6])),
    ("@daily", C(s=[0], m=[0], h=[0])),
    # shortcuts
    ("@DAILY", C(s=[0], m=[0], h=[0])),
    ("@yearly", C(s=[0], m=[0], h=[0], D=[1], M=[1])),
    ("@annually", C(s=[0], m=[0], h=[0], D=[1], M=[1])),
    ("@monthly", C(s=[0], m=[0], h=[0], D=[1])),
    ("@weekly", C(s=[0], m=[0], h=[0], d=[1])),
    ("@hourly", C(s=[0], m=[0])),
    # field counts
    ("* * * * *", C(s=[0])),
    ("* * * * * *", C(s=list(range(60)))),
    ("30 0 12 * * ?", C(s=[30], m=[0], h=[12])),
    ("0 0 12 1 JAN ? 2030", C(s=[0], m=[0], h=[12], D=[1], M=[1], Y=[2030])),
    ("0 0 0 * * * 2030-2032", C(s=[0], m=[0], h=[0], Y=[2030, 2031, 2032])),
    ("  */5   *  * * *  ", C(s=[0], m=list(range(0, 60, 5)))),
    # lists, ranges, steps
    ("*/15 9-17/4 * * *", C(s=[0], m=[0, 15, 30, 45], h=[9, 13, 17])),
    ("5/20 * * * *", C(s=[0], m=[5, 25, 45])),
    ("0 0 1,15 */3 *", C(s=[0], m=[0], h=[0], D=[1, 15], M=[1, 4, 7, 10])),
    ("0 0 15,1,15 * *", C(s=[0], m=[0], h=[0], D=[1, 15])),
    ("0 0 L * *", C(s=[0], m=[0], h=[0], D=[0])),
    ("0 0 * 2-3,11 *", C(s=[0], m=[0], h=[0], M=[2, 3, 11])),
    # names and day-of-week mapping (cron 0 = Sunday = later 1; 7 = Sunday too)
    ("0 0 * JAN-MAR,dec *", C(s=[0], m=[0], h=[0], M=[1, 2, 3, 12])),
    ("0 0 * * MON-FRI", C(s=[0], m=[0], h=[0], d=[2, 3, 4, 5, 6])),
    ("0 0 * * sun,Sat", C(s=[0], m=[0], h=[0], d=[1, 7])),
    ("0 0 * * 7", C(s=[0], m=[0], h=[0], d=[1])),
    ("0 0 * * 0,7", C(s=[0], m=[0], h=[0], d=[1])),
    ("0 0 * * 5-7", C(s=[0], m=[0], h=[0], d=[1, 6, 7])),
    ("0 0 * * */2", C(s=[0], m=[0], h=[0], d=[1, 3, 5, 7])),
    ("0 0 * * 1/2", C(s=[0], m=[0], h=[0], d=[2, 4, 6])),
]


@pytest.mark.parametrize(("expr", "expected"), CRON_CASES, ids=[c[0] for c in CRON_CASES])
def test_parse_cron(expr: str, expected: dict[str, Any]) -> None:
    assert parse_cron(expr) == expected


def test_parse_cron_key_order_matches_later() -> None:
    sched = parse_cron("0 0 0 1 1 0 2030")["schedules"][0]
    assert list(sched) == ["s", "m", "h", "D", "M", "Y", "d"]


def test_parse_cron_output_is_a_valid_schedule() -> None:
    sched = parse_cron("0 9 * * 1-5")
    assert validate_schedule(sched) == sched
    assert iso(next_occurrence(sched, T("2024-02-02T09:00"))) == "2024-02-05T09:00:00"


CRON_INVALID: list[tuple[object, str]] = [
    ("", "5, 6 or 7 fields"),
    ("* * * *", "5, 6 or 7 fields"),
    ("* * * * * * * *", "5, 6 or 7 fields"),
    ("@reboot", "shortcut"),
    ("60 * * * *", "minute"),
    ("* 24 * * *", "hour"),
    ("* * 0 * *", "day-of-month"),
    ("* * 32 * *", "day-of-month"),
    ("* * * 13 *", "month"),
    ("* * * 0 *", "month"),
    ("* * * * 8", "day-of-week"),
    ("60 * * * * *", "second"),
    ("0 0 0 1 1 * 1969", "year"),
    ("0 0 0 1 1 * 2100", "year"),
    ("*/0 * * * *", "minute"),
    ("*/x * * * *", "minute"),
    ("5-1 * * * *", "minute"),
    ("a * * * *", "minute"),
    ("-1 * * * *", "minute"),
    ("1,,2 * * * *", "minute"),
    ("* * * FOO *", "month"),
    ("* * * JAN-MON *", "month"),
    ("* * * * MON-JAN", "day-of-week"),
    ("* L * * *", "hour"),
    ("* * * * 1#2", "day-of-week"),
    ("* * \u0661 * *", "day-of-month"),
    (None, "string"),
    (5, "string"),
]


@pytest.mark.parametrize(("expr", "reason"), CRON_INVALID, ids=[repr(c[0]) for c in CRON_INVALID])
def test_parse_cron_rejects(expr: object, reason: str) -> None:
    with pytest.raises(JobValidationError) as err:
        parse_cron(expr)  # type: ignore[arg-type]
    assert err.value.field == "cron"
    assert reason in err.value.problem


# --- property test against a brute-force search ---------------------------------------------------

_UNIT_STEP = {"s": 1, "m": 60, "h": 3600}  # coarser keys step by days
# how far (seconds) the brute force looks, by its step
_WINDOW = {1: 2 * 3600, 60: 4 * 86400, 3600: 200 * 86400, 86400: 8 * 366 * 86400}


def _field(key: str, dt: datetime) -> tuple[int, bool]:
    """(value, whether it is the last one, which 0 stands for) of a key, computed independently."""
    dim = calendar.monthrange(dt.year, dt.month)[1]
    if key in ("s", "m", "h"):
        return {"s": dt.second, "m": dt.minute, "h": dt.hour}[key], False
    if key == "D":
        return dt.day, dt.day == dim
    if key == "d":
        return int(dt.strftime("%w")) + 1, dt.strftime("%a") == "Sat"
    if key == "dc":
        return (dt.day - 1) // 7 + 1, dt.day + 7 > dim
    if key == "dy":
        return dt.timetuple().tm_yday, dt.month == 12 and dt.day == 31
    if key == "wm":
        weeks = calendar.Calendar(calendar.SUNDAY).monthdayscalendar(dt.year, dt.month)
        week = next(i for i, w in enumerate(weeks, 1) if dt.day in w)
        return week, week == len(weeks)
    if key == "wy":
        iso_year, week, _ = dt.isocalendar()
        try:
            date.fromisocalendar(iso_year, 53, 1)
        except ValueError:
            return week, week == 52
        return week, week == 53
    return dt.month, dt.month == 12


def _holds(sched: dict[str, list[int]], secs: int) -> bool:
    dt = datetime.fromtimestamp(secs, UTC)
    for key, values in sched.items():
        value, is_last = _field(key, dt)
        if value not in values and not (0 in values and is_last):
            return False
    return True


def _finest(sched: dict[str, list[int]]) -> str:
    order = ["s", "m", "h", "D", "d", "dc", "dy", "wm", "wy", "M"]
    return min(sched, key=order.index) if sched else "s"


def _is_start(key: str, secs: int) -> bool:
    dt = datetime.fromtimestamp(secs, UTC)
    if key == "wm":
        return dt.day == 1 or dt.strftime("%w") == "0"
    if key == "wy":
        return dt.isoweekday() == 1
    if key == "M":
        return dt.day == 1
    return True


def _brute(sched: dict[str, Any], after_ms: int) -> tuple[int | None, int]:
    """First occurrence within the window (or None) and the window's end, in ms."""
    keys = [_finest(s) for s in sched["schedules"]]
    step = min(_UNIT_STEP.get(k, 86400) for k in keys)
    end = min(after_ms // 1000 + _WINDOW[step], T("2100-01-01") // 1000 - 1)  # search limit
    x = after_ms // 1000 // step * step
    while x <= end:
        if x * 1000 > after_ms:
            ok = any(
                x % _UNIT_STEP.get(k, 86400) == 0 and _is_start(k, x) and _holds(s, x)
                for k, s in zip(keys, sched["schedules"], strict=True)
            )
            if ok and not any(_holds(e, x) for e in sched["exceptions"]):
                return x * 1000, end * 1000
        x += step
    return None, end * 1000


_RANGES = {
    "s": (0, 59), "m": (0, 59), "h": (0, 23), "D": (0, 31), "d": (0, 7), "dc": (0, 5),
    "dy": (0, 366), "wm": (0, 6), "wy": (0, 53), "M": (0, 12),
}  # fmt: skip


@st.composite
def _simple_schedule(draw: st.DrawFn, keys: tuple[str, ...]) -> dict[str, list[int]]:
    chosen = draw(st.lists(st.sampled_from(keys), max_size=3, unique=True))
    return {
        k: draw(st.lists(st.integers(*_RANGES[k]), min_size=1, max_size=4, unique=True))
        for k in chosen
    }


_TIME = ("s", "m", "h")
_DAYS = ("h", "D", "d", "dc", "dy", "wm", "wy", "M")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedules=st.one_of(
        st.lists(_simple_schedule(_TIME), min_size=1, max_size=2),
        st.lists(_simple_schedule(_DAYS), min_size=1, max_size=2),
    ),
    exceptions=st.lists(_simple_schedule(("s", "m", "h", "D", "d")), max_size=2),
    after=st.integers(T("2020-01-01"), T("2030-01-01")),
)
def test_next_occurrence_matches_brute_force(
    schedules: list[dict[str, list[int]]], exceptions: list[dict[str, list[int]]], after: int
) -> None:
    exceptions = [e for e in exceptions if e]  # an empty exception would exclude everything
    sched = {"schedules": schedules, "exceptions": exceptions}
    result = next_occurrence(sched, after)
    expected, window_end = _brute(sched, after)
    if expected is not None:
        assert iso(result) == iso(expected)
    else:
        assert result is None or result > window_end
    if result is not None:
        assert result > after
