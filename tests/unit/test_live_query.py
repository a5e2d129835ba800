"""The pure part of live queries: which jobs a selector takes, and the events a view emits."""

from __future__ import annotations

import pytest

from jobcollection.core.live import JobChange, LiveQuery, Query
from jobcollection.core.selector import parse_selector


@pytest.mark.parametrize(
    ("selector", "job_id", "fields", "expected"),
    [
        ({}, "a", {}, True),
        ({"status": "ready"}, "a", {"status": "ready", "type": "t"}, True),
        ({"status": "ready"}, "a", {"status": "waiting"}, False),
        (
            {"status": {"$in": ["ready", "paused"]}, "type": "t"},
            "a",
            {"status": "paused", "type": "t"},
            True,
        ),
        (
            {"status": {"$in": ["ready", "paused"]}, "type": "t"},
            "a",
            {"status": "paused", "type": "u"},
            False,
        ),
        ({"_id": {"$in": ["a", "b"]}}, "b", {}, True),
        ({"_id": "a"}, "b", {"_id": "a"}, False),  # the id given, not a field, decides
        ({"type": "t"}, "a", {"status": "ready"}, False),  # a field that is missing
    ],
)
def test_a_query_selects_by_id_status_and_type(
    selector: dict[str, object], job_id: str, fields: dict[str, object], expected: bool
) -> None:
    assert Query.of(parse_selector(selector)).matches(job_id, fields) is expected


def test_a_live_query_reports_added_changed_and_removed() -> None:
    events: list[JobChange] = []
    live = LiveQuery(Query.of(parse_selector({"status": "ready"})), events.append)
    live.update("a", {"_id": "a", "status": "ready", "priority": 0})
    live.update("a", {"_id": "a", "status": "ready", "priority": 0})  # the same: no event
    live.update("a", {"_id": "a", "status": "ready", "priority": 5})
    live.update("b", {"_id": "b", "status": "waiting"})  # never selected: no event
    live.update("a", {"_id": "a", "status": "running", "priority": 5})  # leaves the selection
    assert [(e.kind, e.id, e.fields) for e in events] == [
        ("added", "a", ()),
        ("changed", "a", ("priority",)),
        ("removed", "a", ()),
    ]
