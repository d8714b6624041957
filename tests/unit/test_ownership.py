"""The singleton ownership state machine, driven through random histories.

A model world (pods that flap, terminate, vanish and come back, splits and heals,
releases, operator restarts, lost writes, deleted Leases, and an operator whose pod
watch lags behind discovery) is fed to ``decide`` step by step; every Lease write is
checked against the safety rule: a grant to another member comes only after the
previous holder was confirmed gone or released, or at least a lease duration after its
revocation was committed. Epochs only grow.

Members keep their node name across pod incarnations (``nodeNaming: Hostname``, as a
StatefulSet's pods do), so a pod is told from its successor only by its uid.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conclave.api import Member, Singleton, SingletonSpec, SingletonStatus
from conclave.core import lifecycle, ownership, placement
from conclave.core.facts import LeaseState, PodFacts
from conclave.core.lifecycle import Context, SingletonFacts
from conclave.core.marks import pod_annotation, released_annotation
from conclave.core.memory import SingletonMemory
from conclave.core.partitions import Verdict
from conclave.core.placement import Candidate
from conclave.core.plans import ObjectRef

DURATION = 10.0
MEMBERS = 5
NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def node(i: int) -> str:
    return f"chat@10.0.0.{i + 1}"


@dataclasses.dataclass
class World:
    spec: SingletonSpec
    pods: dict[str, PodFacts] = dataclasses.field(default_factory=dict)
    """Ground truth: the pods as the API holds them."""
    cache: dict[str, PodFacts] = dataclasses.field(default_factory=dict)
    """The pods as the operator's watch has shown them so far."""
    lagging: set[str] = dataclasses.field(default_factory=set)
    """Pods whose watch events the operator has not caught up with (discovery has)."""
    incarnations: int = 0
    clock: float = 1000.0
    lease: LeaseState | None = None
    memory: SingletonMemory = dataclasses.field(default_factory=SingletonMemory)
    status: SingletonStatus = dataclasses.field(default_factory=SingletonStatus)
    verdict: Verdict = dataclasses.field(default_factory=lambda: Verdict("Healthy"))
    revoked_at: dict[int, float] = dataclasses.field(default_factory=dict)
    """Ground truth: when each epoch's holder was revoked (the write committed)."""
    released: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    grants: list[tuple[lifecycle.Holder, str | None, int]] = dataclasses.field(default_factory=list)
    """Ground truth: every grant (holder, its pod's uid, epoch), in order."""

    def __post_init__(self) -> None:
        for i in range(MEMBERS):
            self.recreate(i)
        self.catch_up()

    def recreate(self, i: int) -> None:
        self.incarnations += 1
        name = f"chat-{i}"
        self.pods[name] = PodFacts(
            name,
            {"i": str(i)},
            ip=f"10.0.{self.incarnations // 250}.{self.incarnations % 250 + 1}",
            uid=f"uid-{self.incarnations}",
            phase="Running",
            ready=True,
        )

    def catch_up(self) -> None:
        """The operator's watch delivers every pod event but the lagging pods'."""
        for name in {*self.pods, *self.cache} - self.lagging:
            if name in self.pods:
                self.cache[name] = self.pods[name]
            else:
                self.cache.pop(name, None)

    def candidates(self) -> dict[str, Candidate]:
        """What discovery publishes (pods being deleted are no members), joined with what
        the operator's pod watch has shown."""
        members = [
            Member(name=node(int(pod.labels["i"])), pod=pod.name, ip=pod.ip, ready=pod.ready)
            for pod in self.pods.values()
            if not pod.deleting
        ]
        return placement.candidates(members, self.cache)

    def decide(self) -> lifecycle.Decision:
        self.catch_up()
        facts = SingletonFacts("s", "prod/s", self.spec, self.status, self.lease)
        context = Context(self.candidates(), self.cache, self.verdict, self.clock)
        return lifecycle.decide(facts, context, self.memory)

    def step(self, lost: bool = False) -> None:
        decision = self.decide()
        write = decision.write
        if write is not None and not lost:
            self.check(write)
            self.apply(write)
        if not lost:
            self.memory = decision.memory.stamped(self.clock)
            self.status = SingletonStatus(
                owner=decision.holder.name if decision.holder else None,
                owner_pod=decision.holder.pod if decision.holder else None,
                epoch=decision.epoch,
                phase=decision.phase,
            )

    def check(self, write: lifecycle.LeaseWrite) -> None:
        """The safety rule, judged from the world's own record of grants and revocations,
        and from the pods as they really are."""
        previous_epoch = self.grants[-1][2] if self.grants else 0
        if write.holder is None:
            assert write.epoch == previous_epoch
            return
        assert write.epoch == previous_epoch + 1, "a grant moves the epoch by exactly one"
        if not self.grants:
            return  # the first owner
        last, last_uid, _ = self.grants[-1]
        if (last.name, last_uid) == (write.holder.name, write.holder.pod_uid):
            return  # the same member again: nobody else can be running it
        pod = self.pods.get(last.pod or "")
        gone = pod is None or pod.uid != last_uid or pod.phase == "Failed"
        released = pod is not None and (pod.uid, str(previous_epoch)) in self.released
        revoked = self.revoked_at.get(previous_epoch)
        expired = revoked is not None and self.clock - revoked >= DURATION
        assert gone or released or expired, f"granted to {write.holder.name} while {last.name} may still run"

    def apply(self, write: lifecycle.LeaseWrite) -> None:
        if write.holder is None:
            self.revoked_at[write.epoch] = self.clock
        else:
            # who really got it: the pod that answers to the holder's name now
            running = self.pods.get(write.holder.pod or "")
            self.grants.append((write.holder, running.uid if running else None, write.epoch))
            assert write.holder.pod_uid == (running.uid if running else None), "granted under a wrong pod uid"
        previous = self.lease
        holder = write.holder
        self.lease = LeaseState(
            resource_version="1",
            controller_uid="uid-s",
            holder=holder.name if holder else None,
            epoch=write.epoch,
            duration_seconds=write.duration_seconds,
            last_owner=holder.name if holder else (previous.last_owner if previous else self.status.owner),
            last_owner_pod=holder.pod
            if holder
            else (previous.last_owner_pod if previous else self.status.owner_pod),
            last_owner_pod_uid=holder.pod_uid
            if holder
            else (previous.last_owner_pod_uid if previous else None),
            reason=write.reason,
        )

    def act(self, action: tuple[Any, ...]) -> None:
        kind, i = action[0], action[1] % MEMBERS
        pod_name = f"chat-{i}"
        pod = self.pods.get(pod_name)
        if kind == "tick":
            self.clock += action[1]
        elif kind == "ready" and pod:
            self.pods[pod_name] = dataclasses.replace(pod, ready=not pod.ready)
        elif kind == "terminate" and pod:
            self.pods[pod_name] = dataclasses.replace(pod, deleting=True, ready=False)
        elif kind == "delete":
            if pod:
                del self.pods[pod_name]
            else:
                self.recreate(i)
        elif kind == "fail" and pod:
            self.pods[pod_name] = dataclasses.replace(pod, phase="Failed", ready=False)
        elif kind == "release" and self.lease and self.lease.last_owner_pod in self.pods:
            owner = self.pods[self.lease.last_owner_pod]
            mark = {released_annotation("s"): str(self.lease.epoch)}
            self.pods[owner.name] = dataclasses.replace(owner, annotations={**owner.annotations, **mark})
            self.released.add((owner.uid, str(self.lease.epoch)))
        elif kind == "split":
            majority = tuple(node(j) for j in range(MEMBERS) if j != i and j != (i + 1) % MEMBERS)
            if action[2]:  # a three-way split: nobody has a majority
                majority = ()
            self.verdict = Verdict("Partitioned", (majority,), majority)
        elif kind == "heal":
            everyone = tuple(node(j) for j in range(MEMBERS))
            self.verdict = Verdict("Healthy", (everyone,), everyone)
        elif kind == "restart":
            self.memory = SingletonMemory()
        elif kind == "drop-lease" and self.lease is not None:
            if self.lease.holder:
                self.revoked_at[self.lease.epoch] = self.clock  # the holder reads 404 from now on
            self.lease = None
        elif kind == "lag":
            self.lagging.add(pod_name)
        elif kind == "catch-up":
            self.lagging.discard(pod_name)
        self.step(lost=kind == "lose-write")


actions = st.one_of(
    st.tuples(st.just("tick"), st.floats(0.0, 2.5 * DURATION)),
    st.tuples(
        st.sampled_from(
            [
                "ready",
                "terminate",
                "delete",
                "fail",
                "release",
                "heal",
                "restart",
                "lose-write",
                "lag",
                "catch-up",
            ]
        ),
        st.integers(0, MEMBERS - 1),
    ),
    st.tuples(st.just("drop-lease"), st.just(0)),
    st.tuples(st.just("split"), st.integers(0, MEMBERS - 1), st.booleans()),
)
specs = st.builds(
    lambda distribution, policy, rebalance: SingletonSpec.model_validate(
        {
            "topology": "chat",
            "distribution": distribution,
            "partitionPolicy": policy,
            "rebalance": rebalance,
            "leaseDuration": f"{DURATION:.0f}s",
        }
    ),
    st.sampled_from(["Uniform", "UniformQuorum"]),
    st.sampled_from(["Fence", "Continue"]),
    st.sampled_from(["Passive", "Active"]),
)


@settings(max_examples=300, deadline=None)
@given(spec=specs, history=st.lists(actions, max_size=60))
def test_no_grant_while_the_previous_owner_may_still_run(spec: SingletonSpec, history: list[Any]) -> None:
    world = World(spec)
    world.step()
    epochs = [world.status.epoch or 0]
    for action in history:
        world.act(action)
        epochs.append(world.status.epoch or 0)
    assert epochs == sorted(epochs), "the epoch never decreases"
    assert [epoch for *_, epoch in world.grants] == sorted({epoch for *_, epoch in world.grants})


@settings(max_examples=100, deadline=None)
@given(spec=specs, history=st.lists(actions, max_size=40))
def test_a_healthy_cluster_always_ends_up_with_an_owner(spec: SingletonSpec, history: list[Any]) -> None:
    world = World(spec)
    world.step()
    for action in history:
        world.act(action)
    world.lagging.clear()
    world.act(("heal", 0))
    for i in range(MEMBERS):
        pod = world.pods.get(f"chat-{i}")
        if pod is None or pod.deleting or pod.phase == "Failed":
            world.pods.pop(f"chat-{i}", None)
            world.recreate(i)
        elif not pod.ready:
            world.act(("ready", i))
    world.step()  # Active may revoke now, to follow the hash to a member that came back
    world.act(("tick", DURATION + 0.001))
    assert world.status.phase == "Placed"
    assert world.lease is not None
    assert world.lease.holder == world.status.owner
    before = world.lease
    world.step()
    assert world.lease is before, "nothing changes while ownership is settled: no renewals"


@pytest.mark.parametrize(
    "lag",
    [
        ["lag", "delete", "catch-up", "lag", "delete"],
        ["lag", "delete", "delete"],
    ],
    ids=["its pod not seen yet", "its predecessor's pod still cached"],
)
def test_a_member_whose_own_pod_the_operator_has_not_seen_is_granted_nothing(lag: list[str]) -> None:
    """Discovery can show a new pod's member before the pod watch shows the pod."""
    world = World(SingletonSpec.model_validate({"topology": "chat", "leaseDuration": "10s"}))
    world.step()
    owner = int(world.pods[world.status.owner_pod or ""].labels["i"])
    other, *rest = (i for i in range(MEMBERS) if i != owner)
    for i in rest:
        world.act(("ready", i))  # NotReady: only `other` could take over
    for kind in lag:
        world.act((kind, other))
    world.act(("delete", owner))
    assert (world.status.owner, world.status.phase) == (None, "Pending")
    world.act(("catch-up", other))
    assert (world.status.owner, world.status.owner_pod) == (node(other), f"chat-{other}")
    assert world.lease is not None
    assert world.lease.last_owner_pod_uid == world.pods[f"chat-{other}"].uid


def test_a_confirmed_gone_owner_is_replaced_at_once_and_a_not_ready_one_after_the_lease() -> None:
    world = World(SingletonSpec.model_validate({"topology": "chat", "leaseDuration": "10s"}))
    world.step()
    first = world.status
    assert (first.phase, first.epoch) == ("Placed", 1)
    assert first.owner_pod is not None
    del world.pods[first.owner_pod]
    world.step()
    assert (world.status.phase, world.status.epoch, world.lease and world.lease.reason) == (
        "Placed",
        2,
        "OwnerGone",
    )
    second = world.status
    assert second.owner_pod is not None
    world.act(("ready", int(world.pods[second.owner_pod].labels["i"])))  # NotReady
    assert (world.status.phase, world.status.owner, world.status.epoch) == ("Moving", None, 2)
    world.act(("tick", DURATION - 0.5))
    assert world.status.phase == "Moving"
    world.act(("tick", 0.5))
    assert (world.status.phase, world.status.epoch, world.lease and world.lease.reason) == (
        "Placed", 3, "LeaseExpired",
    )  # fmt: skip


def test_a_revoked_owner_that_releases_is_replaced_at_once() -> None:
    world = World(SingletonSpec.model_validate({"topology": "chat", "leaseDuration": "10s"}))
    world.step()
    assert world.status.owner_pod is not None
    world.act(("ready", int(world.pods[world.status.owner_pod].labels["i"])))
    assert world.status.phase == "Moving"
    world.act(("release", 0))
    assert (world.status.phase, world.status.epoch, world.lease and world.lease.reason) == (
        "Placed",
        2,
        "Released",
    )


def test_after_a_restart_the_wait_starts_afresh() -> None:
    world = World(SingletonSpec.model_validate({"topology": "chat", "leaseDuration": "10s"}))
    world.step()
    assert world.status.owner_pod is not None
    world.act(("ready", int(world.pods[world.status.owner_pod].labels["i"])))
    world.act(("tick", 9.0))
    world.act(("restart", 0))
    world.act(("tick", 9.0))
    assert world.status.phase == "Moving"  # 18 s after the revocation, 9 s after the restart
    world.act(("tick", 1.0))
    assert world.status.phase == "Placed"


def test_the_epoch_survives_a_deleted_lease() -> None:
    world = World(SingletonSpec.model_validate({"topology": "chat", "leaseDuration": "10s"}))
    world.step()
    for _ in range(3):
        assert world.status.owner_pod is not None
        del world.pods[world.status.owner_pod]
        world.step()
    assert world.status.epoch == 4
    owner = world.status.owner
    world.act(("drop-lease", 0))  # recreated for the same member: nobody else can be running it
    assert (world.status.owner, world.status.epoch) == (owner, 5)
    assert world.lease is not None
    assert world.lease.epoch == 5


def test_the_plan_mirrors_ownership_on_the_pod_and_moves_the_annotation() -> None:
    world = World(SingletonSpec.model_validate({"topology": "chat"}))
    singleton = Singleton.from_api(
        {"metadata": {"name": "s", "namespace": "prod", "uid": "uid-s"}, "spec": {"topology": "chat"}}
    )
    owner = ObjectRef("Singleton", "prod", "s", "uid-s")
    labels = {"namespace": "prod", "topology": "chat"}
    first = ownership.plan(
        SingletonFacts("s", "prod/s", singleton.spec, singleton.status, None),
        owner=owner,
        context=Context(world.candidates(), world.pods, world.verdict, 0.0),
        memory=SingletonMemory(),
        now=NOW,
        labels=labels,
    )
    assert first.lease is not None
    assert (first.lease.exists, first.lease.content["spec"]["leaseTransitions"]) == (False, 1)
    owner_pod = first.status.owner_pod
    assert owner_pod is not None
    assert first.annotations == {owner_pod: (pod_annotation("s"), "1")}
    assert [e.reason for e in first.events] == ["OwnerGranted"]
    assert [(m.metric, m.labels.get("reason")) for m in first.metrics] == [
        ("conclave_singleton_owner_changes", "Placed")
    ]


def failover(decision: lifecycle.Decision, clock: float) -> list[float]:
    """The failover latency the plan of ``decision`` would observe."""
    _, samples = ownership._transitions(
        ObjectRef("Singleton", "prod", "s", "uid-s"), SingletonStatus(owner="x", epoch=1), decision, clock, {}
    )
    return [m.value for m in samples if m.metric == "conclave_singleton_failover_seconds"]


def test_failover_is_timed_from_the_owner_becoming_ineligible_to_the_grant() -> None:
    world = World(SingletonSpec.model_validate({"topology": "chat", "leaseDuration": "10s"}))
    world.step()
    assert world.status.owner_pod is not None
    del world.pods[world.status.owner_pod]
    assert failover(world.decide(), world.clock) == [0.0]  # gone: replaced in the same iteration
    world.step()
    assert world.status.owner_pod is not None
    world.act(("ready", int(world.pods[world.status.owner_pod].labels["i"])))  # revoked now
    world.act(("tick", 4.0))
    world.clock += 6.5
    assert failover(world.decide(), world.clock) == [10.5]


def test_the_marks_of_a_deleted_singleton_are_orphans() -> None:
    pods = {
        "a": PodFacts(
            "a", {}, annotations={pod_annotation("kept"): "3", pod_annotation("gone"): "1", "x": "y"}
        ),
        "b": PodFacts(
            "b", {}, annotations={released_annotation("gone"): "1", released_annotation("kept"): "2"}
        ),
        "c": PodFacts("c", {}),
    }
    assert ownership.orphaned(pods, frozenset({"kept"})) == {
        "a": [pod_annotation("gone")],
        "b": [released_annotation("gone")],
    }


def test_long_names_still_make_valid_annotation_keys() -> None:
    name = "a" * 253
    key = released_annotation(name)
    assert len(key.split("/", 1)[1]) <= 63
    assert pod_annotation(name) != pod_annotation("a" * 252)
    assert pod_annotation("jobs") == "conclave.dev/singleton.jobs"


def test_a_failover_whose_status_was_not_published_is_timed_when_it_is() -> None:
    """The Lease was granted but the status write failed: the next plan keeps the owner,
    and times the failover then, instead of losing it."""
    world = World(SingletonSpec.model_validate({"topology": "chat", "leaseDuration": "10s"}))
    world.step()
    assert world.status.owner_pod is not None
    del world.pods[world.status.owner_pod]
    granted = world.decide()
    assert granted.write is not None
    world.apply(granted.write)
    world.memory = granted.memory.stamped(world.clock)  # the status write failed: status unchanged
    world.clock += 2.0
    again = ownership.plan(
        SingletonFacts("s", "prod/s", world.spec, world.status, world.lease),
        owner=ObjectRef("Singleton", "prod", "s", "uid-s"),
        context=Context(world.candidates(), world.cache, world.verdict, world.clock),
        memory=world.memory,
        now=NOW,
        labels={},
    )
    assert [e.reason for e in again.events] == ["OwnerGranted"]
    assert [m.value for m in again.metrics if m.metric == "conclave_singleton_failover_seconds"] == [2.0]
    assert again.memory.failover_since is not None  # until this status is published
