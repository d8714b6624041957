"""Rendezvous placement: stable, minimal movement, and eligibility under partitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conclave.api import SingletonSpec
from conclave.core.partitions import Verdict
from conclave.core.placement import Candidate, choose, eligible, keep_reason

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
