"""Incremental planning plans what a full plan would change, and plans it the same way.

Random histories of a topology (pods that turn unready, terminate, vanish and come back,
are relabelled; singletons created, deleted and re-specified to rebalance or pin; apps
releasing; Leases deleted; time passing; writes the API refuses; resyncs) are run through
observe → plan → apply, with an API server in memory. At every step the incremental plan
(only what changed since the previous plan) is compared with the full plan of the same
observation: every object the full plan would write to, post about or record for is in
the incremental plan, planned identically, and so is everything else the plan carries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conclave.act.applying import Applier
from conclave.adapters.cache import Cache
from conclave.api import kinds
from conclave.core import planning, scoping
from conclave.core.facts import Moment
from conclave.core.keys import Key
from conclave.core.marks import ANNOTATION_PREFIX as PREFIX
from conclave.core.marks import pod_annotation, released_annotation
from conclave.core.memory import Remembered
from conclave.core.plans import MetricSample, ObjectPlan, Plan
from conclave.observe import reading
from conclave.runtime import reconciling
from conclave_harness.memoryapi import World

PODS, SINGLETONS, GROUPS = 4, 6, 2
SPECS: list[dict[str, Any]] = [
    {},
    {"rebalance": "Active"},
    {"distribution": "Pinned", "pinTo": {"selector": {"matchLabels": {"zone": "a"}}}},
    {"distribution": "Pinned", "pinTo": {"member": "sing@10.99.0.3"}},
    {"leaseDuration": "15s"},
    {"partitionPolicy": "Continue", "rebalance": "Active"},
]
START = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


class History:
    """One topology in memory, and the operator's memory of it between iterations."""

    def __init__(self) -> None:
        self.world = World(Cache())
        self.applier = Applier(self.world.api, self.world.cache, lambda: None, "tests")  # type: ignore[arg-type]
        self.memory = Remembered()
        self.clock = 1000.0
        self.last: dict[tuple[Any, int], ObjectPlan] = {}
        """Each object's plan when it was last planned."""
        for i in range(PODS):
            self.world.add_pod(f"pod-{i}", {"zone": "ab"[i % 2]})
        for i in range(SINGLETONS // 2):
            self.world.add_singleton(f"s-{i}")
        self.world.add_group("g-0", {"matchLabels": {"zone": "a"}})

    def pods(self) -> dict[str, dict[str, Any]]:
        return self.world.pods()

    def act(self, action: tuple[Any, ...]) -> None:  # noqa: PLR0915 - one branch per fault
        kind, i = action[0], action[1]
        pod = f"pod-{i % PODS}"
        present = pod in self.pods()
        singleton = f"s-{i % SINGLETONS}"
        path = kinds.SINGLETON.path(self.world.namespace, singleton)
        exists = path in self.world.api.objects
        if kind == "tick":
            self.clock += i
        elif kind == "ready" and present:
            ready = self.pods()[pod]["status"]["conditions"][0]["status"] == "True"
            self.world.set_ready(pod, not ready)
        elif kind == "terminate" and present:
            self.world.terminate(pod)
        elif kind == "delete":
            if present:
                self.world.delete_pod(pod)
            else:
                self.world.add_pod(pod, {"zone": "ab"[i % 2]})
        elif kind == "relabel" and present:
            self.world.label_pod(
                pod, {"zone": "b" if self.pods()[pod]["metadata"]["labels"]["zone"] == "a" else "a"}
            )
        elif kind == "release" and exists:
            lease = self.world.api.objects.get(kinds.LEASE.path(self.world.namespace, singleton))
            owner = (lease or {}).get("metadata", {}).get("annotations", {}).get("conclave.dev/owner-pod")
            if lease and owner in self.pods():
                epoch = str(lease["spec"].get("leaseTransitions", 0))
                self.world.annotate_pod(owner, {released_annotation(singleton): epoch})
        elif kind == "create" and not exists:
            self.world.add_singleton(singleton, SPECS[action[2] % len(SPECS)])
        elif kind == "remove" and exists:
            self.world.delete(kinds.SINGLETON, singleton)
        elif kind == "respec" and exists:
            cleared = {"rebalance": None, "distribution": None, "pinTo": None, "leaseDuration": None}
            self.world.respec(kinds.SINGLETON, singleton, {**cleared, **SPECS[action[2] % len(SPECS)]})
        elif kind == "drop-lease":
            lease_path = kinds.LEASE.path(self.world.namespace, singleton)
            if lease_path in self.world.api.objects:
                self.world.delete(kinds.LEASE, singleton)
        elif kind == "group":
            name = f"g-{i % GROUPS}"
            if kinds.PROCESS_GROUP.path(self.world.namespace, name) in self.world.api.objects:
                self.world.delete(kinds.PROCESS_GROUP, name)
            else:
                self.world.add_group(name, {"matchLabels": {"zone": "ab"[i % 2]}})
        elif kind == "lag" and present:
            self.world.lag(pod, None if pod in self.world.lagging else bool(action[2] % 2))
        elif kind == "tamper" and present:  # someone edits conclave's marks on a pod
            marks = {k for k in self.pods()[pod]["metadata"].get("annotations", {}) if k.startswith(PREFIX)}
            if marks and action[2] % 2:
                self.world.annotate_pod(pod, {min(marks): None})
            else:
                self.world.annotate_pod(pod, {pod_annotation(singleton): str(action[2])})
        elif kind == "unpublish":  # someone deletes a group's Service or EndpointSlice
            kind_of = (kinds.SERVICE, kinds.ENDPOINT_SLICE)[action[2] % 2]
            name = f"g-{i % GROUPS}"
            if kind_of.path(self.world.namespace, name) in self.world.api.objects:
                self.world.delete(kind_of, name)
        elif kind == "refuse":
            self.world.api.refuse = 1 + i % 3
        elif kind == "resync":
            self.memory = dataclasses.replace(self.memory, basis=None)

    def observe(self, memory: Remembered) -> Any:
        return reading.observe(
            self.world.cache,
            Key(self.world.namespace, self.world.topology),
            moment=Moment(START + datetime.timedelta(seconds=self.clock), self.clock),
            cluster_domain="cluster.local",
            lookups=reading.Lookups(),
            memory=memory,
        )

    def iterate(self) -> tuple[Plan, Plan]:
        """One iteration: the incremental plan (applied) and the full plan of the same observation."""
        observation = self.observe(self.memory)
        incremental = planning.plan(observation)
        full = planning.plan(
            dataclasses.replace(observation, memory=dataclasses.replace(self.memory, basis=None))
        )
        applied = asyncio.run(self.applier.apply(incremental))
        self.memory = reconciling.remember(self.memory, incremental, applied, self.clock)
        self.last.update(by_target(incremental))
        return incremental, full


def by_target(plan: Plan) -> dict[tuple[Any, int], ObjectPlan]:
    """Each object's plans, the n-th for an object under (target, n)."""
    found: dict[tuple[Any, int], ObjectPlan] = {}
    for item in plan.objects:
        n = sum(1 for target, _ in found if target == item.target)
        found[item.target, n] = item
    return found


def gauges(item: ObjectPlan) -> tuple[MetricSample, ...]:
    return tuple(sample for sample in item.metrics if sample.mode in ("set", "declare"))


def changes_anything(item: ObjectPlan) -> bool:
    """Whether applying the plan would change anything but gauges (set to what they hold)."""
    return not dataclasses.replace(item, metrics=tuple(s for s in item.metrics if s not in gauges(item))).idle


def assert_same_where_it_matters(
    incremental: Plan, full: Plan, last: dict[tuple[Any, int], ObjectPlan]
) -> None:
    """``last``: each object's plan when it was last planned (its gauges hold what that set)."""
    mine, everything = by_target(incremental), by_target(full)
    for key, item in everything.items():
        if key not in mine:
            changes = dataclasses.replace(
                item, metrics=tuple(s for s in item.metrics if s not in gauges(item))
            )
            assert changes.idle, f"the incremental plan left out {key[0].kind} {key[0].name}: {item}"
            assert gauges(item) == gauges(last[key]), f"{key[0].kind} {key[0].name}'s gauges changed"
    for key, item in mine.items():
        assert item == everything[key], f"{key[0].kind} {key[0].name} was planned differently"
    assert incremental.pod_annotations == full.pod_annotations
    assert incremental.metrics == full.metrics
    assert incremental.requeue_after == full.requeue_after
    assert incremental.mesh == full.mesh
    assert {u: m for u, m in full.memory.singletons.items() if m != scoping.NOTHING_PENDING} == {
        u: m for u, m in incremental.memory.singletons.items() if m != scoping.NOTHING_PENDING
    }


FAULTS = ["ready", "terminate", "delete", "relabel", "release", "create", "remove", "respec", "drop-lease"]
kinds_of_action = st.sampled_from([*FAULTS, "lag", "tamper", "unpublish", "group", "refuse", "resync"])
actions = st.one_of(
    st.tuples(st.just("tick"), st.integers(0, 40)),
    st.tuples(kinds_of_action, st.integers(0, 11), st.integers(0, len(SPECS) - 1)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(actions, max_size=30))
# a mark rewritten after a refused write, then tampered back to what that plan saw
@example(history=[("refuse", 0, 0), ("tamper", 0, 0), ("tamper", 0, 0)])
# a singleton re-created beside its predecessor's Lease: the bounded loads count its holder
# whether the singleton is planned or left out
@example(history=[("ready", 2, 0), ("remove", 0, 0), ("create", 0, 0), ("tick", 15)])
def test_an_incremental_plan_is_the_full_plan_where_the_full_plan_changes_anything(
    history: list[Any],
) -> None:
    world = History()
    for _ in range(3):  # settle: place what there is
        world.iterate()
    for action in history:
        world.act(action)
        for _ in range(2):  # the change, then what its own writes changed
            incremental, full = world.iterate()
            assert_same_where_it_matters(incremental, full, world.last)


def test_with_nothing_changed_nothing_is_planned_but_the_topology() -> None:
    world = History()
    for _ in range(3):
        world.iterate()
    incremental, full = world.iterate()
    assert [item.target.kind for item in incremental.objects] == ["ClusterTopology"]
    assert {item.target.kind for item in full.objects} == {"ClusterTopology", "ProcessGroup", "Singleton"}
    assert not any(changes_anything(item) for item in full.objects if item.target.kind != "ClusterTopology")


def test_an_owner_gone_plans_only_its_singletons() -> None:
    world = History()
    for i in range(SINGLETONS // 2, SINGLETONS):
        world.world.add_singleton(f"s-{i}")
    for _ in range(3):
        world.iterate()
    leases = {
        name: body["metadata"]["annotations"]["conclave.dev/owner-pod"]
        for name, body in (
            (b["metadata"]["name"], b) for b in world.world.cache.in_namespace("Lease", "bench")
        )
    }
    victim = leases["s-0"]
    world.world.delete_pod(victim)
    incremental, full = world.iterate()
    planned = {item.target.name for item in incremental.objects if item.target.kind == "Singleton"}
    assert planned == {name for name, pod in leases.items() if pod == victim}
    assert_same_where_it_matters(incremental, full, world.last)


def test_rebalancing_singletons_weigh_the_loads_again_when_another_one_is_deleted() -> None:
    moved = []
    for deleted in range(10):
        world = History()
        for i in range(10):
            world.world.add_singleton(f"a-{i}", {"rebalance": "Active"})
        for _ in range(6):
            world.iterate()
        world.world.delete(kinds.SINGLETON, f"a-{deleted}")
        incremental, full = world.iterate()
        assert_same_where_it_matters(incremental, full, world.last)
        moved += [i.target.name for i in incremental.objects if i.target.kind == "Singleton" and i.owned]
    assert moved  # the case is not vacuous: some deletion freed room a rebalancing singleton moved to
