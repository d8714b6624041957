"""Event names fit any object name: client-go's ``<name>.<hex nanoseconds>`` while it fits,
else a shortened name with a hash of the whole; always a valid DNS subdomain, unique per
object and sorted by time."""

from __future__ import annotations

import re

import pytest

from conclave.act.announcing import event_name

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NOW = 1_796_123_409_123_456_789

NAMES = {
    "a short name keeps client-go's form": "billing",
    "a name of 253 characters": "s" * 253,
    "a long name whose cut ends in a dot": "a" * 200 + "." + "b" * 52,
    "a long name whose cut ends in a dash": "a" * 225 + "-" + "c" * 27,
    "a long dotted name": ".".join(["segment"] * 31),
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
def test_the_name_is_a_valid_subdomain_that_sorts_by_time(name: str) -> None:
    first, later = event_name(name, NOW), event_name(name, NOW + 1)
    assert len(first) <= 253
    assert SUBDOMAIN.match(first), first
    assert first != later
    assert sorted([later, first]) == [first, later]


def test_a_name_that_fits_is_client_gos() -> None:
    assert event_name("billing", NOW) == f"billing.{NOW:x}"


def test_long_names_that_share_a_prefix_stay_apart() -> None:
    common = "x" * 250
    assert event_name(common + "-one", NOW) != event_name(common + "-two", NOW)
