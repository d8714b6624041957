"""Merge patches: the applier sends exactly the difference, and it lands exactly."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conclave.core import patches

keys = st.sampled_from(["a", "b", "c", "members", "conditions"])
scalars = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.booleans())
values = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda inner: st.dictionaries(keys, inner, max_size=4),
    max_leaves=6,
)
documents = st.dictionaries(keys, values, max_size=4)


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(documents, documents)
def test_the_patch_turns_what_is_there_into_what_should_be(
    current: dict[str, Any], desired: dict[str, Any]
) -> None:
    assert patches.apply(current, patches.diff(current, desired)) == without_nulls(desired)


@given(documents)
def test_nothing_is_sent_when_nothing_differs(document: dict[str, Any]) -> None:
    assert patches.diff(document, document) == {}


def test_only_the_changed_fields_are_sent_and_a_removed_field_is_nulled() -> None:
    current = {"observedGeneration": 1, "epoch": 3, "owner": "a@x", "conditions": [{"type": "Ready"}]}
    desired = {"observedGeneration": 2, "epoch": 3, "conditions": [{"type": "Ready"}]}
    assert patches.diff(current, desired) == {"observedGeneration": 2, "owner": None}
