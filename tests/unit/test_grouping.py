"""Process group membership and its Populated condition, decided purely."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conclave.api import Member, ProcessGroup
from conclave.core import grouping
from conclave.core.grouping import PodFacts
from conclave.core.plans import ObjectRef

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
OWNER = ObjectRef("ProcessGroup", "prod", "orders", "uid")
PODS = {
    "chat-0": PodFacts("chat-0", {"role": "subscriber"}, "10.0.0.1"),
    "chat-1": PodFacts("chat-1", {"role": "subscriber"}, "10.0.0.2"),
    "chat-2": PodFacts("chat-2", {"role": "worker"}, "10.0.0.3"),
}
MEMBERS = [
    Member(
        name=f"chat@10.0.0.{i + 1}", pod=f"chat-{i}", ip=f"10.0.0.{i + 1}", node_name=f"worker-{'ab'[i % 2]}"
    )
    for i in range(3)
]


def group(status: dict[str, Any] | None = None, **spec: Any) -> ProcessGroup:
    body = {
        "metadata": {"name": "orders", "namespace": "prod"},
        "spec": {
            "topology": "chat",
            "group": "orders",
            "selector": {"matchLabels": {"role": "subscriber"}},
            **spec,
        },
        "status": status or {},
    }
    return ProcessGroup.from_api(body)


def test_members_are_the_counted_topology_members_whose_pod_matches() -> None:
    chosen = grouping.members(group(), MEMBERS, PODS)
    assert [m.name for m in chosen] == ["chat@10.0.0.1", "chat@10.0.0.2"]
    result = grouping.plan(group(), OWNER, chosen, NOW, "prod")
    assert result.fields == {
        "members": ["chat@10.0.0.1", "chat@10.0.0.2"],
        "count": 2,
        "membersByNode": {"worker-a": 1, "worker-b": 1},
        "lastChange": "2026-11-25T12:00:00Z",
    }


def test_a_member_without_a_pod_name_is_matched_by_its_address() -> None:
    dns_member = Member(name="chat@10.0.0.3", ip="10.0.0.3")
    chosen = grouping.members(group(selector={"matchLabels": {"role": "worker"}}), [dns_member], PODS)
    assert chosen == [dns_member]


@pytest.mark.parametrize(
    ("count", "minimum", "condition", "event"),
    [
        (2, 1, ("True", "Populated"), None),
        (1, 2, ("False", "BelowMinimum"), "GroupBelowMinimum"),
        (0, 1, ("False", "Empty"), "GroupEmpty"),
    ],
    ids=["enough members", "below the minimum", "empty"],
)
def test_populated_follows_the_minimum_and_warns_once(
    count: int, minimum: int, condition: tuple[str, str], event: str | None
) -> None:
    before = group({"members": ["chat@10.0.0.1", "chat@10.0.0.2"], "count": 2}, minMembers=minimum)
    result = grouping.plan(before, OWNER, MEMBERS[:count], NOW, "prod")
    [populated] = result.conditions
    assert ({True: "True", False: "False"}[populated.status], populated.reason) == condition  # type: ignore[index]
    warnings = [e.reason for e in result.events if e.type == "Warning"]
    assert warnings == ([event] if event else [])


def test_joins_and_leaves_of_a_burst_are_one_event_each() -> None:
    before = group({"members": ["chat@10.0.0.1", "chat@10.0.0.9"], "count": 2})
    result = grouping.plan(before, OWNER, MEMBERS[:3], NOW, "prod")
    assert [(e.reason, e.note) for e in result.events] == [
        ("MemberJoinedGroup", "Joined: chat@10.0.0.2, chat@10.0.0.3"),
        ("MemberLeftGroup", "Left: chat@10.0.0.9"),
    ]


def test_unchanged_membership_keeps_its_last_change_time() -> None:
    before = group({"members": ["chat@10.0.0.1"], "count": 1, "lastChange": "2026-11-25T11:00:00Z"})
    result = grouping.plan(before, OWNER, MEMBERS[:1], NOW, "prod")
    assert result.fields["lastChange"] == "2026-11-25T11:00:00Z"
    assert result.events == []


def identity(
    name: str, scope: str, group: str, created: str = "2026-11-25T12:00:00Z"
) -> grouping.GroupIdentity:
    return grouping.GroupIdentity(name, scope, group, created)


def test_service_names_are_readable_when_exact_and_unique() -> None:
    names = grouping.service_names(
        [
            identity("a", "pubsub", "orders"),
            identity("b", "default", "jobs"),
            identity("c", "workers", "orders"),
        ],
        frozenset(),
    )
    assert names == {"a": "pubsub-orders", "b": "jobs", "c": "workers-orders"}


def test_lossy_long_colliding_and_foreign_names_get_a_hash_of_scope_and_group() -> None:
    names = grouping.service_names(
        [
            identity("first", "a-b", "c", "2026-11-25T10:00:00Z"),
            identity("later", "a", "b-c", "2026-11-25T11:00:00Z"),
            identity("colon", "pubsub", "subscribers:orders"),
            identity("long", "default", "x" * 80),
            identity("taken", "default", "chat"),
        ],
        frozenset({"chat"}),
    )
    assert names["first"] == "a-b-c"  # created first, keeps its claim
    assert re.fullmatch(r"a-b-c-[0-9a-f]{6}", names["later"])
    assert re.fullmatch(r"pubsub-subscribers-orders-[0-9a-f]{6}", names["colon"])
    assert len(names["long"]) == 63
    assert re.fullmatch(r"chat-[0-9a-f]{6}", names["taken"])
    assert len(set(names.values())) == len(names)
    assert all(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", n) for n in names.values())


@given(st.lists(st.tuples(st.text(max_size=20), st.text(min_size=1, max_size=80)), max_size=8, unique=True))
def test_every_service_name_is_a_distinct_dns_label(pairs: list[tuple[str, str]]) -> None:
    groups = [identity(f"g{i}", scope or "default", group) for i, (scope, group) in enumerate(pairs)]
    names = grouping.service_names(groups, frozenset())
    assert len(set(names.values())) == len(groups)
    assert all(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63 for n in names.values())
