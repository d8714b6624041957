"""Partition status on a ClusterTopology: real pods, simulated members in the pod network
whose views the test cuts, and the operator probing them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from support import STABLE_AFTER, condition, events_about, eventually, partition_of, read

pytestmark = pytest.mark.usefixtures("installed_crds")


def reasons(api_client: client.ApiClient, namespace: str) -> list[str]:
    return [reason for _, reason, _ in events_about(api_client, namespace, "chat")]


def test_a_three_two_split_is_declared_with_its_majority_and_heals(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(5)
    healthy = partition_of(api_client, namespace)
    assert (healthy["components"], healthy["majority"]) == ([sorted(names)], sorted(names))

    sim.partition([names[:3], names[3:]])
    started = time.monotonic()
    split = eventually(lambda: (p := partition_of(api_client, namespace)).get("state") == "Partitioned" and p)
    assert time.monotonic() - started < STABLE_AFTER + 2 * 0.5 + 1.0  # plus the time to write and read it
    assert split["components"] == [sorted(names[:3]), sorted(names[3:])]  # names sort as text in status
    assert split["majority"] == sorted(names[:3])
    body = read(api_client, namespace, "clustertopologies", "chat")
    assert condition(body, "Partitioned")["reason"] == "Split"  # type: ignore[index]
    assert condition(body, "Quorum")["status"] == "True"  # type: ignore[index]
    assert eventually(lambda: "PartitionDetected" in reasons(api_client, namespace))

    sim.connect_all()
    eventually(lambda: partition_of(api_client, namespace).get("state") == "Healthy")
    assert eventually(lambda: "PartitionHealed" in reasons(api_client, namespace))


@pytest.mark.parametrize(
    ("tie_breaker", "majority"),
    [("None", []), ("LowestAddress", [0, 1])],
    ids=["an even split has no majority", "LowestAddress gives it to the lowest address's half"],
)
def test_an_even_split(
    api_client: client.ApiClient,
    namespace: str,
    cluster_of: Callable[..., Any],
    tie_breaker: str,
    majority: list[int],
) -> None:
    sim, names = cluster_of(4, tieBreaker=tie_breaker)
    sim.partition([names[:2], names[2:]])
    split = eventually(lambda: (p := partition_of(api_client, namespace)).get("state") == "Partitioned" and p)
    assert split["majority"] == sorted(names[i] for i in majority)
    quorum = condition(read(api_client, namespace, "clustertopologies", "chat"), "Quorum")
    assert quorum["status"] == ("True" if majority else "False")  # type: ignore[index]
    if not majority:
        assert eventually(lambda: "QuorumLost" in reasons(api_client, namespace))


def test_a_lost_link_is_degraded_with_the_missing_link_and_a_majority_of_four(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(5)
    sim.cut(names[0], names[1])
    degraded = eventually(lambda: (p := partition_of(api_client, namespace)).get("state") == "Degraded" and p)
    assert degraded["missingLinks"] == [sorted(names[:2])]
    assert len(degraded["majority"]) == 4
    assert set(names[2:]) <= set(degraded["majority"])


def test_a_flap_shorter_than_stable_after_changes_nothing(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(5)
    before = partition_of(api_client, namespace)
    sim.partition([names[:3], names[3:]])
    time.sleep(STABLE_AFTER / 2)
    sim.connect_all()
    deadline = time.monotonic() + STABLE_AFTER + 1.0
    while time.monotonic() < deadline:
        current = partition_of(api_client, namespace)
        assert (current["state"], current["since"]) == ("Healthy", before["since"])
        time.sleep(0.2)
    assert "PartitionDetected" not in reasons(api_client, namespace)


def test_a_hung_member_is_unknown_with_reason_timeout_and_the_others_still_count(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(5)
    sim.set_mode(names[4], "hang")
    views = eventually(
        lambda: (
            (v := {x["member"]: x for x in partition_of(api_client, namespace).get("views", [])})
            and v[names[4]].get("reason") == "Timeout"
            and v
        )
    )
    assert views[names[4]] == {"member": names[4], "known": False, "reason": "Timeout"}
    assert all(views[name]["known"] for name in names[:4])
    assert partition_of(api_client, namespace)["state"] == "Healthy"


@pytest.mark.parametrize(("mode", "reason"), [("impostor", "WrongNode"), ("garbage", "MalformedView")])
def test_a_member_answering_nonsense_is_unknown_with_the_reason(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any], mode: str, reason: str
) -> None:
    sim, names = cluster_of(3)
    sim.set_mode(names[0], mode, claims=names[1])  # type: ignore[arg-type]
    eventually(
        lambda: (
            {x["member"]: x.get("reason") for x in partition_of(api_client, namespace).get("views", [])}.get(
                names[0]
            )
            == reason
        )
    )
