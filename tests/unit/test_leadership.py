"""Leader election decided purely: never two replicas that both believe they lead."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from conclave.core import leadership

LEASE, DEADLINE = 15.0, 10.0


@dataclasses.dataclass
class Replica:
    name: str
    sighting: leadership.Sighting | None = None
    renewal_started: float | None = None


@dataclasses.dataclass
class Store:
    """A Lease behind compare-and-swap, as the API server keeps it."""

    record: leadership.LeaseRecord = dataclasses.field(
        default_factory=lambda: leadership.LeaseRecord(
            holder="", duration_seconds=LEASE, transitions=0, version=None
        )
    )
    writes: int = 0

    def write(self, read: leadership.LeaseRecord, holder: str, transitions: int) -> bool:
        if read.version != self.record.version:
            return False  # 409
        self.writes += 1
        self.record = leadership.LeaseRecord(holder, LEASE, transitions, str(self.writes))
        return True


def attempt(replica: Replica, store: Store, read_at: float) -> None:
    """One acquire-or-renew: a read, then a compare-and-swap against what was read."""
    read = store.record
    replica.sighting = leadership.sight(replica.sighting, read, read_at)
    step = leadership.next_step(replica.sighting, replica.name, read_at)
    if step is leadership.Step.WAIT:
        return
    if store.write(read, replica.name, leadership.transitions_after(step, read)):
        replica.renewal_started = read_at


actions = st.lists(
    st.tuples(st.integers(0, 2), st.floats(0, 20), st.floats(0, 3)),  # who, pause, time to look again
    min_size=1,
    max_size=60,
)


@settings(max_examples=300)
@given(actions)
def test_at_most_one_replica_believes_it_leads_at_any_moment(steps: list[tuple[int, float, float]]) -> None:
    replicas = [Replica(f"operator-{i}") for i in range(3)]
    store = Store()
    now = 0.0
    for who, pause, latency in steps:
        now += pause
        attempt(replicas[who], store, read_at=now)
        for moment in (now, now + latency):
            believers = [
                r.name for r in replicas if leadership.is_leading(r.renewal_started, moment, DEADLINE)
            ]
            assert len(believers) <= 1, f"{believers} all lead at t={moment}"


def test_a_holder_that_stopped_renewing_is_replaced_only_after_the_lease_duration() -> None:
    holder = leadership.LeaseRecord(holder="operator-0", duration_seconds=LEASE, transitions=4, version="7")
    first_seen = leadership.sight(None, holder, now=100.0)
    assert leadership.next_step(first_seen, "operator-1", now=114.9) is leadership.Step.WAIT
    assert leadership.next_step(leadership.sight(first_seen, holder, 114.9), "operator-1", 115.0) is (
        leadership.Step.ACQUIRE
    )
    assert leadership.transitions_after(leadership.Step.ACQUIRE, holder) == 5


def test_a_renewal_seen_restarts_the_wait() -> None:
    before = leadership.LeaseRecord(holder="operator-0", duration_seconds=LEASE, transitions=0, version="7")
    after = dataclasses.replace(before, version="8")
    sighting = leadership.sight(leadership.sight(None, before, 100.0), after, 110.0)
    assert leadership.next_step(sighting, "operator-1", now=120.0) is leadership.Step.WAIT


def test_a_frozen_leader_knows_it_no_longer_leads_when_it_wakes() -> None:
    assert leadership.is_leading(last_renewal_started=100.0, now=109.9, renew_deadline=DEADLINE)
    assert not leadership.is_leading(last_renewal_started=100.0, now=140.0, renew_deadline=DEADLINE)
