"""The client's cache (`jobcollection.ddp.cache`) against a model dict."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jobcollection.ddp import messages
from jobcollection.ddp.cache import Cache, Change, Collections

collections_ = st.sampled_from(["jobs", "logs"])
doc_ids = st.sampled_from(["a", "b", "c"])
field_names = st.sampled_from(["x", "y", "z"])
values = st.one_of(st.integers(-3, 3), st.text(max_size=2), st.none())
fields_ = st.dictionaries(field_names, values, max_size=3)

data_messages = st.one_of(
    st.builds(messages.added, collections_, doc_ids, fields_),
    st.builds(messages.changed, collections_, doc_ids, fields_, st.lists(field_names, max_size=2)),
    st.builds(messages.removed, collections_, doc_ids),
)

Model = dict[tuple[str, str], dict[str, Any]]


def apply_to_model(model: Model, message: dict[str, Any]) -> bool:
    """The reference semantics: whether the message changed anything."""
    key = (message["collection"], message["id"])
    if message["msg"] == "added":
        model[key] = dict(message["fields"])
        return True
    if message["msg"] == "changed":
        if key not in model:
            return False
        model[key].update(message.get("fields", {}))
        for name in message.get("cleared", []):
            model[key].pop(name, None)
        return True
    return model.pop(key, None) is not None


def as_model(collections: Collections) -> Model:
    return {(c, i): doc for c, docs in collections.items() for i, doc in docs.items()}


@given(st.lists(data_messages, max_size=30))
def test_data_messages_applied_to_the_cache_match_a_model_dict(
    stream: list[dict[str, Any]],
) -> None:
    cache = Cache()
    model: Model = {}
    for message in stream:
        change = cache.apply(message)
        assert (change is not None) == apply_to_model(model, message)
        if change is not None:
            assert (change.kind, change.collection, change.id) == (
                message["msg"],
                message["collection"],
                message["id"],
            )
        assert as_model(cache.collections) == model


def replay(changes: list[Change], into: Model) -> None:
    for change in changes:
        key = (change.collection, change.id)
        if change.kind == "added":
            into[key] = dict(change.fields)
        elif change.kind == "changed":
            into[key].update(change.fields)
            for name in change.cleared:
                into[key].pop(name)
        else:
            del into[key]


@given(st.lists(data_messages, max_size=15), st.lists(data_messages, max_size=15))
def test_reconcile_reports_exactly_the_difference(
    before: list[dict[str, Any]], fresh_stream: list[dict[str, Any]]
) -> None:
    cache = Cache()
    for message in before:
        cache.apply(message)
    old = copy.deepcopy(as_model(cache.collections))
    fresh = Cache(defaultdict(dict))
    for message in fresh_stream:
        fresh.apply(message)
    expected = copy.deepcopy(as_model(fresh.collections))
    changes = cache.reconcile(fresh.collections)
    assert as_model(cache.collections) == expected
    replay(changes, old)  # the reported changes take an observer from the old to the new
    assert old == expected
    keys = [(c.collection, c.id) for c in changes]
    assert len(keys) == len(set(keys))  # one change per document at most
