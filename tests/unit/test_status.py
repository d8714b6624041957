"""The `conclave status` renderer on plain data: exact text, and colour that changes no layout."""

from __future__ import annotations

import datetime
from typing import Any

import click
import pytest

from conclave.api import ClusterTopology, ProcessGroup, Singleton
from conclave.summarizing import Snapshot, age, render

NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
EARLIER = "2025-01-01T11:59:48Z"
"""Twelve seconds before NOW."""


def condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": EARLIER,
    }


def topology(
    members: int = 3, sides: list[int] | None = None, namespace: str = "prod", ready: int | None = None
) -> ClusterTopology:
    """A KubernetesAPI topology of ``members`` pods; ``sides`` splits them into components of
    those sizes (majority: the first, when it holds more than half)."""
    names = [f"chat@10.0.0.{10 + i}" for i in range(members)]
    sizes = sides or [members]
    components, start = [], 0
    for size in sizes:
        components.append(names[start : start + size])
        start += size
    majority = components[0] if 2 * len(components[0]) > members else []
    split = len(sizes) > 1
    ready_count = members if ready is None else ready
    return ClusterTopology.from_api(
        {
            "metadata": {"name": "chat", "namespace": namespace},
            "spec": {
                "strategy": "KubernetesAPI",
                "service": "chat-headless",
                "probe": {"type": "http", "port": 4000},
            },
            "status": {
                "members": [
                    {
                        "name": name,
                        "pod": f"chat-{i}",
                        "ip": name.split("@")[1],
                        "ready": i < ready_count,
                        "nodeName": f"worker-{'ab'[i % 2]}",
                    }
                    for i, name in enumerate(names)
                ],
                "memberCount": members,
                "readyMembers": ready_count,
                "partition": {
                    "state": "Partitioned" if split else "Healthy",
                    "components": components,
                    "majority": majority,
                    "since": EARLIER,
                },
                "conditions": [
                    condition("Discovered", "True", "MembersFound"),
                    condition("Partitioned", "True", "Split", "The cluster is split")
                    if split
                    else condition("Partitioned", "False", "FullyConnected"),
                    condition("Quorum", "True" if majority else "False", "MajorityReachable"),
                ],
            },
        }
    )


def singleton(name: str, policy: str = "Fence", owner: int | None = 0, epoch: int = 1) -> Singleton:
    status: dict[str, Any] = {"phase": "Pending", "conditions": [condition("Placed", "False", "NoMajority")]}
    if owner is not None:
        status = {"owner": f"chat@10.0.0.{10 + owner}", "ownerPod": f"chat-{owner}", "epoch": epoch}
        status["phase"] = "Placed"
    return Singleton.from_api(
        {
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"topology": "chat", "partitionPolicy": policy},
            "status": status,
        }
    )


def group(name: str, count: int, topology_name: str = "chat") -> ProcessGroup:
    populated = (
        condition("Populated", "True", "Populated") if count else condition("Populated", "False", "Empty")
    )
    return ProcessGroup.from_api(
        {
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"topology": topology_name, "scope": "pubsub", "group": name, "selector": {}},
            "status": {"count": count, "conditions": [populated]},
        }
    )


HEALTHY = """\
ClusterTopology prod/chat
  KubernetesAPI via Service chat-headless, probe http :4000
  Members     3/3 ready
  Partition   Healthy for 12s: 1 component, majority of 3
  Conditions  Discovered=True  Partitioned=False  Quorum=True

    MEMBER          POD     NODE      READY
    chat@10.0.0.10  chat-0  worker-a  yes
    chat@10.0.0.11  chat-1  worker-b  yes
    chat@10.0.0.12  chat-2  worker-a  yes

    SINGLETON  POLICY            OWNER           POD     EPOCH  PHASE
    billing    Uniform/Fence     chat@10.0.0.11  chat-1  4      Placed
    sweeper    Uniform/Continue  -               -       -      Pending (NoMajority)

    PROCESS GROUP  SCOPE/GROUP    COUNT  MIN  POPULATED
    orders         pubsub/orders  3      1    True
"""


def test_a_healthy_topology_lists_its_members_singletons_and_groups() -> None:
    snapshot = Snapshot(
        topologies=(topology(),),
        singletons=(singleton("billing", owner=1, epoch=4), singleton("sweeper", "Continue", owner=None)),
        groups=(group("orders", 3),),
    )
    assert render(snapshot, NOW) == HEALTHY


SPLIT = """\
ClusterTopology prod/chat
  KubernetesAPI via Service chat-headless, probe http :4000
  Members     5/7 ready
  Partition   Partitioned for 12s: 2 components (4+3), majority of 4
  Conditions  Discovered=True  Partitioned=True  Quorum=True
    ! Partitioned Split: The cluster is split

    MEMBER          POD     NODE      READY  SIDE
    chat@10.0.0.10  chat-0  worker-a  yes    1 majority
    chat@10.0.0.11  chat-1  worker-b  yes    1 majority
    chat@10.0.0.12  chat-2  worker-a  yes    1 majority
    chat@10.0.0.13  chat-3  worker-b  yes    1 majority
    chat@10.0.0.14  chat-4  worker-a  yes    2
    chat@10.0.0.15  chat-5  worker-b  no     2
    chat@10.0.0.16  chat-6  worker-a  no     2
"""


def test_a_split_shows_each_members_side_and_why_the_condition_is_bad() -> None:
    assert render(Snapshot(topologies=(topology(7, sides=[4, 3], ready=5),)), NOW) == SPLIT


def test_groups_and_singletons_of_a_missing_topology_are_shown_under_it() -> None:
    text = render(Snapshot(groups=(group("orders", 0, topology_name="gone"),)), NOW)
    assert text == (
        "ClusterTopology prod/gone not found\n"
        "\n"
        "    PROCESS GROUP  SCOPE/GROUP    COUNT  MIN  POPULATED\n"
        "    orders         pubsub/orders  0      1    False (Empty)\n"
    )


def test_namespaces_are_sections_in_order() -> None:
    text = render(Snapshot(topologies=(topology(1, namespace="b"), topology(1, namespace="a"))), NOW)
    titles = [line for line in text.splitlines() if line.startswith("ClusterTopology")]
    assert titles == ["ClusterTopology a/chat", "ClusterTopology b/chat"]


def test_nothing_to_show_says_so() -> None:
    assert render(Snapshot(), NOW) == "No ClusterTopology, Singleton or ProcessGroup found\n"


def test_colour_changes_no_character_of_the_plain_text() -> None:
    snapshot = Snapshot(
        topologies=(topology(7, sides=[4, 3], ready=5),),
        singletons=(singleton("billing"), singleton("sweeper", "Continue", owner=None)),
        groups=(group("orders", 0),),
    )
    coloured = render(snapshot, NOW, color=True)
    assert coloured != render(snapshot, NOW)
    assert click.unstyle(coloured) == render(snapshot, NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (3 * 86400, "3d")],
    ids=["now", "under two minutes in seconds", "two minutes", "under two hours in minutes", "two hours",
         "days"],
)  # fmt: skip
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert age(NOW - datetime.timedelta(seconds=seconds), NOW) == text
