"""connect: Mesh: whom conclave asks to connect or disconnect, decided purely."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conclave.api import Member
from conclave.core import meshing
from conclave.core.facts import PodFacts, Probed
from conclave.core.memory import Attempts, MeshMemory
from conclave.core.partitions import DOWN_REASONS

NAMES = ["a@10.0.0.1", "b@10.0.0.2", "c@10.0.0.3", "d@10.0.0.4", "e@10.0.0.5"]


def member(name: str) -> Member:
    index = NAMES.index(name)
    return Member(name=name, ip=name.split("@")[1], pod=f"pod-{index}")


def pods(*names: str) -> dict[str, PodFacts]:
    return {f"pod-{NAMES.index(n)}": PodFacts(f"pod-{NAMES.index(n)}", {}, n.split("@")[1]) for n in names}


def alone(*names: str) -> dict[str, Probed]:
    return {name: Probed(frozenset()) for name in names}


def linked(*names: str) -> dict[str, Probed]:
    return {name: Probed(frozenset(names) - {name}) for name in names}


def mesh(
    names: list[str], views: dict[str, Probed], memory: MeshMemory | None = None, **changes: object
) -> meshing.MeshPlan:
    members = [member(n) for n in names]
    arguments: dict[str, object] = {
        "counting": members, "views": views, "before": members, "after": members,
        "pods": pods(*names), "memory": memory or MeshMemory(), "clock": 100.0, **changes,
    }  # fmt: skip
    return meshing.plan(**arguments)  # type: ignore[arg-type]


def test_five_isolated_nodes_are_asked_for_every_pair_once() -> None:
    plan = mesh(NAMES, alone(*NAMES))
    assert len(plan.connects) == 10  # every unordered pair, one caller each
    assert {frozenset(pair) for pair in plan.connects} == {
        frozenset((a, b)) for i, a in enumerate(NAMES) for b in NAMES[i + 1 :]
    }


def test_a_full_mesh_is_left_alone_and_a_newcomer_is_connected_once_it_answers() -> None:
    full = {n: Probed(frozenset(NAMES[:4]) - {n}) for n in NAMES[:4]}
    assert mesh(NAMES[:4], full).connects == ()
    unheard = mesh(NAMES, full)  # e not probed yet: asking now would fail and start its backoff
    assert unheard.connects == ()
    assert unheard.requeue_after == meshing.STARTING_PROBE_SECONDS  # probe it again soon instead
    joined = mesh(NAMES, {**full, NAMES[4]: Probed(frozenset())}, unheard.memory, clock=100.1)
    assert sorted(joined.connects) == sorted((n, NAMES[4]) for n in NAMES[:4])


def test_a_member_whose_node_is_not_up_yet_is_probed_often_for_a_while_then_at_the_interval() -> None:
    views = {**alone(*NAMES[:2]), NAMES[1]: Probed(None, "ConnectionRefused")}
    starting = mesh(NAMES[:2], views)
    assert (starting.connects, starting.requeue_after) == ((), meshing.STARTING_PROBE_SECONDS)
    late = meshing.STARTING_WINDOW_SECONDS + 1
    given_up = mesh(NAMES[:2], views, starting.memory, clock=100.0 + late)
    assert given_up.requeue_after is None  # down for good: the probe interval will do
    answered = mesh(NAMES[:2], alone(*NAMES[:2]), given_up.memory, clock=101.0 + late)
    assert answered.memory.waiting == {}
    restarted = mesh(NAMES[:2], views, answered.memory, clock=102.0 + late)
    assert restarted.requeue_after == meshing.STARTING_PROBE_SECONDS  # it crashed: a new window


def test_a_pair_asked_for_is_not_asked_again_before_its_backoff_and_then_later() -> None:
    first = mesh(NAMES[:2], alone(*NAMES[:2]))
    assert first.connects == ((NAMES[0], NAMES[1]),)
    waiting = mesh(NAMES[:2], alone(*NAMES[:2]), first.memory, clock=100.2)
    assert waiting.connects == ()
    assert waiting.requeue_after == pytest.approx(0.3)  # when it is due
    again = mesh(NAMES[:2], alone(*NAMES[:2]), waiting.memory, clock=100.6)
    assert again.connects == ((NAMES[0], NAMES[1]),)
    assert again.memory.attempts[(NAMES[0], NAMES[1])] == Attempts(2, 101.6)  # the wait doubles
    assert mesh(NAMES[:2], linked(*NAMES[:2]), again.memory, clock=100.7).memory.attempts == {}


def test_down_and_unknown_members_are_not_connected() -> None:
    views = {
        **alone(*NAMES[:2]),
        NAMES[2]: Probed(None, "ConnectionRefused"),
        NAMES[3]: Probed(None, "Timeout"),
    }
    plan = mesh(NAMES[:4], views)
    assert all(NAMES[2] not in pair for pair in plan.connects)
    assert set(plan.connects) >= {(NAMES[0], NAMES[1]), (NAMES[0], NAMES[3]), (NAMES[1], NAMES[3])}


def test_a_terminating_member_is_not_reconnected_and_is_disconnected_once_its_pod_is_gone() -> None:
    everyone = [member(n) for n in NAMES[:3]]
    staying = everyone[:2]
    views = alone(*NAMES[:2])
    leaving = meshing.plan(
        counting=staying, views=views, before=everyone, after=staying, pods=pods(*NAMES[:3]),
        memory=MeshMemory(), clock=1.0,
    )  # fmt: skip
    assert all(NAMES[2] not in pair for pair in leaving.connects)
    assert leaving.disconnects == ()  # it drains: left connected
    assert leaving.memory.leaving == {NAMES[2]: ("pod-2", "10.0.0.3")}
    gone = meshing.plan(
        counting=staying, views=views, before=staying, after=staying, pods=pods(*NAMES[:2]),
        memory=leaving.memory, clock=2.0,
    )  # fmt: skip
    assert sorted(gone.disconnects) == [(NAMES[0], NAMES[2]), (NAMES[1], NAMES[2])]
    assert gone.memory.leaving == {}


def test_a_member_whose_pod_is_deleted_at_once_is_disconnected_at_once() -> None:
    everyone = [member(n) for n in NAMES[:3]]
    plan = meshing.plan(
        counting=everyone[:2], views=alone(*NAMES[:2]), before=everyone, after=everyone[:2],
        pods=pods(*NAMES[:2]), memory=MeshMemory(), clock=1.0,
    )  # fmt: skip
    assert sorted(plan.disconnects) == [(NAMES[0], NAMES[2]), (NAMES[1], NAMES[2])]


def test_stale_discovery_disconnects_nobody() -> None:
    """Discovery keeps the last members through its errors, so nobody leaves."""
    everyone = [member(n) for n in NAMES[:3]]
    plan = meshing.plan(
        counting=everyone, views=alone(*NAMES[:3]), before=everyone, after=everyone, pods={},
        memory=MeshMemory(), clock=1.0,
    )  # fmt: skip
    assert plan.disconnects == ()


def test_a_member_whose_pod_is_gone_is_cut_at_once_even_while_its_endpoint_lingers() -> None:
    everyone = [member(n) for n in NAMES[:3]]
    views = linked(*NAMES[:3])
    lingering = meshing.plan(
        counting=everyone, views=views, before=everyone, after=everyone, pods=pods(*NAMES[:2]),
        memory=MeshMemory(), clock=1.0,
    )  # fmt: skip
    assert sorted(lingering.disconnects) == [(NAMES[0], NAMES[2]), (NAMES[1], NAMES[2])]
    assert NAMES[2] not in lingering.addresses  # not asked anything itself: it is gone
    cut_views = {**linked(*NAMES[:2]), NAMES[2]: Probed(None, "Timeout")}
    still_listed = meshing.plan(
        counting=everyone, views=cut_views, before=everyone, after=everyone, pods=pods(*NAMES[:2]),
        memory=lingering.memory, clock=1.1,
    )  # fmt: skip
    assert (still_listed.connects, still_listed.disconnects) == ((), ())  # asked once; never reconnected
    left = meshing.plan(
        counting=everyone[:2], views=linked(*NAMES[:2]), before=everyone, after=everyone[:2],
        pods=pods(*NAMES[:2]), memory=still_listed.memory, clock=1.2,
    )  # fmt: skip
    assert left.disconnects == ()
    assert left.memory == MeshMemory()


def test_a_new_pod_missing_from_the_cache_for_a_moment_is_meshed_once_it_shows() -> None:
    everyone = [member(n) for n in NAMES[:3]]
    early = meshing.plan(
        counting=everyone, views=alone(*NAMES[:3]), before=everyone[:2], after=everyone,
        pods=pods(*NAMES[:2]), memory=MeshMemory(), clock=1.0,
    )  # fmt: skip
    assert all(NAMES[2] not in pair for pair in early.connects)
    shown = meshing.plan(
        counting=everyone, views=alone(*NAMES[:3]), before=everyone, after=everyone,
        pods=pods(*NAMES[:3]), memory=early.memory, clock=2.0,
    )  # fmt: skip
    assert {NAMES[2]} <= {name for pair in shown.connects for name in pair}
    assert shown.memory.cut == frozenset()


def test_a_member_that_left_and_whose_pod_was_replaced_at_another_address_is_cut() -> None:
    everyone = [member(n) for n in NAMES[:3]]
    replaced = {**pods(*NAMES[:2]), "pod-2": PodFacts("pod-2", {}, "10.0.9.9")}
    plan = meshing.plan(
        counting=everyone[:2], views=alone(*NAMES[:2]), before=everyone, after=everyone[:2],
        pods=replaced, memory=MeshMemory(), clock=1.0,
    )  # fmt: skip
    assert sorted(plan.disconnects) == [(NAMES[0], NAMES[2]), (NAMES[1], NAMES[2])]


VIEWS = st.one_of(
    st.none(),  # not probed yet
    st.sampled_from(
        [Probed(None, "ConnectionRefused"), Probed(None, "NotRegistered"), Probed(None, "Timeout")]
    ),
    st.sets(st.sampled_from(NAMES)).map(lambda seen: Probed(frozenset(seen))),
)


@given(
    counting=st.sets(st.sampled_from(NAMES)),
    listed_before=st.sets(st.sampled_from(NAMES)),
    with_pods=st.sets(st.sampled_from(NAMES)),
    views=st.dictionaries(st.sampled_from(NAMES), VIEWS),
)
def test_only_answering_counting_members_are_connected_and_only_gone_ones_cut(
    counting: set[str], listed_before: set[str], with_pods: set[str], views: dict[str, Probed | None]
) -> None:
    probed = {name: view for name, view in views.items() if view is not None}
    after = [member(n) for n in sorted(counting)]
    plan = meshing.plan(
        counting=after, views=probed, before=[member(n) for n in sorted(listed_before)], after=after,
        pods=pods(*with_pods), memory=MeshMemory(), clock=1.0,
    )  # fmt: skip
    answering = {n for n in counting & with_pods if n in probed and probed[n].reason not in DOWN_REASONS}
    pairs = [frozenset(pair) for pair in plan.connects]
    assert len(pairs) == len(set(pairs))  # one caller per missing pair
    for caller, peer in plan.connects:
        assert {caller, peer} <= answering
        seen = probed[caller].connected
        assert seen is not None  # a caller knows its own view
        assert peer not in seen
    for caller, gone in plan.disconnects:
        assert caller in answering - {gone}
        assert gone not in with_pods
    assert plan.memory.cut <= counting - with_pods
    again = meshing.plan(
        counting=after, views=probed, before=after, after=after, pods=pods(*with_pods), memory=plan.memory,
        clock=1.0,
    )  # fmt: skip
    assert (again.connects, again.disconnects) == ((), ())  # deciding again at once asks nothing twice
