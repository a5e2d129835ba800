"""The per-connection merge box: which DDP data messages each publication event produces."""

from __future__ import annotations

import math
from typing import Any

import pytest

from jobcollection.core.ejson import Date
from jobcollection.server.mergebox import MergeBox, same

C = "q.jobs"


def added(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {"msg": "added", "collection": C, "id": doc_id, "fields": fields}


def changed(
    doc_id: str, fields: dict[str, Any] | None = None, cleared: list[str] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"msg": "changed", "collection": C, "id": doc_id}
    if fields:
        message["fields"] = fields
    if cleared:
        message["cleared"] = cleared
    return message


def removed(doc_id: str) -> dict[str, Any]:
    return {"msg": "removed", "collection": C, "id": doc_id}


# Each case: a list of (event, expected messages); events are applied to one fresh box in order.
CASES: dict[str, list[tuple[tuple[Any, ...], list[dict[str, Any]]]]] = {
    "single sub lifecycle": [
        (("added", "s1", "j1", {"status": "ready", "n": 1}), [added("j1", status="ready", n=1)]),
        (
            ("changed", "s1", "j1", {"status": "running", "n": 1}),
            [changed("j1", {"status": "running"})],
        ),
        (("removed", "s1", "j1"), [removed("j1")]),
    ],
    "unchanged change sends nothing": [
        (("added", "s1", "j1", {"a": 1, "b": [1, 2]}), [added("j1", a=1, b=[1, 2])]),
        (("changed", "s1", "j1", {"a": 1, "b": [1, 2]}), []),
    ],
    "cleared fields and new fields together": [
        (
            ("added", "s1", "j1", {"status": "ready", "workTimeout": 5, "expiresAfter": 9}),
            [added("j1", status="ready", workTimeout=5, expiresAfter=9)],
        ),
        (
            ("changed", "s1", "j1", {"status": "running", "runId": "r"}),
            [changed("j1", {"status": "running", "runId": "r"}, ["workTimeout", "expiresAfter"])],
        ),
    ],
    "only cleared": [
        (("added", "s1", "j1", {"a": 1, "b": 2}), [added("j1", a=1, b=2)]),
        (("changed", "s1", "j1", {"a": 1}), [changed("j1", cleared=["b"])]),
    ],
    "nested change resends the whole value": [
        (("added", "s1", "j1", {"p": {"c": 1, "t": 2}}), [added("j1", p={"c": 1, "t": 2})]),
        (
            ("changed", "s1", "j1", {"p": {"c": 2, "t": 2}}),
            [changed("j1", {"p": {"c": 2, "t": 2}})],
        ),
    ],
    "strict types: true is not 1": [
        (("added", "s1", "j1", {"v": 1}), [added("j1", v=1)]),
        (("changed", "s1", "j1", {"v": True}), [changed("j1", {"v": True})]),
    ],
    "overlap: second sub adds nothing new": [
        (("added", "s1", "j1", {"a": 1}), [added("j1", a=1)]),
        (("added", "s2", "j1", {"a": 1}), []),
        (("removed", "s1", "j1"), []),
        (("removed", "s2", "j1"), [removed("j1")]),
    ],
    "overlap: second sub brings an extra field": [
        (("added", "s1", "j1", {"a": 1}), [added("j1", a=1)]),
        (("added", "s2", "j1", {"a": 1, "b": 2}), [changed("j1", {"b": 2})]),
        (("removed", "s2", "j1"), [changed("j1", cleared=["b"])]),
    ],
    "overlap: first publisher wins a disagreement": [
        (("added", "s1", "j1", {"a": 1}), [added("j1", a=1)]),
        (("added", "s2", "j1", {"a": 2}), []),
        (("changed", "s2", "j1", {"a": 3}), []),
        (("removed", "s1", "j1"), [changed("j1", {"a": 3})]),
    ],
    "overlap: both move to the same new value": [
        (("added", "s1", "j1", {"a": 1}), [added("j1", a=1)]),
        (("added", "s2", "j1", {"a": 1}), []),
        (("changed", "s1", "j1", {"a": 2}), [changed("j1", {"a": 2})]),
        (("changed", "s2", "j1", {"a": 2}), []),
    ],
    "lenient events": [
        (("removed", "s1", "nope"), []),
        (("changed", "s1", "j1", {"a": 1}), [added("j1", a=1)]),  # changed of unknown = added
        (("added", "s1", "j1", {"a": 2}), [changed("j1", {"a": 2})]),  # added twice = changed
    ],
    "drop_subscription removes only what nobody else publishes": [
        (("added", "s1", "j1", {"a": 1}), [added("j1", a=1)]),
        (("added", "s1", "j2", {"a": 1}), [added("j2", a=1)]),
        (("added", "s2", "j2", {"a": 1, "x": 0}), [changed("j2", {"x": 0})]),
        (("added", "s2", "j3", {"a": 3}), [added("j3", a=3)]),
        (("drop", "s2"), [changed("j2", cleared=["x"]), removed("j3")]),
        (("drop", "s1"), [removed("j1"), removed("j2")]),
        (("drop", "s1"), []),
    ],
    "drop_subscription reveals the remaining sub's values": [
        (("added", "s1", "j1", {"a": 1, "b": 1}), [added("j1", a=1, b=1)]),
        (("added", "s2", "j1", {"a": 2, "b": 1}), []),
        (("drop", "s1"), [changed("j1", {"a": 2})]),
    ],
}


@pytest.mark.parametrize("name", list(CASES))
def test_mergebox_events(name: str) -> None:
    box = MergeBox()
    for step, (event, expected) in enumerate(CASES[name]):
        kind, *args = event
        if kind == "drop":
            got = box.drop_subscription(args[0])
        elif kind == "removed":
            got = box.removed(args[0], C, args[1])
        else:
            got = getattr(box, kind)(args[0], C, args[1], args[2])
        assert got == expected, f"{name}, step {step}: {event}"
        for message in got:  # never an empty change
            if message["msg"] == "changed":
                assert message.get("fields") or message.get("cleared")
    if name.startswith("drop_subscription removes"):
        assert len(box) == 0


def test_collections_and_ids_are_separate_documents() -> None:
    box = MergeBox()
    assert box.added("s", "a.jobs", "x", {"v": 1})[0]["collection"] == "a.jobs"
    assert box.added("s", "b.jobs", "x", {"v": 1})[0]["msg"] == "added"
    assert box.has("s", "a.jobs", "x")
    assert not box.has("t", "a.jobs", "x")
    assert sorted(box.documents("s")) == [("a.jobs", "x"), ("b.jobs", "x")]
    assert box.client_fields("b.jobs", "x") == {"v": 1}
    assert box.client_fields("c.jobs", "x") is None


def test_caller_mappings_are_not_mutated_and_messages_are_copies() -> None:
    box = MergeBox()
    fields = {"a": 1}
    (message,) = box.added("s", C, "j", fields)
    message["fields"]["a"] = 99
    assert fields == {"a": 1}
    assert box.client_fields(C, "j") == {"a": 1}
    assert box.changed("s", C, "j", fields) == []  # the same mapping again: nothing changed


def test_hold_sends_only_the_net_difference() -> None:
    box = MergeBox()
    box.added("s1", C, "stays", {"a": 1})
    box.added("s1", C, "goes", {"a": 1})
    box.added("s1", C, "moves", {"a": 1})
    box.hold()
    assert box.drop_subscription("s1") == []
    assert box.added("s2", C, "stays", {"a": 1}) == []
    assert box.added("s2", C, "moves", {"a": 2}) == []
    assert box.added("s2", C, "new", {"b": 1}) == []
    assert box.added("s2", C, "flash", {"b": 1}) == []
    assert box.removed("s2", C, "flash") == []
    assert box.release() == [removed("goes"), changed("moves", {"a": 2}), added("new", b=1)]
    with pytest.raises(RuntimeError):
        box.release()
    box.hold()
    with pytest.raises(RuntimeError):
        box.hold()


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1, True),
        (1, True, False),
        (1, 1.0, False),
        (math.nan, math.nan, True),
        ({"x": [1, {"y": 2}]}, {"x": [1, {"y": 2}]}, True),
        ({"x": 1, "y": 2}, {"y": 2, "x": 1}, True),
        ({"x": 1}, {"x": 1, "y": None}, False),
        ([1, 2], [1, 2, 3], False),
        (Date(5), Date(5), True),
        (Date(5), 5, False),
        (None, None, True),
        ("a", "b", False),
    ],
)
def test_same(a: Any, b: Any, equal: bool) -> None:
    assert same(a, b) is equal
