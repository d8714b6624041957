"""Which operator replica is active: client-go's leader election, decided purely.

A replica trusts only its own clock: another holder's lease counts as expired when the
record has not changed for leaseDuration since *this* replica first saw it that way,
never by the renewTime someone else wrote (clocks drift; observation does not). A leader
counts itself as leading only while its last successful renewal *started* less than the
renew deadline ago, so a leader frozen past that (SIGSTOP, a long GC pause) knows, the
moment it runs again, that it may no longer write.
"""

from __future__ import annotations

import dataclasses
import enum


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """What matters of a coordination.k8s.io Lease; ``version`` None: it does not exist."""

    holder: str
    duration_seconds: float
    transitions: int
    version: str | None


@dataclasses.dataclass(frozen=True)
class Sighting:
    """A lease record and the local monotonic time it was first seen in this form."""

    record: LeaseRecord
    since: float


class Step(enum.Enum):
    CREATE = "create"
    ACQUIRE = "acquire"
    RENEW = "renew"
    WAIT = "wait"


def sight(previous: Sighting | None, record: LeaseRecord, now: float) -> Sighting:
    """Keep the earlier sighting time while the record is unchanged; restart it on a change."""
    if previous is not None and previous.record == record:
        return previous
    return Sighting(record=record, since=now)


def next_step(sighting: Sighting, me: str, now: float) -> Step:
    """What this replica should do about the lease now."""
    record = sighting.record
    if record.version is None:
        return Step.CREATE
    if record.holder == me:
        return Step.RENEW
    if not record.holder or now - sighting.since >= record.duration_seconds:
        return Step.ACQUIRE
    return Step.WAIT


def is_leading(last_renewal_started: float | None, now: float, renew_deadline: float) -> bool:
    """True while the last successful acquire or renew began less than renew_deadline ago."""
    return last_renewal_started is not None and now - last_renewal_started < renew_deadline


def transitions_after(step: Step, record: LeaseRecord) -> int:
    """leaseTransitions counts changes of holder: acquiring from someone else adds one."""
    if step is Step.CREATE:
        return 0
    if step is Step.ACQUIRE:
        return record.transitions + 1
    return record.transitions
