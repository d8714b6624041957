"""The two time formats the API speaks, written in one place.

metav1.Time (status timestamps, conditions) has whole seconds: ``2026-12-01T10:00:00Z``.
metav1.MicroTime (Lease acquireTime/renewTime, Event eventTime) wants exactly six
fractional digits, which ``str(datetime)`` drops at .000000 (PITFALLS §2).
``Timestamp`` is the pydantic type of every status timestamp: it dumps as metav1.Time.
"""

from __future__ import annotations

import datetime
from typing import Annotated

from pydantic import PlainSerializer


def whole_seconds(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` as metav1.Time can hold it: UTC, microseconds dropped."""
    return moment.astimezone(datetime.UTC).replace(microsecond=0)


def rfc3339(moment: datetime.datetime) -> str:
    """metav1.Time: ``2026-12-01T10:00:00Z``."""
    utc = moment if moment.tzinfo is datetime.UTC else moment.astimezone(datetime.UTC)
    if utc.year < 1000:  # strftime's %Y does not pad them to four digits: written as it writes them
        return whole_seconds(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
    # A quarter of strftime's cost: every member's record in the members ConfigMap has one
    return f"{utc.year}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


def micro_time(moment: datetime.datetime) -> str:
    """metav1.MicroTime: ``2026-12-01T10:00:00.000000Z``, always six digits."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Timestamp = Annotated[datetime.datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]
"""A status timestamp: any datetime in Python, metav1.Time on the wire."""
