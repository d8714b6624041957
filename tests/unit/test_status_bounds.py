"""Status that fits any size: a topology's status lists a bounded slice of its members and
of its partition, with exact counts; every member is in the members ConfigMap, which the
next plan compares with, so nothing is announced twice."""

from __future__ import annotations

import datetime
import json
from typing import Any

from conclave.api import ClusterTopology, ClusterTopologyStatus
from conclave.api.topologies import MEMBERS_SHOWN, NAMES_SHOWN
from conclave.core import partitioning, patches, planning, rosters
from conclave.core.facts import Endpoint, Moment, Probed, ServiceState
from conclave.core.memory import Remembered
from conclave.core.observations import Discovery, Observation, Observed
from conclave.core.partitions import Verdict
from conclave.core.plans import Plan

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def ip(i: int) -> str:
    return f"10.1.{i // 250}.{i % 250 + 1}"


def topology(
    size: int,
    *,
    unready: frozenset[int] = frozenset(),
    status: dict[str, Any] | None = None,
    config_map: dict[str, str] | None = None,
    views: dict[str, Probed] | None = None,
    probe: str = "none",
) -> Observation:
    """A KubernetesAPI topology of ``size`` pod endpoints, as ``reading`` observes it: its
    status members are the ConfigMap's records when there are any."""
    spec: dict[str, Any] = {"strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat"}
    if probe == "http":
        spec["probe"] = {"type": "http", "port": 4000}
    body = {"metadata": {"name": "chat", "namespace": "prod", "uid": "uid-chat"}, "spec": spec}
    resource = ClusterTopology.from_api({**body, "status": status or {}})
    recorded = rosters.members_from(config_map)
    if recorded is not None:
        resource = resource.model_copy(
            update={"status": resource.status.model_copy(update={"members": recorded})}
        )
    endpoints = tuple(
        Endpoint(ip=ip(i), pod=f"chat-{i:04d}", ready=i not in unready, terminating=False)
        for i in range(size)
    )
    return Observation(
        moment=Moment(NOW, 0.0),
        namespace="prod",
        topology_name="chat",
        topology=Observed(resource, "uid-chat", 1, "1", status or {}),
        discovery=Discovery(
            service=ServiceState(exists=True, headless=True),
            endpoints=endpoints,
            members_config_map=config_map,
        ),
        views=views or {},
        memory=Remembered(),
    )


def status_of(plan: Plan) -> dict[str, Any]:
    update = next(item.status for item in plan.objects if item.status is not None)
    return patches.apply(update.current, patches.diff(update.current, update.desired.wire()))


def config_map_of(plan: Plan) -> dict[str, str]:
    owned = next(o for item in plan.objects for o in item.owned if o.kind == "ConfigMap")
    data: dict[str, str] = owned.content["data"]
    return data


def reasons(plan: Plan) -> list[str]:
    return [event.reason for item in plan.objects for event in item.events]


def test_six_hundred_members_have_exact_counts_a_bounded_list_and_all_in_the_config_map() -> None:
    plan = planning.plan(topology(600, unready=frozenset({7, 500})))
    status = status_of(plan)
    assert (status["memberCount"], status["readyMembers"], status["membersShown"]) == (
        600,
        598,
        MEMBERS_SHOWN,
    )
    names = [m["name"] for m in status["members"]]
    assert names[:2] == [f"chat@{ip(7)}", f"chat@{ip(500)}"]  # not ready first, then by name
    assert (names[2:], len(names)) == (sorted(names[2:]), MEMBERS_SHOWN)
    partition = status["partition"]
    assert (len(partition["views"]), partition["unknownViews"]) == (NAMES_SHOWN, 598)  # the ready ones
    ClusterTopologyStatus.model_validate(status)  # within every bound the CRD has
    data = config_map_of(plan)
    assert (len(json.loads(data["members.json"])), len(json.loads(data["hosts.json"]))) == (600, 598)
    assert reasons(plan).count("MemberJoined") == 600


def test_the_config_map_and_membership_events_follow_the_status_in_a_second_plan() -> None:
    plan = planning.plan(topology(3))
    first, second = plan.objects[:2]
    assert first.target == second.target
    assert (first.status is not None, first.owned) == (True, ())
    assert (second.status, [o.kind for o in second.owned]) == (None, ["ConfigMap"])
    assert {e.reason for e in second.events} == {"MemberJoined"}
    assert not {e.reason for e in first.events} & {"MemberJoined", "MemberLeft"}


def test_planning_again_on_what_was_published_writes_and_announces_nothing() -> None:
    plan = planning.plan(topology(600))
    again = planning.plan(topology(600, status=status_of(plan), config_map=config_map_of(plan)))
    assert reasons(again) == []
    assert [o for item in again.objects for o in item.owned] == []
    update = next(item.status for item in again.objects if item.status is not None)
    assert patches.diff(update.current, patches.desired(update.current, update.desired.wire())) == {}


def test_a_member_beyond_the_slice_that_leaves_is_announced_once() -> None:
    plan = planning.plan(topology(600))
    after = planning.plan(topology(599, status=status_of(plan), config_map=config_map_of(plan)))
    notes = [e.note for item in after.objects for e in item.events]
    assert notes == [f"Member chat@{ip(599)} left (pod chat-0599)"]
    assert status_of(after)["memberCount"] == 599


def test_a_partition_of_many_members_lists_a_bounded_slice_with_exact_counts() -> None:
    members = [f"chat@{ip(i)}" for i in range(300)]
    verdict = Verdict(
        "Partitioned",
        components=(tuple(members[:200]), *((name,) for name in members[200:])),
        majority=tuple(members[:200]),
        down=(),
    )
    seen = {name: frozenset() if i % 2 else None for i, name in enumerate(members)}
    status = partitioning.bounded(verdict, seen, {}, {}, NOW, NOW)
    assert (status.component_count, status.component_sizes[:2], len(status.components)) == (
        101,
        [200, 1],
        100,
    )
    assert (len(status.components[0]), status.majority_size, len(status.majority)) == (100, 200, 100)
    assert (status.unknown_views, status.truncated) == (150, True)
    assert [v.known for v in status.views] == [False] * 100  # the unknown ones first


def test_a_small_partition_is_whole_and_not_truncated() -> None:
    verdict = Verdict("Healthy", components=(("a", "b"),), majority=("a", "b"))
    status = partitioning.bounded(verdict, {"a": frozenset({"b"}), "b": None}, {}, {}, NOW, NOW)
    assert (status.components, status.truncated, [v.member for v in status.views]) == (
        [["a", "b"]],
        None,
        ["b", "a"],
    )


def test_a_truncated_verdict_is_not_read_back_after_a_restart() -> None:
    members = {f"chat@{ip(i)}": Probed(frozenset(), "ConnectionRefused") for i in range(150)}
    plan = planning.plan(topology(150, views=members, probe="http"))
    status = status_of(plan)
    assert (status["partition"]["downCount"], len(status["partition"]["down"])) == (150, NAMES_SHOWN)
    assert reasons(plan).count("MemberDown") == 0  # the first verdict is published at once
    restarted = planning.plan(
        topology(150, status=status, config_map=config_map_of(plan), views=members, probe="http")
    )
    assert reasons(restarted) == []


def test_members_records_past_the_budget_are_summarised_and_still_name_everyone() -> None:
    plan = planning.plan(topology(7000))
    data = config_map_of(plan)
    records = json.loads(data["members.json"])
    assert (len(records), set(records[0])) == (7000, {"name", "ip", "ready", "since"})
    assert "members.summarised" in data
    assert sum(map(len, data.values())) <= rosters.CONFIG_MAP_BUDGET
