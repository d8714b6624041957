"""connect: Mesh with real BEAM nodes in the pod network: conclave is the connector. It
meshes isolated nodes and a scale-up, leaves a terminating pod's node connected while it
drains but never reconnects it once cut, and cuts a vanished node from every member as
soon as its pod is gone from the API (the kernel alone would wait out net_ticktime).

Nodes here run with OTP's defaults (dist_auto_connect, prevent_overlapping_partitions),
as an app would, except where a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from test_beam_nodes import Members, Node, components_are, members_fixture, needs_erlang, topology, views_are

from conclave.adapters.distribution import own_node_name
from conclave.adapters.erlang import terms
from conclave_harness.localcluster.kubelet import FakeKubelet
from support import OperatorProcess, eventually, read

pytestmark = [pytest.mark.usefixtures("installed_crds"), needs_erlang]
members = members_fixture()
OPERATOR = own_node_name("operator-0")
LONG_TICKTIME = ("-kernel", "net_ticktime", "600")
"""Without conclave, the members of a vanished node would keep it for 10 minutes."""


def meshed(nodes: list[Node]) -> bool:
    return views_are(nodes, [nodes])


def reconciled(operator: OperatorProcess, iterations: int) -> Callable[[], bool]:
    """Waits for ``iterations`` more supervisor iterations: that many chances to act."""
    done = operator.metric("conclave_reconcile_total", controller="topology", result="success") or 0.0
    return lambda: (
        (operator.metric("conclave_reconcile_total", controller="topology", result="success") or 0)
        >= done + iterations
    )


def mesh_connects(operator: OperatorProcess, result: str, namespace: str) -> float:
    labels = {"namespace": namespace, "topology": "chat", "result": result}
    return operator.metric("conclave_mesh_connects_total", **labels) or 0.0


def test_mesh_connects_five_isolated_nodes_and_then_a_scale_up(
    api_client: client.ApiClient, namespace: str, members: Members, start_operator: Callable[..., Any]
) -> None:
    nodes = members.add(5)
    assert all(node.nodes() == frozenset() for node in nodes)
    topology(api_client, namespace, connect="Mesh")
    operator = start_operator()
    eventually(lambda: meshed(nodes))
    eventually(lambda: components_are(api_client, namespace, [nodes]))
    eventually(lambda: mesh_connects(operator, "done", namespace) >= 1)  # counted once all answered
    for node in nodes:
        assert node.nodes("hidden") == {OPERATOR}  # hidden, never one of the mesh

    grown = [*nodes, *members.add(1)]
    eventually(lambda: meshed(grown))
    eventually(lambda: components_are(api_client, namespace, [grown]))


def test_a_terminating_pods_node_stays_connected_while_it_drains_and_is_not_reconnected_once_cut(
    api_client: client.ApiClient,
    namespace: str,
    members: Members,
    kubelet: FakeKubelet,
    start_operator: Callable[..., Any],
) -> None:
    staying = members.add(3)
    (leaving,) = members.add(draining=120)
    everyone = [*staying, leaving]
    topology(api_client, namespace, connect="Mesh")
    operator = start_operator()
    eventually(lambda: meshed(everyone))
    client.CoreV1Api(api_client).delete_namespaced_pod(leaving.pod, namespace, grace_period_seconds=120)

    def left() -> bool:
        status = read(api_client, namespace, "clustertopologies", "chat").get("status", {})
        return leaving.name not in {member["name"] for member in status.get("members", [])}

    eventually(left)
    eventually(reconciled(operator, 4))  # probes and mesh rounds without it: it drains, connected
    assert meshed(everyone)

    for node in staying:  # the app hands off and cuts it, as a drain does
        node.disconnect(leaving)
    eventually(lambda: meshed(staying))  # the kernel may cut more; conclave mends what counts
    eventually(reconciled(operator, 4))
    assert all(leaving.name not in node.nodes() for node in staying)
    assert leaving.nodes() == frozenset()
    kubelet.confirm_termination(namespace, leaving.pod)


def test_a_vanished_node_is_cut_from_every_member_once_its_pod_is_gone(
    api_client: client.ApiClient, namespace: str, members: Members, start_operator: Callable[..., Any]
) -> None:
    nodes = members.add(4, flags=LONG_TICKTIME)
    topology(api_client, namespace, connect="Mesh")
    operator = start_operator()
    eventually(lambda: meshed(nodes))
    *survivors, vanished = nodes
    vanished.freeze()  # its host is gone: nothing answers, and no FIN ever comes
    client.CoreV1Api(api_client).delete_namespaced_pod(vanished.pod, namespace, grace_period_seconds=0)
    eventually(lambda: meshed(survivors))  # dropped long before net_ticktime (600s here)
    disconnects = {"namespace": namespace, "topology": "chat", "result": "done"}
    eventually(lambda: (operator.metric("conclave_mesh_disconnects_total", **disconnects) or 0) >= 1)
    eventually(lambda: components_are(api_client, namespace, [survivors]))


def test_an_elixir_node_is_a_member_like_an_erlang_one(
    api_client: client.ApiClient, namespace: str, members: Members, start_operator: Callable[..., Any]
) -> None:
    nodes = [*members.add(2), *members.add(1, elixir=True)]
    elixir = nodes[2]
    topology(api_client, namespace, connect="Mesh")
    start_operator()
    eventually(lambda: meshed(nodes))
    listed = {terms.atom_text(name) for name in elixir.ask("Node.list()")}  # Elixir's own words
    assert listed == {node.name for node in nodes} - {elixir.name}
    eventually(lambda: components_are(api_client, namespace, [nodes]))
    assert elixir.nodes("hidden") == {OPERATOR}
