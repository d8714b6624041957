"""The planner: what it decides for a topology and its dependents, and that deciding again
on its own result changes nothing."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conclave.api import ClusterTopology, ProcessGroup, Singleton
from conclave.core import marks, patches, planning
from conclave.core.facts import Endpoint, LeaseState, Moment, PodFacts, ServiceState
from conclave.core.memory import Remembered
from conclave.core.observations import Discovery, Observation, Observed, Ownership, Resource
from conclave.core.plans import EventIntent, OwnedObject, Plan, StatusUpdate

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def observed(
    model: type[Resource], spec: dict[str, Any], name: str, status: dict[str, Any] | None = None
) -> Any:
    body = {"metadata": {"name": name, "namespace": "prod", "uid": f"uid-{name}"}, "spec": spec}
    return Observed(
        resource=model.from_api({**body, "status": status or {}}),
        uid=f"uid-{name}",
        generation=1,
        resource_version="1",
        wire_status=status or {},
    )


def observation(
    hosts: list[str] | None = None,
    strategy: str = "Static",
    groups: int = 0,
    singletons: int = 0,
    failures: tuple[str, ...] = (),
) -> Observation:
    spec = {"strategy": strategy, "hosts": hosts or [], "service": "chat"}
    return Observation(
        moment=Moment(NOW, 0.0),
        namespace="prod",
        topology_name="chat",
        topology=observed(ClusterTopology, spec, "chat") if hosts is not None else None,
        process_groups=tuple(
            observed(ProcessGroup, {"topology": "chat", "group": f"g{i}", "selector": {}}, f"group-{i}")
            for i in range(groups)
        ),
        singletons=tuple(
            observed(Singleton, {"topology": "chat"}, f"singleton-{i}") for i in range(singletons)
        ),
        memory=Remembered(write_failures=failures),
    )


def updates(plan: Plan) -> list[StatusUpdate]:
    return [item.status for item in plan.objects if item.status is not None]


def patch_of(update: StatusUpdate) -> dict[str, Any]:
    """The merge patch the applier would send."""
    return patches.diff(update.current, patches.desired(update.current, update.desired.wire()))


def events(plan: Plan) -> tuple[EventIntent, ...]:
    return tuple(event for item in plan.objects for event in item.events)


def owned(plan: Plan) -> tuple[OwnedObject, ...]:
    return tuple(written for item in plan.objects for written in item.owned)


def published(plan: Plan) -> dict[str, dict[str, Any]]:
    return {u.target.name: patches.apply(u.current, patch_of(u)) for u in updates(plan)}


def without_times(status: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: v for k, v in status.items() if k != "members"},
        "conditions": [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status["conditions"]
        ],
    }


def test_a_static_topology_publishes_its_hosts_as_ready_members() -> None:
    status = published(planning.plan(observation(hosts=["chat@10.0.0.2", "chat@10.0.0.1"])))["chat"]
    assert [m["name"] for m in status["members"]] == ["chat@10.0.0.1", "chat@10.0.0.2"]
    assert status["members"][0] == {
        "name": "chat@10.0.0.1",
        "ip": "10.0.0.1",
        "ready": True,
        "since": "2026-11-25T12:00:00Z",
    }
    assert without_times(status) == {
        "memberCount": 2,
        "readyMembers": 2,
        "membersShown": 2,
        "observedGeneration": 1,
        "partition": {
            "state": "Unknown",
            "components": [],
            "componentCount": 0,
            "componentSizes": [],
            "majority": [],
            "majoritySize": 0,
            "missingLinks": [],
            "missingLinkCount": 0,
            "down": [],
            "downCount": 0,
            "since": "2026-11-25T12:00:00Z",
            "views": [
                {"member": "chat@10.0.0.1", "known": False},
                {"member": "chat@10.0.0.2", "known": False},
            ],
            "unknownViews": 2,
        },
        "conditions": [
            {
                "type": "Discovered",
                "status": "True",
                "reason": "MembersFound",
                "message": "2 members from spec.hosts",
                "observedGeneration": 1,
            },
            {
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": "Generation 1 reconciled",
                "observedGeneration": 1,
            },
            {
                "type": "Partitioned",
                "status": "Unknown",
                "reason": "NoMemberViews",
                "message": "probe.type none gives no member views",
                "observedGeneration": 1,
            },
            {
                "type": "Quorum",
                "status": "Unknown",
                "reason": "ViewsUnknown",
                "message": "Whether a majority is reachable is unknown",
                "observedGeneration": 1,
            },
        ],
    }


def test_a_failed_write_makes_the_topology_not_ready_and_says_what_failed() -> None:
    status = published(planning.plan(observation(hosts=["a@b"], failures=("Singleton x: 403 Forbidden",))))[
        "chat"
    ]
    assert status["conditions"][1] == {
        "type": "Ready",
        "status": "False",
        "reason": "ApiError",
        "message": "Singleton x: 403 Forbidden",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-11-25T12:00:00Z",
    }


def test_dependents_of_a_missing_topology_are_told_and_warned_once() -> None:
    plan = planning.plan(observation(hosts=None, groups=1, singletons=1))
    statuses = published(plan)
    assert statuses["singleton-0"]["phase"] == "Pending"
    assert statuses["group-0"]["conditions"][1] == {
        "type": "Populated",
        "status": "Unknown",
        "reason": "TopologyNotFound",
        "message": "The group's topology does not exist",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-11-25T12:00:00Z",
    }
    for name in ("group-0", "singleton-0"):
        assert statuses[name]["conditions"][:1] == [
            {
                "type": "TopologyFound",
                "status": "False",
                "reason": "TopologyNotFound",
                "message": "ClusterTopology 'chat' does not exist in namespace 'prod'",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-11-25T12:00:00Z",
            }
        ]
    assert [(e.regarding.name, e.type, e.reason) for e in events(plan)] == [
        ("group-0", "Warning", "TopologyNotFound"),
        ("singleton-0", "Warning", "TopologyNotFound"),
    ]


def lease_written(owned: OwnedObject, previous: LeaseState | None) -> LeaseState:
    """The Lease as the API holds it after the applier's write."""
    spec = owned.content["spec"]
    annotations = {
        marks.OWNER_ANNOTATION: previous.last_owner if previous else None,
        marks.OWNER_POD_ANNOTATION: previous.last_owner_pod if previous else None,
        marks.OWNER_POD_UID_ANNOTATION: previous.last_owner_pod_uid if previous else None,
        **owned.annotations,
    }
    return LeaseState(
        resource_version=str(int(previous.resource_version) + 1 if previous else 1),
        controller_uid=owned.owner.uid,
        holder=spec.get("holderIdentity"),
        epoch=spec["leaseTransitions"],
        duration_seconds=spec.get("leaseDurationSeconds", previous.duration_seconds if previous else None),
        last_owner=annotations[marks.OWNER_ANNOTATION],
        last_owner_pod=annotations[marks.OWNER_POD_ANNOTATION],
        last_owner_pod_uid=annotations[marks.OWNER_POD_UID_ANNOTATION],
        reason=annotations[marks.REASON_ANNOTATION],
    )


def replanned(first: Observation, later: datetime.datetime) -> Any:
    """Plan again on what the first plan wrote (statuses and Leases), at a later moment."""
    plan = planning.plan(first)
    statuses = published(plan)
    leases = dict(first.ownership.leases)
    for written in owned(plan):
        if written.kind == "Lease":
            leases[written.name] = lease_written(written, leases.get(written.name))

    def advanced(item: Any) -> Any:
        model = type(item.resource)
        status = statuses.get(item.resource.metadata.name, item.wire_status)
        body = {**item.resource.model_dump(by_alias=True, mode="json"), "status": status}
        return dataclasses.replace(item, resource=model.from_api(body), wire_status=status)

    return planning.plan(
        dataclasses.replace(
            first,
            moment=Moment(later, first.moment.monotonic),
            topology=advanced(first.topology) if first.topology else None,
            process_groups=tuple(advanced(g) for g in first.process_groups),
            singletons=tuple(advanced(s) for s in first.singletons),
            ownership=Ownership(leases, first.ownership.singleton_names),
            memory=Remembered(
                plan.memory.partition,
                {uid: m.stamped(first.moment.monotonic) for uid, m in plan.memory.singletons.items()},
            ),
        )
    )


@given(
    hosts=st.none() | st.lists(st.sampled_from(["a@10.0.0.1", "b@10.0.0.2", "c@host", "d@::1"]), max_size=4),
    groups=st.integers(0, 2),
    singletons=st.integers(0, 2),
    strategy=st.sampled_from(["Static", "KubernetesAPI"]),
    minutes=st.integers(0, 600),
)
def test_deciding_again_on_the_result_changes_nothing(
    hosts: list[str] | None, groups: int, singletons: int, strategy: str, minutes: int
) -> None:
    first = observation(hosts=hosts, strategy=strategy, groups=groups, singletons=singletons)
    again = replanned(first, NOW + datetime.timedelta(minutes=minutes))
    assert [patch_of(u) for u in updates(again)] == [{}] * len(updates(again))
    assert events(again) == ()
    assert [o.name for o in owned(again) if o.kind == "Lease"] == []  # never renewed


def test_a_member_is_granted_nothing_until_the_watches_show_its_own_pod() -> None:
    """Granted without its pod's uid (or with a predecessor's), an owner would look gone,
    and be replaced at once, while it runs."""
    endpoint = Endpoint(ip="10.0.0.1", pod="chat-0", ready=True, terminating=False)
    unseen = dataclasses.replace(
        observation(hosts=[], strategy="KubernetesAPI", singletons=1),
        discovery=Discovery(service=ServiceState(exists=True), endpoints=(endpoint,)),
    )
    plan = planning.plan(unseen)
    assert [o for o in owned(plan) if o.kind == "Lease"] == []
    assert published(plan)["singleton-0"]["phase"] == "Pending"

    pod = PodFacts("chat-0", {}, "10.0.0.1", uid="uid-chat-0", phase="Running", ready=True)
    seen = planning.plan(dataclasses.replace(unseen, pods={"chat-0": pod}))
    (lease,) = [o for o in owned(seen) if o.kind == "Lease"]
    assert lease.content["spec"]["holderIdentity"] == "app@10.0.0.1"
    assert lease.annotations[marks.OWNER_POD_UID_ANNOTATION] == "uid-chat-0"

    predecessor = dataclasses.replace(pod, ip="10.0.0.9", uid="uid-old-chat-0")
    stale = planning.plan(dataclasses.replace(unseen, pods={"chat-0": predecessor}))
    assert [o for o in owned(stale) if o.kind == "Lease"] == []
