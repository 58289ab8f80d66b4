"""`output.dumps_indented` writes what `json.dumps(value, ensure_ascii=False, indent=2)`
writes, character for character, for every JSON-like value (and leaves anything else to
json.dumps itself)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cli.output import dumps_indented

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included
    | st.text()  # any code point: quotes, controls, surrogates, line separators
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
        | st.tuples(inner, inner)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_the_same_text_as_json_dumps(value: Any) -> None:
    assert dumps_indented(value) == json.dumps(value, ensure_ascii=False, indent=2)


@pytest.mark.parametrize(
    "value",
    [
        {1: "an int key", None: "a None key", 2.5: "a float key"},
        [{"nested": {True: "a bool key"}}],
        [math.nan, -math.inf, 10**30, -0.0, 1e-300],
        {"empty": [], "nothing": {}, "tuple": ()},
    ],
)
def test_unusual_keys_and_numbers(value: Any) -> None:
    assert dumps_indented(value) == json.dumps(value, ensure_ascii=False, indent=2)


def test_a_value_json_cannot_encode_fails_as_json_dumps_fails() -> None:
    value = [{"at": datetime(2024, 1, 1, tzinfo=UTC)}]
    with pytest.raises(TypeError) as expected:
        json.dumps(value, ensure_ascii=False, indent=2)
    with pytest.raises(TypeError) as got:
        dumps_indented(value)
    assert str(got.value) == str(expected.value)
