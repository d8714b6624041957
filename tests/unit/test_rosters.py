"""The members ConfigMap's records: every member's record as its model dumps it."""

from __future__ import annotations

import datetime
import json

from hypothesis import given
from hypothesis import strategies as st

from conclave.api import Member
from conclave.core import rosters

MEMBERS = st.builds(
    Member,
    name=st.text(min_size=1, max_size=12),  # non-ASCII too: json.dumps escapes it
    pod=st.none() | st.text(max_size=8),
    ip=st.none() | st.sampled_from(["10.0.0.1", "10.0.0.2"]),
    ready=st.booleans(),
    node_name=st.none() | st.sampled_from(["worker-a", "worker-b"]),
    since=st.none() | st.datetimes(min_value=datetime.datetime(2000, 1, 1), timezones=st.just(datetime.UTC)),
)


@given(st.lists(MEMBERS, max_size=8))
def test_records_are_each_members_own_dump(members: list[Member]) -> None:
    records = [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in members]
    data = rosters.members_data([m.name for m in members if m.ready], members)
    assert data[rosters.MEMBERS_RECORDS] == json.dumps(records, separators=(",", ":"))
