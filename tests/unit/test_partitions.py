"""The partition verdict: components, the majority, and debouncing."""

from __future__ import annotations

import datetime
import random
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conclave.api import ClusterTopology, Member
from conclave.core import partitioning, partitions
from conclave.core.facts import Probed
from conclave.core.partitions import Debounced, Verdict
from conclave.core.plans import ObjectRef

NAMES = ["a", "b", "c", "d", "e", "f", "g"]
ADDRESSES = {name: f"10.0.0.{index + 1}" for index, name in enumerate(NAMES)}
T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def cluster(*sides: str, cut: tuple[str, str] | None = None) -> dict[str, frozenset[str] | None]:
    """Members that see everyone on their own side, except across the ``cut`` link."""
    views: dict[str, frozenset[str] | None] = {}
    for side in sides:
        for member in side:
            seen = set(side) - {member}
            if cut and member in cut:
                seen -= set(cut)
            views[member] = frozenset(seen)
    return views


def test_a_fully_connected_cluster_is_healthy_and_all_of_it_is_the_majority() -> None:
    assert partitions.verdict(cluster("abcde")) == Verdict(
        "Healthy", (("a", "b", "c", "d", "e"),), ("a", "b", "c", "d", "e")
    )


def test_a_three_two_split_has_those_components_and_the_three_as_majority() -> None:
    assert partitions.verdict(cluster("abc", "de")) == Verdict(
        "Partitioned", (("a", "b", "c"), ("d", "e")), ("a", "b", "c")
    )


@pytest.mark.parametrize(
    ("tie_breaker", "majority"),
    [("None", ()), ("LowestAddress", ("a", "b"))],
    ids=["without a tie breaker nobody has quorum", "the half with the lowest address wins"],
)
def test_an_even_split(tie_breaker: partitions.TieBreaker, majority: tuple[str, ...]) -> None:
    result = partitions.verdict(cluster("cd", "ab"), ADDRESSES, tie_breaker)
    assert (result.state, result.components, result.majority) == (
        "Partitioned",
        (("a", "b"), ("c", "d")),
        majority,
    )


def test_a_lost_link_is_a_degraded_cluster_whose_majority_drops_one_end() -> None:
    result = partitions.verdict(cluster("abcde", cut=("a", "b")), ADDRESSES)
    assert result == Verdict("Degraded", (("a", "b", "c", "d", "e"),), ("a", "c", "d", "e"), (("a", "b"),))


def test_an_unknown_view_is_linked_to_those_who_report_it() -> None:
    views = cluster("abc")
    views["c"] = None
    assert partitions.verdict(views).state == "Healthy"


def test_fewer_than_half_of_the_views_known_is_unknown() -> None:
    views: dict[str, frozenset[str] | None] = dict.fromkeys("abcde")
    views["a"] = frozenset("bcde")
    views["b"] = frozenset("acde")
    assert partitions.verdict(views) == Verdict("Unknown")


@st.composite
def views(draw: st.DrawFn) -> dict[str, frozenset[str] | None]:
    members = NAMES[: draw(st.integers(1, len(NAMES)))]
    result: dict[str, frozenset[str] | None] = {}
    for member in members:
        if draw(st.booleans()) and draw(st.booleans()):
            result[member] = None
        else:
            result[member] = frozenset(draw(st.sets(st.sampled_from(members))) - {member})
    return result


@given(views(), st.sampled_from(["None", "LowestAddress"]))
def test_components_partition_the_members(
    seen: dict[str, frozenset[str] | None], tie: partitions.TieBreaker
) -> None:
    result = partitions.verdict(seen, ADDRESSES, tie)
    if result.state != "Unknown":
        flat = [member for part in result.components for member in part]
        assert sorted(flat) == sorted(seen)
        assert len(flat) == len(set(flat))


@given(views(), st.sampled_from(["None", "LowestAddress"]))
def test_the_majority_is_linked_throughout_and_a_true_majority_or_empty(
    seen: dict[str, frozenset[str] | None], tie: partitions.TieBreaker
) -> None:
    result = partitions.verdict(seen, ADDRESSES, tie)
    linked = partitions.links(seen)
    assert all(frozenset(pair) in linked for pair in combinations(result.majority, 2))
    if result.majority:
        lowest = min(seen, key=lambda m: int(ADDRESSES[m].rsplit(".", 1)[1]))
        exactly_half_with_lowest = (
            tie == "LowestAddress" and 2 * len(result.majority) == len(seen) and lowest in result.majority
        )
        assert 2 * len(result.majority) > len(seen) or exactly_half_with_lowest


@given(views(), st.randoms(use_true_random=False))
def test_the_verdict_does_not_depend_on_the_order_of_members(
    seen: dict[str, frozenset[str] | None], shuffler: random.Random
) -> None:
    order = list(seen)
    shuffler.shuffle(order)
    assert partitions.verdict({m: seen[m] for m in order}, ADDRESSES) == partitions.verdict(seen, ADDRESSES)


STABLE = datetime.timedelta(seconds=5)


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 4.9)), max_size=20))
def test_a_flap_shorter_than_stable_after_never_reaches_the_published_verdict(
    flaps: list[tuple[bool, float]],
) -> None:
    healthy = partitions.verdict(cluster("abcde"))
    split = partitions.verdict(cluster("abc", "de"))
    state = partitions.debounce(None, healthy, T0, STABLE)
    now = T0
    for is_split, held in flaps:
        if is_split:
            state = partitions.debounce(state, split, now, STABLE)
            now += datetime.timedelta(seconds=held)  # the split holds less than stableAfter
            state = partitions.debounce(state, split, now, STABLE)
        state = partitions.debounce(state, healthy, now, STABLE)
        now += datetime.timedelta(seconds=1)
        assert state.published == healthy


def test_a_split_that_holds_is_published_after_stable_after() -> None:
    healthy = partitions.verdict(cluster("abcde"))
    split = partitions.verdict(cluster("abc", "de"))
    state: Debounced = partitions.debounce(None, healthy, T0, STABLE)
    state = partitions.debounce(state, split, T0 + datetime.timedelta(seconds=1), STABLE)
    state = partitions.debounce(state, split, T0 + datetime.timedelta(seconds=5.9), STABLE)
    assert state.published == healthy
    state = partitions.debounce(state, split, T0 + datetime.timedelta(seconds=6), STABLE)
    assert (state.published, state.published_since) == (split, T0 + datetime.timedelta(seconds=6))


def topology_probed(probe: dict[str, Any] | None = None) -> ClusterTopology:
    return ClusterTopology.from_api(
        {
            "metadata": {"name": "chat", "namespace": "prod"},
            "spec": {
                "strategy": "Static",
                "hosts": list("abcde"),
                "probe": probe or {"type": "http", "port": 4000},
                "partition": {"stableAfter": "5s"},
            },
        }
    )


def planner(probe: dict[str, Any] | None = None) -> Any:
    """Plan the partition of a five-member topology, step by step."""
    topology = topology_probed(probe)
    owner = ObjectRef("ClusterTopology", "prod", "chat", "uid")

    def step(
        members: str, views: dict[str, frozenset[str] | None], memory: Any, seconds: float, down: str = ""
    ) -> Any:
        now = T0 + datetime.timedelta(seconds=seconds)
        counting = [Member(name=name, ip=ADDRESSES.get(name)) for name in members]
        probed = {
            name: Probed(None, REFUSED) if name in down else Probed(view)
            for name, view in views.items()
            if name in members
        }
        return partitioning.plan(
            topology, owner=owner, counting=counting, views=probed, memory=memory, now=now
        )

    return step


def test_events_follow_the_published_verdict_only() -> None:
    plan = planner()

    def step(views: dict[str, frozenset[str] | None], memory: Debounced | None, seconds: float) -> Any:
        return plan("abcde", views, memory, seconds)

    first = step(cluster("abcde"), None, 0)
    assert first.events == []
    pending = step(cluster("abc", "de"), first.memory, 1)
    assert (pending.events, pending.status.state) == ([], "Healthy")
    declared = step(cluster("abc", "de"), pending.memory, 6)
    assert [(e.type, e.reason, e.note) for e in declared.events] == [
        ("Warning", "PartitionDetected", "Cluster split: components {a, b, c} | {d, e}")
    ]
    assert [(w.type, w.status, w.reason) for w in declared.conditions] == [
        ("Partitioned", True, "Split"),
        ("Quorum", True, "MajorityReachable"),
    ]
    healed = step(cluster("abcde"), step(cluster("abcde"), declared.memory, 7).memory, 12)
    assert [e.reason for e in healed.events] == ["PartitionHealed"]


def crashed(views: dict[str, frozenset[str] | None], *members: str) -> dict[str, frozenset[str] | None]:
    """``members`` crashed: their views are gone, and nobody sees them any more."""
    return {
        name: None if name in members else (view or frozenset()) - set(members)
        for name, view in views.items()
    }


REFUSED = "ConnectionRefused"


def test_a_crashed_member_is_down_not_a_component_and_the_rest_is_healthy() -> None:
    views = crashed(cluster("abcde"), "e")
    assert partitions.verdict(views, ADDRESSES, down={"e": REFUSED}) == Verdict(
        "Healthy", (("a", "b", "c", "d"),), ("a", "b", "c", "d"), (), (("e", REFUSED),)
    )


def test_without_knowing_it_was_refused_the_same_crash_looks_like_a_split() -> None:
    """A timed-out member cannot be told from a cut one: this is why only refusals are down."""
    assert partitions.verdict(crashed(cluster("abcde"), "e"), ADDRESSES).state == "Partitioned"


def test_the_majority_is_counted_against_every_member_down_ones_included() -> None:
    views = crashed(cluster("abcde"), "c", "d", "e")
    result = partitions.verdict(views, ADDRESSES, down=dict.fromkeys("cde", REFUSED))
    assert (result.state, result.components, result.majority) == ("Healthy", (("a", "b"),), ())


def test_a_split_among_the_members_that_are_up_is_still_a_split() -> None:
    views = crashed(cluster("abc", "def"), "f")
    result = partitions.verdict(views, ADDRESSES, down={"f": "NotRegistered"})
    assert (result.state, result.components, result.majority, result.down) == (
        "Partitioned",
        (("a", "b", "c"), ("d", "e")),
        (),  # 3 of 6: no strict majority
        (("f", "NotRegistered"),),
    )


def test_a_split_whose_other_side_left_is_no_split() -> None:
    split = partitions.verdict(cluster("abc", "de"), ADDRESSES)
    assert partitions.restrict(split, ["a", "b", "c"], ADDRESSES, "None") == Verdict(
        "Healthy", (("a", "b", "c"),), ("a", "b", "c")
    )


@given(
    sides=st.lists(st.text("abcdefg", min_size=1, max_size=4), min_size=1, max_size=3),
    down=st.sets(st.sampled_from(NAMES)),
    left=st.sets(st.sampled_from(NAMES)),
)
def test_a_verdict_never_names_a_member_that_left_and_never_a_down_one_as_a_component(
    sides: list[str], down: set[str], left: set[str]
) -> None:
    views = cluster(*sides)
    refused = {member: REFUSED for member in down if member in views}
    result = partitions.verdict(crashed(views, *refused), ADDRESSES, down=refused)
    assert not {m for part in result.components for m in part} & set(refused)
    remaining = sorted(set(views) - left)
    restricted = partitions.restrict(result, remaining, ADDRESSES, "None")
    named = {m for part in restricted.components for m in part} | set(restricted.majority)
    named |= {m for link in restricted.missing_links for m in link} | {m for m, _ in restricted.down}
    assert named <= set(remaining)
    if restricted.majority:
        assert len(restricted.majority) * 2 > len(remaining)


def test_a_crash_is_member_down_never_partition_detected() -> None:
    step = planner()
    first = step("abcde", cluster("abcde"), None, 0)
    pending = step("abcde", crashed(cluster("abcde"), "e"), first.memory, 1, down="e")
    assert pending.events == []  # debounced like any verdict
    declared = step("abcde", crashed(cluster("abcde"), "e"), pending.memory, 6, down="e")
    assert [(e.type, e.reason) for e in declared.events] == [("Warning", "MemberDown")]
    assert [(w.type, w.status, w.reason) for w in declared.conditions] == [
        ("Partitioned", False, "MembersDown"),
        ("Quorum", True, "MajorityReachable"),
    ]
    assert [(d.name, d.reason) for d in declared.status.down] == [("e", REFUSED)]
    assert declared.status.components == [["a", "b", "c", "d"]]
    gauges = {m.metric: m.value for m in declared.metrics}
    assert (gauges["conclave_topology_partitioned"], gauges["conclave_topology_members_down"]) == (0.0, 1.0)
    back = step("abcde", cluster("abcde"), step("abcde", cluster("abcde"), declared.memory, 7).memory, 12)
    assert [(e.type, e.reason) for e in back.events] == [("Normal", "MemberRecovered")]


def test_a_member_deleted_during_a_split_leaves_every_part_of_the_status_at_once() -> None:
    step = planner()
    first = step("abcde", cluster("abcde"), None, 0)
    split = step(
        "abcde", cluster("abc", "de"), step("abcde", cluster("abc", "de"), first.memory, 1).memory, 6
    )
    assert split.status.state == "Partitioned"
    left = step("abcd", cluster("abc", "d"), split.memory, 7)  # e's pod is gone; d's view unchanged
    named = {m for part in left.status.components for m in part} | set(left.status.majority)
    named |= {m for link in left.status.missing_links for m in link} | {v.member for v in left.status.views}
    assert "e" not in named
    assert left.status.components == [["a", "b", "c"], ["d"]]  # the split among those who remain holds


def test_the_erlang_probe_gives_a_verdict_like_the_http_one() -> None:
    erlang = {"type": "erlang", "cookieSecretRef": {"name": "chat-cookie", "key": "cookie"}}
    result = planner(erlang)("abcde", cluster("abcde"), None, 0)
    assert (result.status.state, [(w.type, w.status, w.reason) for w in result.conditions]) == (
        "Healthy",
        [("Partitioned", False, "FullyConnected"), ("Quorum", True, "MajorityReachable")],
    )
