"""probe.type erlang against real BEAM nodes in the pod network: each member's view is
its own ``erlang:nodes()``, asked by the operator as a hidden node with the cookie from
the topology's Secret, and every failure is a view's reason, never a crash.

The split is real: the nodes run with ``dist_auto_connect never`` and
``prevent_overlapping_partitions false`` (test_beam_nodes.ISOLATED), so the links are the
ones the test makes and cuts, and cutting the three from the two leaves exactly that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from test_beam_nodes import (
    APP,
    ISOLATED,
    Members,
    components_are,
    connect_all,
    epmd_in_pod_network,
    members_fixture,
    needs_erlang,
    partition,
    reasons,
    topology,
    views_are,
)

from conclave.adapters.distribution import own_node_name
from conclave_harness.localcluster import PodNetwork
from support import events_about, eventually

pytestmark = [pytest.mark.usefixtures("installed_crds"), needs_erlang]
OPERATOR = own_node_name("operator-0")
"""The operator's hidden node name, as the start_operator fixture's process names itself."""


members = members_fixture(ISOLATED)


def event_reasons(api_client: client.ApiClient, namespace: str, name: str = APP) -> list[str]:
    return [reason for _, reason, _ in events_about(api_client, namespace, name)]


def test_views_are_each_nodes_own_nodes_through_a_join_a_3_2_split_and_the_heal(
    api_client: client.ApiClient, namespace: str, members: Members, start_operator: Callable[..., Any]
) -> None:
    nodes = members.add(5)
    topology(api_client, namespace)
    start_operator()
    eventually(lambda: components_are(api_client, namespace, [[node] for node in nodes]))  # isolated

    connect_all(nodes)
    assert views_are(nodes, [nodes])
    healthy = eventually(lambda: components_are(api_client, namespace, [nodes]))
    assert (healthy["state"], healthy["missingLinks"], healthy["down"]) == ("Healthy", [], [])
    for node in nodes:  # the operator is a hidden node: in nodes(hidden), never in nodes()
        assert OPERATOR in node.nodes("hidden")
        assert OPERATOR not in node.nodes()

    majority, minority = nodes[:3], nodes[3:]
    for node in majority:
        node.disconnect(*minority)
    assert views_are(nodes, [majority, minority])
    split = eventually(lambda: components_are(api_client, namespace, [majority, minority]))
    assert (split["state"], split["majority"]) == ("Partitioned", sorted(n.name for n in majority))
    eventually(lambda: "PartitionDetected" in event_reasons(api_client, namespace))

    for node in majority:
        node.connect(*minority)
    assert views_are(nodes, [nodes])
    healed = eventually(lambda: components_are(api_client, namespace, [nodes]))
    assert healed["state"] == "Healthy"
    eventually(lambda: "PartitionHealed" in event_reasons(api_client, namespace))
    assert all(OPERATOR not in node.nodes() for node in nodes)


def test_a_wrong_cookie_is_cookie_rejected_and_breaks_nothing(
    api_client: client.ApiClient, namespace: str, members: Members, start_operator: Callable[..., Any]
) -> None:
    nodes = members.add(2)
    connect_all(nodes)
    members.secret("wrong-cookie", "not-the-cookie")
    topology(api_client, namespace, "intruder", secret="wrong-cookie")
    topology(api_client, namespace)  # the same members, the right cookie
    operator = start_operator()
    rejected = eventually(
        lambda: (
            (found := partition(api_client, namespace, "intruder")).get("views")
            and set(reasons(found).values()) == {"CookieRejected"}
            and found
        )
    )
    assert rejected["state"] == "Unknown"
    assert eventually(lambda: components_are(api_client, namespace, [nodes]))["state"] == "Healthy"
    for node in nodes:  # refused at the handshake: not even a hidden connection stays
        assert node.nodes("hidden") == {OPERATOR}
    assert views_are(nodes, [nodes])
    assert operator.process.poll() is None
    notes = " ".join(
        note for name in ("intruder", APP) for _, _, note in events_about(api_client, namespace, name)
    )
    assert "not-the-cookie" not in operator.output() + notes
    assert "conclave-beam-test" not in operator.output() + notes


def test_a_node_missing_from_epmd_is_not_registered_and_down_until_it_registers(
    api_client: client.ApiClient,
    namespace: str,
    members: Members,
    pod_network: PodNetwork,
    start_operator: Callable[..., Any],
) -> None:
    """With EPMD (no distributionPort) one `chat@` per network namespace: a single node."""
    with epmd_in_pod_network(pod_network):
        pod, ip = members.pod()
        topology(api_client, namespace, port=None)
        start_operator()
        missing = eventually(lambda: (found := partition(api_client, namespace)).get("down") and found)
        assert [(d["name"], d["reason"]) for d in missing["down"]] == [(f"{APP}@{ip}", "NotRegistered")]
        assert reasons(missing) == {f"{APP}@{ip}": "NotRegistered"}
        eventually(lambda: "MemberDown" in event_reasons(api_client, namespace))

        node = members.start(pod, ip, epmd=True)
        back = eventually(lambda: components_are(api_client, namespace, [[node]]))
        assert back["down"] == []
        eventually(lambda: "MemberRecovered" in event_reasons(api_client, namespace))


def test_a_member_that_accepts_and_never_answers_times_out_and_the_others_are_known(
    api_client: client.ApiClient, namespace: str, members: Members, start_operator: Callable[..., Any]
) -> None:
    nodes = members.add(3)
    connect_all(nodes)
    topology(api_client, namespace)
    start_operator()
    eventually(lambda: components_are(api_client, namespace, [nodes]))
    silent, *others = nodes
    silent.freeze()  # its port still accepts (the backlog), and nothing answers
    timed_out = eventually(
        lambda: (
            (found := partition(api_client, namespace))
            and reasons(found).get(silent.name) == "Timeout"
            and found
        )
    )
    assert reasons(timed_out) == {silent.name: "Timeout", **{node.name: None for node in others}}
    assert (timed_out["state"], timed_out["down"]) == ("Healthy", [])  # unknown, not down: nobody can tell

    others[0].disconnect(others[1])  # the others' views still follow, probe after probe
    assert views_are(others, [[others[0], silent], [others[1], silent]])
    cut = eventually(lambda: (found := partition(api_client, namespace))["missingLinks"] and found)
    assert cut["missingLinks"] == [sorted(node.name for node in others)]
    assert reasons(cut)[silent.name] == "Timeout"

    silent.thaw()
    others[0].connect(others[1])
    eventually(lambda: components_are(api_client, namespace, [nodes]))
