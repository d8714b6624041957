"""Durations: what the CRD pattern admits, Python reads the same way."""

from __future__ import annotations

import datetime
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conclave.api import durations


@given(st.integers(min_value=0, max_value=10 * 24 * 3600 * 1000))
def test_formatting_and_parsing_round_trip(milliseconds: int) -> None:
    value = datetime.timedelta(milliseconds=milliseconds)
    text = durations.format_duration(value)
    assert re.fullmatch(durations.PATTERN, text)
    assert durations.parse(text) == value


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5), ("1m30s", 90), ("1h", 3600), ("1.5s", 1.5), ("2h0m1s", 7201)],
    ids=["milliseconds", "seconds", "minutes and seconds", "an hour", "a fraction", "every unit"],
)
def test_go_style_durations_parse(text: str, seconds: float) -> None:
    assert durations.parse(text) == datetime.timedelta(seconds=seconds)


@given(st.text(max_size=12).filter(lambda text: not re.fullmatch(durations.PATTERN, text)))
def test_anything_else_is_refused_with_the_allowed_form(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like 500ms, 5s, 1m30s or 1h"):
        durations.parse(text)
