"""What a topology's supervisor remembers after applying a plan: for each object, what its
writes made true, and what it remembered before where they did not."""

from __future__ import annotations

import datetime

from conclave.act.applying import Applied
from conclave.core.memory import Remembered, SingletonMemory
from conclave.core.partitions import Debounced, Verdict
from conclave.core.plans import ObjectPlan, ObjectRef, Plan
from conclave.runtime.reconciling import remember

T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
TOPOLOGY = ObjectRef("ClusterTopology", "prod", "chat", "uid-chat")
MOVED = ObjectRef("Singleton", "prod", "moved", "uid-moved")
REFUSED = ObjectRef("Singleton", "prod", "refused", "uid-refused")

BEFORE = Remembered(
    partition=Debounced(Verdict("Healthy"), T0),
    singletons={"uid-refused": SingletonMemory(ineligible_since=5.0, revoked_epoch=3, revoked_seen_at=6.0)},
)
PLAN = Plan(
    objects=(ObjectPlan(TOPOLOGY), ObjectPlan(MOVED), ObjectPlan(REFUSED)),
    memory=Remembered(
        partition=Debounced(Verdict("Partitioned"), T0 + datetime.timedelta(seconds=5)),
        singletons={
            "uid-moved": SingletonMemory(ineligible_since=9.0, revoked_epoch=4),  # revoked by this plan
            "uid-refused": SingletonMemory(ineligible_since=9.0, revoked_epoch=4),
        },
    ),
)


def test_a_revocation_is_stamped_only_where_its_lease_was_written() -> None:
    applied = Applied(frozenset({TOPOLOGY, MOVED}), frozenset({TOPOLOGY}), (REFUSED,), ())
    after = remember(BEFORE, PLAN, applied, now=10.0)
    assert after.singletons == {
        "uid-moved": SingletonMemory(ineligible_since=9.0, revoked_epoch=4, revoked_seen_at=10.0),
        "uid-refused": BEFORE.singletons["uid-refused"],  # its revocation was never written: no wait started
    }
    assert after.partition == PLAN.memory.partition


def test_a_verdict_whose_status_was_not_published_is_announced_again() -> None:
    """The debounce remembers the published verdict; if the topology's status write failed,
    the next plan must still see the old one, so PartitionDetected is posted then."""
    applied = Applied(frozenset({TOPOLOGY, MOVED, REFUSED}), frozenset({MOVED, REFUSED}), (TOPOLOGY,), ())
    assert remember(BEFORE, PLAN, applied, now=10.0).partition == BEFORE.partition


def test_a_new_singleton_whose_lease_was_refused_is_not_remembered() -> None:
    applied = Applied(frozenset({TOPOLOGY}), frozenset({TOPOLOGY}), (MOVED, REFUSED), ())
    assert set(remember(Remembered(), PLAN, applied, now=10.0).singletons) == set()
