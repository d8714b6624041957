"""The applier writes object by object: a 409 on one object's status costs that object a
re-read and a new plan, and nothing else. Every other object of the plan keeps its writes
and the events that follow them (issue #13: the events of the statuses written before the
conflict were lost, because the retry derives events from what is now published).

The conflicts are scripted by a proxy in front of the API server (tests/conflicts.py). The
operator reaches the API only through it, as a ServiceAccount: the proxy forwards a token,
it cannot present the admin's client certificate.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client

from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet
from conclave_harness.sim import SimulatedMembers
from conflicts import ConflictingProxy
from support import (
    STABLE_AFTER,
    OperatorProcess,
    Operators,
    cluster_admin,
    create,
    events_about,
    eventually,
    member_pod,
    partition_of,
    read,
    stop_and_show,
    token_kubeconfig,
)

pytestmark = pytest.mark.usefixtures("installed_crds")

T = TypeVar("T")

SIZE = 3
SINGLETONS = ("alpha", "bravo", "charlie")
"""Planned in this order (the cache lists by name): bravo's status is written second."""
SERVICE_ACCOUNT = "conclave"

Start = Callable[[list[tuple[str, str]]], tuple[ConflictingProxy, OperatorProcess]]


def reaches(probe: Callable[[], T], expected: T, timeout: float = 30.0) -> None:
    """Wait until ``probe()`` equals ``expected``; else fail, showing the last value against it."""
    with contextlib.suppress(AssertionError):
        eventually(lambda: probe() == expected, timeout)
    assert probe() == expected


def reconciled(operator: OperatorProcess) -> float:
    """How many supervisor iterations of the operator have succeeded."""
    return operator.metric("conclave_reconcile_total", controller="topology", result="success") or 0.0


def ready_addresses(api_client: client.ApiClient, namespace: str) -> set[str]:
    """The ready addresses the `chat` Service's EndpointSlices list."""
    slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=chat"
    )
    return {
        address
        for found in slices.items
        for endpoint in found.endpoints or []
        if not endpoint.conditions or endpoint.conditions.ready is not False
        for address in endpoint.addresses
    }


@pytest.fixture
def members(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, pod_network: PodNetwork
) -> Iterator[dict[str, str]]:
    """Three running member pods of the `chat` Service, each a simulated member that sees the
    others, all listed ready in the Service's EndpointSlice; pod → node name. Once these are
    in place, the operator's very first plan discovers every member and places every singleton."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}}}
    )
    pods = [f"chat-{index}" for index in range(SIZE)]
    for pod in pods:
        core.create_namespaced_pod(namespace, member_pod(pod))
    with SimulatedMembers(pod_network) as sim:
        ips = {pod: kubelet.wait_running(namespace, pod).status.pod_ip for pod in pods}
        for ip in ips.values():
            sim.add(f"chat@{ip}", ip)
        sim.connect_all()
        eventually(lambda: ready_addresses(api_client, namespace) == set(ips.values()))
        yield {pod: f"chat@{ip}" for pod, ip in ips.items()}


@pytest.fixture
def operator_behind_proxy(api_client: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Start]:
    """Start `conclave run` on the test's namespace behind a ConflictingProxy scripted with
    the given conflicts; the operator stops before the proxy does. Its ServiceAccount is
    cluster-admin (support.cluster_admin)."""
    upstream = api_client.configuration
    with contextlib.ExitStack() as stack:
        account = stack.enter_context(cluster_admin(api_client, namespace, SERVICE_ACCOUNT))

        def start(conflicts: list[tuple[str, str]]) -> tuple[ConflictingProxy, OperatorProcess]:
            proxy = stack.enter_context(ConflictingProxy(upstream.host, upstream.ssl_ca_cert, conflicts))
            kubeconfig = token_kubeconfig(api_client, namespace, account, proxy.url, tmp_path / "kubeconfig")
            operators = Operators(kubeconfig, namespace, tmp_path)
            operator = operators()
            stack.callback(stop_and_show, operator)
            return proxy, operator

        yield start


def grants(api_client: client.ApiClient, namespace: str) -> Counter[str]:
    """Singleton name → how many OwnerGranted events were posted about it."""
    return Counter(
        name
        for name in SINGLETONS
        for _, reason, _ in events_about(api_client, namespace, name)
        if reason == "OwnerGranted"
    )


def joins(api_client: client.ApiClient, namespace: str) -> Counter[str]:
    """The notes of the MemberJoined events about the topology, each with its count."""
    return Counter(
        note for _, reason, note in events_about(api_client, namespace, "chat") if reason == "MemberJoined"
    )


def phase(api_client: client.ApiClient, namespace: str, name: str) -> str | None:
    found: str | None = read(api_client, namespace, "singletons", name).get("status", {}).get("phase")
    return found


@pytest.mark.parametrize(
    "refused",
    [
        pytest.param(
            "singletons/bravo", id="the second of three singletons is refused its first status write"
        ),
        pytest.param("clustertopologies/chat", id="the topology is refused its first status write"),
    ],
)
def test_a_conflict_on_one_object_s_status_costs_no_object_an_event(
    api_client: client.ApiClient,
    namespace: str,
    members: dict[str, str],
    operator_behind_proxy: Start,
    refused: str,
) -> None:
    probe = {"type": "http", "port": 4000, "interval": "500ms", "timeout": "300ms"}
    spec: dict[str, Any] = {
        "strategy": "KubernetesAPI",
        "service": "chat",
        "applicationName": "chat",
        "probe": probe,
        "partition": {"stableAfter": f"{STABLE_AFTER:.0f}s"},
    }
    create(
        api_client,
        namespace,
        "clustertopologies",
        {"kind": "ClusterTopology", "metadata": {"name": "chat"}, "spec": spec},
    )
    for name in SINGLETONS:
        body = {"kind": "Singleton", "metadata": {"name": name}, "spec": {"topology": "chat"}}
        create(api_client, namespace, "singletons", body)
    status = f"/apis/conclave.dev/v1alpha1/namespaces/{namespace}/{refused}/status"
    proxy, operator = operator_behind_proxy([("PATCH", status.replace(".", r"\."))])

    for name in SINGLETONS:
        eventually(lambda n=name: phase(api_client, namespace, n) == "Placed")
    assert proxy.answered == [f"PATCH {status}"]  # the conflict happened: the proof is not vacuous
    # events follow the status they explain: wait for them, then make sure they stay as many
    granted = Counter(SINGLETONS)
    joined = Counter(f"Member {node} joined (pod {pod})" for pod, node in members.items())
    reaches(lambda: (grants(api_client, namespace), joins(api_client, namespace)), (granted, joined))
    eventually(lambda: partition_of(api_client, namespace).get("state") == "Healthy", STABLE_AFTER + 10)
    later = reconciled(operator) + 2  # two whole iterations after the last status change
    eventually(lambda: reconciled(operator) >= later)
    assert (grants(api_client, namespace), joins(api_client, namespace)) == (granted, joined)
