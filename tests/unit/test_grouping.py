"""Process group membership and its Populated condition, decided purely."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conclave.api import LabelSelector, Member, ProcessGroup, ProcessGroupStatus
from conclave.core import grouping
from conclave.core.facts import GroupIdentity, PodFacts, Published
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
    result = grouping.plan(group(), owner=OWNER, chosen=chosen, now=NOW)
    assert result.status.wire() == {
        "members": ["chat@10.0.0.1", "chat@10.0.0.2"],
        "count": 2,
        "membersByNode": {"worker-a": 1, "worker-b": 1},
        "lastChange": "2026-11-25T12:00:00Z",
    }


def test_a_member_without_a_pod_name_is_matched_by_its_address() -> None:
    dns_member = Member(name="chat@10.0.0.3", ip="10.0.0.3")
    chosen = grouping.members(group(selector={"matchLabels": {"role": "worker"}}), [dns_member], PODS)
    assert chosen == [dns_member]


def naive_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """LabelSelector.matches as it was first written: the reference for the compiled one."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        value = labels.get(requirement.key)
        if requirement.operator == "In" and value not in requirement.values:
            return False
        if requirement.operator == "NotIn" and present and value in requirement.values:
            return False
        if requirement.operator == "Exists" and not present:
            return False
        if requirement.operator == "DoesNotExist" and present:
            return False
    return True


def naive_members(
    selector: LabelSelector, counted: Sequence[Member], pods: Mapping[str, PodFacts]
) -> list[Member]:
    """grouping.members as it was first written: every member's pod tested on its own."""
    by_ip = {pod.ip: pod for pod in pods.values() if pod.ip}
    chosen = []
    for member in counted:
        pod = pods.get(member.pod) if member.pod else by_ip.get(member.ip or "")
        if pod is not None and naive_matches(selector, pod.labels):
            chosen.append(member)
    return sorted(chosen, key=lambda member: member.name)


LABEL_KEYS = st.sampled_from(["app", "shard", "conclave.dev/tier"])
LABEL_VALUES = st.sampled_from(["", "a", "b"])
LABELS = st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=3)
IPS = st.sampled_from([None, "10.0.0.1", "10.0.0.2", "10.0.0.3"])
REQUIREMENTS = st.one_of(
    st.fixed_dictionaries({
        "key": LABEL_KEYS,
        "operator": st.sampled_from(["In", "NotIn"]),
        "values": st.lists(LABEL_VALUES, min_size=1, max_size=3),  # duplicates included
    }),
    st.fixed_dictionaries({"key": LABEL_KEYS, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)  # fmt: skip
SELECTORS = st.one_of(
    st.builds(lambda requirement: {"matchExpressions": [requirement]}, REQUIREMENTS),
    st.builds(lambda pairs: {"matchLabels": pairs}, st.dictionaries(LABEL_KEYS, LABEL_VALUES, min_size=1)),
    st.fixed_dictionaries(
        {},
        optional={
            "matchLabels": st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=2),
            "matchExpressions": st.lists(REQUIREMENTS, max_size=3),
        },
    ),  # empty selectors too: they match every pod
)


@st.composite
def members_and_pods(draw: st.DrawFn) -> tuple[list[Member], dict[str, PodFacts]]:
    """Pods (some sharing an address: the last one listed answers for it), and members
    naming a pod, a pod that is gone, or only an address (some names twice)."""
    names = draw(st.lists(st.sampled_from([f"chat-{i}" for i in range(10)]), unique=True, max_size=10))
    pods = {name: PodFacts(name, draw(LABELS), draw(IPS)) for name in names}
    named = (
        st.sampled_from(names)
        if names and draw(st.booleans())
        else st.sampled_from([None, "", "gone", *names])
    )
    member = st.builds(Member, name=st.sampled_from([f"chat@{i}" for i in range(8)]), pod=named, ip=IPS)
    return draw(st.lists(member, max_size=12)), pods


@settings(max_examples=300)
@given(members_and_pods(), st.lists(SELECTORS, min_size=1, max_size=4))
def test_indexed_membership_is_the_naive_one(
    world: tuple[list[Member], dict[str, PodFacts]], selectors: list[dict[str, Any]]
) -> None:
    counted, pods = world
    kept = grouping.MemberIndex(counted, pods)
    for wire in selectors:  # the same members and pods for every group, as in one plan
        chosen = group(selector=wire)
        want = [id(member) for member in naive_members(chosen.spec.selector, counted, pods)]
        assert [id(member) for member in grouping.members(chosen, counted, pods)] == want
        assert [id(member) for member in grouping.members(chosen, counted, pods, kept)] == want


@given(LABELS, SELECTORS)
def test_a_compiled_selector_matches_as_the_naive_one(labels: dict[str, str], wire: dict[str, Any]) -> None:
    selector = LabelSelector.model_validate(wire)
    assert selector.matches(labels) == naive_matches(selector, labels)
    assert selector.matches(labels) == naive_matches(selector, labels)  # compiled by then
    assert selector == LabelSelector.model_validate(wire)  # compiling changes no field


def test_a_copy_of_a_selector_with_other_fields_matches_by_its_own() -> None:
    selector = LabelSelector.model_validate({"matchLabels": {"role": "worker"}})
    assert not selector.matches({"role": "subscriber"})
    copied = selector.model_copy(update={"match_labels": {"role": "subscriber"}})
    assert copied.matches({"role": "subscriber"})
    assert not selector.matches({"role": "subscriber"})


def test_the_index_of_other_members_is_built_afresh() -> None:
    first = grouping.members(group(), MEMBERS, PODS)
    relabelled = {**PODS, "chat-2": PodFacts("chat-2", {"role": "subscriber"}, "10.0.0.3")}
    assert [m.name for m in grouping.members(group(), MEMBERS, relabelled)] == [m.name for m in MEMBERS]
    assert grouping.members(group(), MEMBERS[:1], relabelled) == MEMBERS[:1]
    assert grouping.members(group(), MEMBERS, PODS) == first


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
    result = grouping.plan(before, owner=OWNER, chosen=MEMBERS[:count], now=NOW)
    [populated] = result.conditions
    assert ({True: "True", False: "False"}[populated.status], populated.reason) == condition  # type: ignore[index]
    warnings = [e.reason for e in result.events if e.type == "Warning"]
    assert warnings == ([event] if event else [])


def test_joins_and_leaves_of_a_burst_are_one_event_each() -> None:
    before = group({"members": ["chat@10.0.0.1", "chat@10.0.0.9"], "count": 2})
    result = grouping.plan(before, owner=OWNER, chosen=MEMBERS[:3], now=NOW)
    assert [(e.reason, e.note) for e in result.events] == [
        ("MemberJoinedGroup", "Joined: chat@10.0.0.2, chat@10.0.0.3"),
        ("MemberLeftGroup", "Left: chat@10.0.0.9"),
    ]


def test_unchanged_membership_keeps_its_last_change_time() -> None:
    before = group({"members": ["chat@10.0.0.1"], "count": 1, "lastChange": "2026-11-25T11:00:00Z"})
    result = grouping.plan(before, owner=OWNER, chosen=MEMBERS[:1], now=NOW)
    assert result.status.wire()["lastChange"] == "2026-11-25T11:00:00Z"
    assert result.events == []


def identity(
    name: str, scope: str, group: str, created: str = "2026-11-25T12:00:00Z", service: str | None = None
) -> GroupIdentity:
    return GroupIdentity(name, scope, group, created, service)


def is_dns_label(name: str) -> bool:
    return re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) is not None and len(name) <= 63


def test_service_names_are_readable_when_exact_and_unique() -> None:
    names = grouping.service_names(
        [
            identity("a", "pubsub", "orders"),
            identity("b", "default", "jobs"),
            identity("c", "workers", "orders"),
        ],
        {},
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
        {"chat": None},
    )
    assert names["first"] == "a-b-c"  # created first, keeps its claim
    assert re.fullmatch(r"a-b-c-[0-9a-f]{6}", names["later"])
    assert re.fullmatch(r"pubsub-subscribers-orders-[0-9a-f]{6}", names["colon"])
    assert len(names["long"]) == 63
    assert re.fullmatch(r"chat-[0-9a-f]{6}", names["taken"])
    assert len(set(names.values())) == len(names)
    assert all(is_dns_label(n) for n in names.values())


def test_a_name_another_group_or_a_foreign_slice_holds_is_never_taken() -> None:
    """Creating it would only fail with AlreadyExists, again and again."""
    held = grouping.holders(
        services={"pubsub-orders": "deleted-group", "jobs": "jobs", "mixed": "mixed"},
        slices={"chat": None, "jobs": "jobs", "mixed": "other"},
    )
    assert held == {"pubsub-orders": "deleted-group", "jobs": "jobs", "mixed": None, "chat": None}
    names = grouping.service_names(
        [
            identity("orders", "pubsub", "orders"),
            identity("jobs", "default", "jobs"),
            identity("chat", "default", "chat"),
            identity("mixed", "default", "mixed"),
        ],
        held,
    )
    assert names["jobs"] == "jobs"  # its own Service and slice
    assert re.fullmatch(r"pubsub-orders-[0-9a-f]{6}", names["orders"])
    assert re.fullmatch(r"chat-[0-9a-f]{6}", names["chat"])
    assert re.fullmatch(r"mixed-[0-9a-f]{6}", names["mixed"])


def test_a_foreign_object_on_the_hashed_name_moves_the_group_to_another_hash() -> None:
    first = grouping.service_names([identity("orders", "pubsub", "subscribers:orders")], {})["orders"]
    second = grouping.service_names([identity("orders", "pubsub", "subscribers:orders")], {first: None})
    assert re.fullmatch(r"pubsub-subscribers-orders-[0-9a-f]{6}", second["orders"])
    assert second["orders"] != first


def test_a_group_keeps_its_name_when_the_collision_that_gave_it_a_hash_goes_away() -> None:
    """A group's DNS name must not change under the apps that resolve it."""
    hashed = grouping.service_names([identity("orders", "default", "chat")], {"chat": None})["orders"]
    assert hashed != "chat"
    kept = grouping.service_names([identity("orders", "default", "chat", service=hashed)], {hashed: "orders"})
    assert kept == {"orders": hashed}


def test_a_group_whose_scope_or_group_changed_is_named_afresh() -> None:
    names = grouping.service_names([identity("orders", "pubsub", "invoices", service="pubsub-orders")], {})
    assert names == {"orders": "pubsub-invoices"}


def test_a_name_kept_in_status_beats_an_older_groups_fresh_claim() -> None:
    names = grouping.service_names(
        [
            identity("older", "default", "chat", "2026-11-25T10:00:00Z"),
            identity("newer", "default", "chat", "2026-11-25T11:00:00Z", service="chat"),
        ],
        {"chat": "newer"},
    )
    assert names["newer"] == "chat"
    assert re.fullmatch(r"chat-[0-9a-f]{6}", names["older"])


NAMES = st.sampled_from(["chat", "orders", "pubsub-orders", "a-b-c", "x" * 70, "jobs:1", "Chat"])


@given(
    st.lists(st.tuples(st.sampled_from(["default", "pubsub", "a-b", "a"]), NAMES), max_size=8, unique=True),
    st.dictionaries(st.sampled_from(["chat", "orders", "pubsub-orders", "a-b-c", "jobs"]), st.none()),
    st.data(),
)
def test_service_names_are_distinct_valid_free_and_stable(
    pairs: list[tuple[str, str]], foreign: dict[str, None], data: st.DataObject
) -> None:
    groups = [
        identity(f"g{i}", scope, group, f"2026-11-25T{i:02}:00:00Z") for i, (scope, group) in enumerate(pairs)
    ]
    names = grouping.service_names(groups, foreign)
    assert len(set(names.values())) == len(groups)
    assert all(is_dns_label(n) for n in names.values())
    assert not set(names.values()) & set(foreign)

    # Published and reported in status, the names stay put, even once the foreign objects
    # that shaped them are gone.
    remaining = data.draw(st.sets(st.sampled_from(sorted(foreign))) if foreign else st.just(set()))
    published = {name: group for group, name in names.items()} | dict.fromkeys(remaining)
    reported = [dataclasses.replace(g, service=names[g.name]) for g in groups]
    assert grouping.service_names(reported, published) == names


@given(st.lists(st.tuples(st.text(max_size=20), st.text(min_size=1, max_size=80)), max_size=8, unique=True))
def test_every_service_name_is_a_distinct_dns_label(pairs: list[tuple[str, str]]) -> None:
    groups = [identity(f"g{i}", scope or "default", group) for i, (scope, group) in enumerate(pairs)]
    names = grouping.service_names(groups, {})
    assert len(set(names.values())) == len(groups)
    assert all(is_dns_label(n) for n in names.values())


def published(kind: str, name: str, group_uid: str) -> Published:
    return Published(kind, name, f"uid-of-{kind}-{name}", group_uid)


def test_what_a_group_published_under_another_name_is_removed_by_uid() -> None:
    objects = [
        published("Service", "orders", OWNER.uid),
        published("EndpointSlice", "orders", OWNER.uid),
        published("Service", "pubsub-orders", OWNER.uid),
        published("EndpointSlice", "pubsub-orders", OWNER.uid),
        published("Service", "jobs", "another-group"),
    ]
    removals = grouping.leftovers(OWNER, "pubsub-orders", grouping.by_group(objects))
    assert [(r.kind, r.name, r.uid, r.owner) for r in removals] == [
        ("Service", "orders", "uid-of-Service-orders", OWNER),
        ("EndpointSlice", "orders", "uid-of-EndpointSlice-orders", OWNER),
    ]
    assert removals[0].path == "/api/v1/namespaces/prod/services/orders"
    assert removals[1].path == "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices/orders"


def publications(groups: list[str]) -> st.SearchStrategy[list[Published]]:
    """A namespace's published objects, controlled by the given groups (a name is unique
    per kind in a namespace)."""
    return st.lists(
        st.builds(
            published,
            st.sampled_from(sorted(grouping.PUBLISHED_KINDS)),
            st.sampled_from(["orders", "pubsub-orders", "jobs"]),
            st.sampled_from(groups),
        ),
        unique_by=lambda o: (o.kind, o.name),
    )


@given(publications([OWNER.uid, "another-group"]), st.sampled_from(["orders", "pubsub-orders"]))
def test_leftovers_never_touch_the_current_name_nor_another_group_s_objects(
    objects: list[Published], service: str
) -> None:
    removed = {(r.kind, r.name) for r in grouping.leftovers(OWNER, service, grouping.by_group(objects))}
    kept = {(o.kind, o.name) for o in objects} - removed
    assert all(name != service for _, name in removed)
    assert all(o.group_uid == OWNER.uid for o in objects if (o.kind, o.name) in removed)
    assert {(o.kind, o.name) for o in objects if o.group_uid == OWNER.uid and o.name != service} <= removed
    assert {(o.kind, o.name) for o in objects if o.group_uid != OWNER.uid} <= kept


@given(
    publications(["uid-a", "uid-b", "uid-c"]),
    st.lists(st.tuples(st.sampled_from(["uid-a", "uid-b", "uid-d"]), st.sampled_from(["orders", "jobs"]))),
)
def test_leftovers_of_every_group_from_one_publication_are_each_group_s_own(
    objects: list[Published], groups: list[tuple[str, str]]
) -> None:
    publication = tuple(objects)  # an observation's, indexed once for every group
    for uid, service in groups:
        owner = dataclasses.replace(OWNER, uid=uid)
        removals = grouping.leftovers(owner, service, grouping.by_group(publication))
        want = [(o.kind, o.name, o.uid) for o in objects if o.group_uid == uid and o.name != service]
        assert [(r.kind, r.name, r.uid) for r in removals] == want


def erlang_group(**spec: Any) -> ProcessGroup:
    body = {
        "metadata": {"name": "subscribers", "namespace": "prod"},
        "spec": {
            "topology": "chat",
            "source": "Erlang",
            "scope": "pubsub",
            "group": '{subscribers, <<"orders">>}',
            **spec,
        },
    }
    return ProcessGroup.from_api(body)


def test_source_erlang_counts_the_processes_pg_reports_per_node() -> None:
    chosen, processes, unknown = grouping.local_members(
        MEMBERS, {"chat@10.0.0.1": 2, "chat@10.0.0.2": 1, "chat@10.0.0.3": 0}
    )
    assert ([m.name for m in chosen], processes, unknown) == (
        ["chat@10.0.0.1", "chat@10.0.0.2"],
        {"chat@10.0.0.1": 2, "chat@10.0.0.2": 1},
        [],
    )
    result = grouping.plan(erlang_group(), owner=OWNER, chosen=chosen, now=NOW, processes=processes)
    assert (result.status.count, result.status.members_by_node) == (3, {"worker-a": 2, "worker-b": 1})
    assert result.conditions[0].message == "3 processes on 2 nodes (minimum 1)"


def test_source_erlang_empty_when_the_processes_are_gone_and_silent_nodes_are_named() -> None:
    before = erlang_group().model_copy(
        update={"status": ProcessGroupStatus(members=["chat@10.0.0.1"], count=3)}
    )
    chosen, processes, unknown = grouping.local_members(MEMBERS, {"chat@10.0.0.1": 0, "chat@10.0.0.2": None})
    result = grouping.plan(before, owner=OWNER, chosen=chosen, now=NOW, processes=processes, unknown=unknown)
    [populated] = result.conditions
    assert (populated.status, populated.reason) == (False, "Empty")
    assert populated.message.endswith("no answer from chat@10.0.0.2, chat@10.0.0.3")
    assert [e.reason for e in result.events if e.type == "Warning"] == ["GroupEmpty"]
