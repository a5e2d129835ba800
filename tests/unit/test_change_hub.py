"""The change hub builds change objects only for listeners, and delivers each one once."""

from __future__ import annotations

from collections.abc import Sequence

from jobcollection.storage._change_hub import ChangeHub
from jobcollection.storage.port import Change


def _change(seq: int, job_id: str) -> Change:
    return Change(seq, "q", job_id, "insert", "t", "ready", ("*",))


def test_without_listeners_no_changes_are_built_but_their_seq_counts() -> None:
    hub = ChangeHub()
    built: list[int] = []

    def build() -> list[Change]:
        built.append(1)
        return [_change(7, "a")]

    hub.publish_lazily(7, build)
    assert built == []
    assert hub.published_seq == 7
    received: list[Sequence[Change]] = []
    hub.subscribe(received.append)
    hub.publish([_change(7, "a")])  # the same entry seen again (e.g. by the watcher): dropped
    assert received == []


def test_with_a_listener_the_changes_are_built_and_delivered_once() -> None:
    hub = ChangeHub()
    received: list[Sequence[Change]] = []
    hub.subscribe(received.append)
    batch = [_change(3, "a"), _change(3, "b")]  # one feed row standing for two jobs
    hub.publish_lazily(3, lambda: batch)
    hub.publish(batch)
    assert received == [batch]
    assert hub.published_seq == 3
