"""The API's time formats, written by hand for speed: the same text strftime writes."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from conclave.api import times

ZONES = st.sampled_from([
    datetime.UTC,
    datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
    datetime.timezone(datetime.timedelta(hours=-8)),
])  # fmt: skip
MOMENTS = st.datetimes(min_value=datetime.datetime(2, 1, 1), timezones=ZONES)  # year 1 may not fit UTC


@given(MOMENTS)
def test_rfc3339_is_what_strftime_writes(moment: datetime.datetime) -> None:
    expected = moment.astimezone(datetime.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert times.rfc3339(moment) == expected


def test_rfc3339_writes_utc_in_whole_seconds() -> None:
    moment = datetime.datetime(
        2026, 12, 1, 11, 0, 7, 999999, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert times.rfc3339(moment) == "2026-12-01T10:00:07Z"
