"""Rendezvous placement: stable, minimal movement, eligibility under partitions, and bounded
loads (the busiest member within loadFactor of the mean, nothing moved that need not)."""

from __future__ import annotations

import datetime
import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from conclave.api import ClusterTopology, Singleton, SingletonSpec
from conclave.core import planning
from conclave.core.facts import LeaseState, Moment
from conclave.core.memory import Remembered
from conclave.core.observations import Observation, Observed, Ownership
from conclave.core.partitions import Verdict
from conclave.core.placement import Candidate, bounded, capacity, choose, eligible, keep_reason, weight
from conclave.core.plans import Plan

names = st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=1, max_size=12, unique=True)


def spec(**fields: object) -> SingletonSpec:
    return SingletonSpec.model_validate({"topology": "chat", **fields})


def candidate(name: str, ready: bool = True, terminating: bool = False) -> Candidate:
    return Candidate(name, f"pod-{name}", f"uid-{name}", {"role": name}, ready, terminating)


@given(identity=st.text(max_size=20), members=names, data=st.data())
def test_removing_a_member_moves_only_what_it_owned(
    identity: str, members: list[str], data: st.DataObject
) -> None:
    before = choose(identity, members)
    gone = data.draw(st.sampled_from(members))
    after = choose(identity, [m for m in members if m != gone])
    if before != gone:
        assert after == before
    assert choose(identity, list(reversed(members))) == before  # order never matters


@given(identity=st.text(max_size=20), members=names, newcomer=st.text("xyz", min_size=1, max_size=3))
def test_adding_a_member_moves_a_singleton_only_to_the_newcomer(
    identity: str, members: list[str], newcomer: str
) -> None:
    assert choose(identity, [*members, newcomer]) in (choose(identity, members), newcomer)


def test_nobody_to_choose_from_is_no_choice() -> None:
    assert choose("prod/jobs", []) is None


SPLIT = Verdict("Partitioned", (("a", "b", "c"), ("d", "e")), ("a", "b", "c"))
NO_MAJORITY = Verdict("Partitioned", (("a", "b"), ("c", "d")), ())
UNKNOWN = Verdict("Unknown")
ALL = [candidate(n) for n in "abcde"]


def test_fence_grants_only_on_the_majority_side_and_revokes_the_minority_owner() -> None:
    fence = spec(partitionPolicy="Fence")
    assert eligible(fence, ALL, SPLIT).members == ("a", "b", "c")
    assert keep_reason(fence, candidate("d"), SPLIT) == "MinorityFenced"
    assert keep_reason(fence, candidate("a"), SPLIT) is None
    fenced = eligible(fence, ALL[:4], NO_MAJORITY)
    assert (fenced.members, fenced.fenced, fenced.reason) == ((), True, "NoMajority")


def test_continue_keeps_a_minority_owner_and_places_anywhere() -> None:
    keep = spec(partitionPolicy="Continue")
    assert keep_reason(keep, candidate("d"), SPLIT) is None
    assert eligible(keep, ALL, SPLIT).members == tuple("abcde")


def test_uniform_quorum_needs_a_known_majority() -> None:
    quorum = spec(distribution="UniformQuorum", partitionPolicy="Continue")
    assert eligible(quorum, ALL, SPLIT).members == ("a", "b", "c")
    assert eligible(quorum, ALL, UNKNOWN).reason == "QuorumUnknown"
    assert eligible(quorum, ALL, UNKNOWN).fenced
    assert eligible(quorum, ALL, NO_MAJORITY).members == ()


def test_pinned_has_no_fallback() -> None:
    by_name = spec(distribution="Pinned", pinTo={"member": "c"})
    assert eligible(by_name, ALL, UNKNOWN).members == ("c",)
    unavailable = eligible(by_name, [candidate("c", ready=False), *ALL[:2]], UNKNOWN)
    assert (unavailable.members, unavailable.reason) == ((), "PinnedMemberUnavailable")
    by_label = spec(distribution="Pinned", pinTo={"selector": {"matchLabels": {"role": "b"}}})
    assert eligible(by_label, ALL, UNKNOWN).members == ("b",)
    assert keep_reason(by_label, candidate("a"), UNKNOWN) == "Unpinned"


def test_an_owner_that_is_not_ready_terminating_or_gone_must_move() -> None:
    plain = spec()
    assert keep_reason(plain, None, UNKNOWN) == "Left"
    assert keep_reason(plain, candidate("a", ready=False), UNKNOWN) == "NotReady"
    assert keep_reason(plain, candidate("a", terminating=True), UNKNOWN) == "Terminating"
    assert (
        eligible(plain, [candidate("a", terminating=True), candidate("b", ready=False)], UNKNOWN).members
        == ()
    )


def test_an_owner_that_is_down_moves_under_every_policy() -> None:
    down = Candidate("a", "pod-a", "uid-a", {}, True, down=True)
    healthy = Verdict("Healthy", (("b", "c"),), ("b", "c"), (), (("a", "ConnectionRefused"),))
    for policy in ("Fence", "Continue"):
        assert keep_reason(spec(partitionPolicy=policy), down, healthy) == "MemberDown"
        assert eligible(spec(partitionPolicy=policy), [down, candidate("b")], healthy).members == ("b",)


def test_a_fence_owner_on_the_majority_side_of_a_crash_stays() -> None:
    healthy = Verdict("Healthy", (("a", "b"),), ("a", "b"), (), (("c", "ConnectionRefused"),))
    assert keep_reason(spec(partitionPolicy="Fence"), candidate("a"), healthy) is None


# Bounded loads (Mirrokni, Thorup, Zadimoghaddam 2017), through the planner itself: it
# decides singleton by singleton, each against the loads the ones before it left.

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def hosts(count: int) -> list[str]:
    return [f"chat@10.0.0.{i + 1}" for i in range(count)]


def topology_with(
    members: list[str], singletons: int, leases: dict[str, LeaseState], **singleton_spec: object
) -> Observation:
    """A Static topology (members without pods: always ready) and its singletons."""
    body = {"metadata": {"name": "chat", "namespace": "prod", "uid": "uid-chat"}}
    resource = ClusterTopology.from_api({**body, "spec": {"strategy": "Static", "hosts": members}})
    dependents = []
    for i in range(singletons):
        name = f"job-{i:03d}"
        meta = {"name": name, "namespace": "prod", "uid": f"uid-{name}"}
        model = Singleton.from_api({"metadata": meta, "spec": {"topology": "chat", **singleton_spec}})
        dependents.append(Observed(model, f"uid-{name}", 1, "1", {}))
    return Observation(
        moment=Moment(NOW, 0.0),
        namespace="prod",
        topology_name="chat",
        topology=Observed(resource, "uid-chat", 1, "1", {}),
        singletons=tuple(dependents),
        ownership=Ownership(leases=leases),
        memory=Remembered(),
    )


def holders(plan: Plan) -> dict[str, str | None]:
    """Singleton → the holder its planned Lease write names (only those written)."""
    return {
        owned.name: owned.content["spec"].get("holderIdentity")
        for item in plan.objects
        for owned in item.owned
        if owned.kind == "Lease"
    }


def leases_of(owners: dict[str, str | None]) -> dict[str, LeaseState]:
    return {
        name: LeaseState(resource_version="2", controller_uid=f"uid-{name}", holder=owner, epoch=1,
                         duration_seconds=15, last_owner=owner)
        for name, owner in owners.items()
    }  # fmt: skip


placements = st.tuples(
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=120),
    st.sampled_from([1.0, 1.05, 1.25, 2.0]),
)


@settings(max_examples=60, deadline=None)
@given(placement=placements)
def test_a_first_placement_never_passes_the_bound(placement: tuple[int, int, float]) -> None:
    size, count, factor = placement
    owners = holders(planning.plan(topology_with(hosts(size), count, {}, loadFactor=factor)))
    assert len(owners) == count
    limit = capacity(count, size, factor)
    assert max(Counter(owners.values()).values(), default=0) <= limit
    assert limit <= max(math.ceil(count / size), factor * count / size)  # max/mean <= loadFactor


@settings(max_examples=60, deadline=None)
@given(placement=placements, data=st.data())
def test_a_member_leaving_moves_only_the_singletons_it_held(
    placement: tuple[int, int, float], data: st.DataObject
) -> None:
    size, count, factor = placement
    members = hosts(size + 1)
    owners = holders(planning.plan(topology_with(members, count, {}, loadFactor=factor)))
    gone = data.draw(st.sampled_from(members))
    after = planning.plan(
        topology_with([m for m in members if m != gone], count, leases_of(owners), loadFactor=factor)
    )
    assert set(holders(after)) == {
        name for name, owner in owners.items() if owner == gone
    }  # revoked, no more


@settings(max_examples=60, deadline=None)
@given(placement=placements)
def test_planning_the_placed_singletons_again_moves_nothing(placement: tuple[int, int, float]) -> None:
    size, count, factor = placement
    for rebalance in ("Passive", "Active"):
        owners = holders(
            planning.plan(topology_with(hosts(size), count, {}, loadFactor=factor, rebalance=rebalance))
        )
        again = planning.plan(
            topology_with(hosts(size), count, leases_of(owners), loadFactor=factor, rebalance=rebalance)
        )
        assert holders(again) == {}


@given(identity=st.text(max_size=20), members=names, data=st.data())
def test_the_bounded_choice_keeps_rendezvous_order_and_skips_only_full_members(
    identity: str, members: list[str], data: st.DataObject
) -> None:
    loads = {m: data.draw(st.integers(min_value=0, max_value=4)) for m in members}
    limit = data.draw(st.integers(min_value=1, max_value=4))
    chosen = bounded(identity, members, loads, limit)
    ranked = sorted(members, key=lambda m: (weight(identity, m), m), reverse=True)
    with_room = [m for m in ranked if loads[m] < limit]
    assert chosen == (with_room[0] if with_room else ranked[0])
    assert bounded(identity, members, dict.fromkeys(members, 0), limit) == choose(identity, members)


def test_ten_thousand_singletons_on_twenty_members_stay_within_one_point_oh_five_of_the_mean() -> None:
    owners = holders(planning.plan(topology_with(hosts(20), 10_000, {})))
    assert max(Counter(owners.values()).values()) / (10_000 / 20) <= 1.05
