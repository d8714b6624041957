"""connect: Mesh: whom conclave asks to connect or disconnect, decided purely."""

from __future__ import annotations

from conclave.api import Member
from conclave.core import meshing
from conclave.core.facts import PodFacts, Probed
from conclave.core.memory import Attempts, MeshMemory

NAMES = ["a@10.0.0.1", "b@10.0.0.2", "c@10.0.0.3", "d@10.0.0.4", "e@10.0.0.5"]


def member(name: str) -> Member:
    index = NAMES.index(name)
    return Member(name=name, ip=name.split("@")[1], pod=f"pod-{index}")


def pods(*names: str) -> dict[str, PodFacts]:
    return {f"pod-{NAMES.index(n)}": PodFacts(f"pod-{NAMES.index(n)}", {}, n.split("@")[1]) for n in names}


def alone(*names: str) -> dict[str, Probed]:
    return {name: Probed(frozenset()) for name in names}


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


def test_a_full_mesh_is_left_alone_and_a_newcomer_is_connected_by_those_who_miss_it() -> None:
    full = {n: Probed(frozenset(NAMES[:4]) - {n}) for n in NAMES[:4]}
    assert mesh(NAMES[:4], full).connects == ()
    joined = mesh(NAMES, full)  # e not probed yet: the others, whose views lack it, connect it
    assert sorted(joined.connects) == sorted((n, NAMES[4]) for n in NAMES[:4])


def test_a_pair_asked_for_is_not_asked_again_before_its_backoff_and_then_later() -> None:
    first = mesh(NAMES[:2], alone(*NAMES[:2]))
    assert first.connects == ((NAMES[0], NAMES[1]),)
    waiting = mesh(NAMES[:2], alone(*NAMES[:2]), first.memory, clock=100.2)
    assert waiting.connects == ()
    again = mesh(NAMES[:2], alone(*NAMES[:2]), waiting.memory, clock=100.6)
    assert again.connects == ((NAMES[0], NAMES[1]),)
    assert again.memory.attempts[(NAMES[0], NAMES[1])] == Attempts(2, 101.6)  # the wait doubles


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
    assert leaving.memory.leaving == {NAMES[2]: "pod-2"}
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
