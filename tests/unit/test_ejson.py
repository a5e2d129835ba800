"""EJSON text: the one-pass encoder writes exactly what the walk in Python writes, and every
value comes back from its text unchanged."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobcollection.core import ejson
from jobcollection.core.ejson import CustomType, Date

_walked = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
# Keys and strings that look like EJSON: the cases where the encoder must escape or walk.
_tricky_text = st.sampled_from(
    ["$date", "$binary", "$escape", "$type", "$value", "$InfNaN", "$", '"$', 'a"$b', "x"]
)
_text = st.one_of(st.text(max_size=8), _tricky_text)
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False),  # infinities included: they need the walk
    _text,
    st.builds(Date, st.integers(min_value=-(2**53), max_value=2**53)),
    st.binary(max_size=12),
)
# A custom type's value is opaque JSON, sent as it is.
_plain_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=6,
)
_json_like = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_text, inner, max_size=4),
        st.builds(CustomType, _text, _plain_json),
    ),
    max_leaves=20,
)


@given(_json_like)
def test_one_pass_text_is_the_walked_text(value: Any) -> None:
    assert ejson.dumps(value) == _walked(ejson.to_ejson(value))


@given(_json_like)
def test_values_come_back_from_their_text(value: Any) -> None:
    assert ejson.loads(ejson.dumps(value)) == value


def test_a_user_object_shaped_like_a_date_is_escaped_not_read_as_a_date() -> None:
    text = ejson.dumps({"when": Date(5), "data": {"$date": 5}})
    assert text == '{"when":{"$date":5},"data":{"$escape":{"$date":5}}}'
    assert ejson.loads(text) == {"when": Date(5), "data": {"$date": 5}}


def test_non_finite_numbers_and_bytes() -> None:
    text = ejson.dumps([math.inf, -math.inf, b"\x00\xff"])
    assert text == '[{"$InfNaN":1},{"$InfNaN":-1},{"$binary":"AP8="}]'
    nan = ejson.loads(ejson.dumps(math.nan))
    assert isinstance(nan, float)
    assert math.isnan(nan)


@given(_json_like)
def test_parsing_decodes_as_the_walk_from_the_top(value: Any) -> None:
    text = ejson.dumps(value)
    assert ejson.loads(text) == ejson.from_ejson(json.loads(text))


_form_texts = st.sampled_from(
    [
        '{"$date":5}',
        '{"$escape":{"$date":5}}',
        '{"$type":"oid","$value":{"$date":5}}',
        '{"\\u0024date":5}',
        '{"\\u0024escape":{"$date":5}}',
        '{"a":[{"$binary":"AP8="},{"$InfNaN":-1}]}',
        '{"$date":"soon"}',
        '{"$date":5,"x":1}',
    ]
)


@given(st.lists(_form_texts, max_size=4).map(lambda parts: "[" + ",".join(parts) + "]"))
def test_hand_written_forms_decode_as_the_walk_from_the_top(text: str) -> None:
    assert ejson.loads(text) == ejson.from_ejson(json.loads(text))
    assert ejson.loads(text, strict=True) == ejson.loads(text)


def test_strict_parsing_refuses_bare_nan() -> None:
    assert math.isnan(ejson.loads("NaN"))
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        ejson.loads("NaN", strict=True)
    with pytest.raises(ValueError, match="Infinity"):
        ejson.loads('{"$date": Infinity}', strict=True)
